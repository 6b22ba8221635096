"""What the Scoreboard needs from every analysis's board reader (core.studies.scoreboard): the layer rule, a cell.

Each analysis declares its `Board` (core.analyses.registry) in its own module: the columns a step fills and a
reader that turns its stored tables into cells (model, measure, layer, value, CI), never recomputing. Per-layer
measures report one layer per model by the study's layer rule (`LayerRule`), never the best layer on the same items.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from core.analyses.scoreboard import paradigm_of
from core.studies.study import Step, Study


@dataclass(frozen=True)
class LayerRule:
    """Which layer of a per-layer measure a model is scored on: the fixed `layer` where the model has it, else its
    deepest stored layer."""

    layer: str = "final"

    def pick(self, layers: Iterable[str]) -> str:
        """The reported layer among a model's stored `layers` (shallow to deep)."""
        layers = list(layers)
        return self.layer if self.layer in layers else layers[-1]

    @property
    def sentence(self) -> str:
        return (f"Per-layer measures are reported at the fixed layer '{self.layer}' (a model without it: its deepest "
                "stored layer); the best layer on the same items is never reported.")


def layer_rule(study: Study) -> LayerRule:
    """The study's `[scoreboard] layer` (default: final)."""
    return LayerRule(study.scoreboard.get("layer", "final"))


Cells = list[dict]


def cell(model: str, measure: str, value, low=np.nan, high=np.nan, *, layer: str = "", step: Step) -> dict:
    """A stored value's cell; a stored NaN (a measure undefined for this model, e.g. a power law of 3 features) is
    not applicable."""
    defined = bool(np.isfinite(value))
    return {"model": model, "paradigm": paradigm_of(model), "measure": measure, "layer": layer,
            "value": float(value), "ci_low": float(low), "ci_high": float(high), "status": "ok" if defined else "n/a",
            "error": "" if defined else f"{step.label} stored no finite value (undefined for this model)",
            "step": step.label, "analysis": step.analysis}


def split_label(label: str, separator: str) -> tuple[str, str]:
    """(spec, layer) of a stored model label: `spec · layer` or `spec [layer]`."""
    if separator == "[":
        spec, _, layer = label.rpartition(" [")
        return (spec, layer.rstrip("]")) if spec else (label, "")
    spec, _, layer = label.rpartition(" · ")
    return (spec, layer) if spec else (label, "")


def chosen_layers(labels: Iterable[str], separator: str, rule: LayerRule,
                  step: Step) -> dict[str, tuple[str, str]]:
    """label -> (spec, layer) of the one label per model the rule reports (layers in the step's depth order)."""
    by_spec: dict[str, dict[str, str]] = {}
    for label in labels:
        spec, layer = split_label(label, separator)
        by_spec.setdefault(spec, {})[layer] = label
    chosen = {}
    for spec, layers in by_spec.items():
        order = [layer for layer in step.layers.get(spec, ()) if layer in layers] or list(layers)
        layer = rule.pick(order)
        chosen[layers[layer]] = (spec, layer)
    return chosen
