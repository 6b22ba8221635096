"""A study's scoreboard from its stored steps: a reader per analysis turns stored tables into cells (never recomputes).

Each reader takes a stored step's tables and returns cells (model, measure, layer, value, CI) with the measures'
meanings; a step that failed or never ran gives the cells it would fill as failed (with its error) or missing.
Per-layer measures report one layer per model by the study's layer rule (`LayerRule`), never the best layer on
the same items.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from core.analyses.scoreboard import CELL_COLUMNS, Measure, Scoreboard, paradigm_of, percentile_ci
from core.studies.context import StudyContext
from core.studies.run import STEP_KIND, open_context, step_key
from core.studies.study import Step, Study

TARGETS = ("valence", "arousal")


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
Reader = Callable[[Step, dict[str, pd.DataFrame], dict, StudyContext, LayerRule], tuple[Cells, list[Measure], dict]]


def _cell(model: str, measure: str, value, low=np.nan, high=np.nan, *, layer: str = "", step: Step) -> dict:
    """A stored value's cell; a stored NaN (a measure undefined for this model, e.g. a power law of 3 features) is
    not applicable."""
    defined = bool(np.isfinite(value))
    return {"model": model, "paradigm": paradigm_of(model), "measure": measure, "layer": layer,
            "value": float(value), "ci_low": float(low), "ci_high": float(high), "status": "ok" if defined else "n/a",
            "error": "" if defined else f"{step.label} stored no finite value (undefined for this model)",
            "step": step.label, "analysis": step.analysis}


def _split_label(label: str, separator: str) -> tuple[str, str]:
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
        spec, layer = _split_label(label, separator)
        by_spec.setdefault(spec, {})[layer] = label
    chosen = {}
    for spec, layers in by_spec.items():
        order = [layer for layer in step.layers.get(spec, ()) if layer in layers] or list(layers)
        layer = rule.pick(order)
        chosen[layers[layer]] = (spec, layer)
    return chosen


# --- readers: one per analysis ---------------------------------------------------------------------------------------

def affect_measures(step: Step) -> list[Measure]:
    schemes = list(step.settings.schemes)
    found = [Measure(f"affect_r2_{scheme}_{target}", f"{target} R² ({scheme.upper()})", "R²", True, "affect")
             for target in TARGETS for scheme in schemes]
    if {"loto", "loco"} <= set(schemes):
        found += [Measure(f"affect_r2_drop_{target}", f"{target} R² drop LOTO−LOCO", "R²", False, "affect")
                  for target in TARGETS]
    found += [Measure("affect_plv", "error PLV", "", False, "affect"),
              Measure("affect_occupancy_entropy", "error occupancy entropy", "", False, "affect"),
              Measure("affect_pull_index", "centre-ward pull", "", False, "affect")]
    return found


def read_affect(step, tables, meta, context, rule):
    metrics, measures = tables["metrics"], tables["measures"]
    chosen = chosen_layers(metrics["model"].unique(), "[", rule, step)
    cells = []
    for label, (spec, layer) in chosen.items():
        rows = metrics[metrics["model"] == label]
        r2 = {}
        for row in rows.itertuples():
            r2[(row.scheme, row.target)] = row.r2
            cells.append(_cell(spec, f"affect_r2_{row.scheme}_{row.target}", row.r2, row.r2_lo, row.r2_hi,
                               layer=layer, step=step))
        for target in TARGETS:
            if ("loto", target) in r2 and ("loco", target) in r2:
                cells.append(_cell(spec, f"affect_r2_drop_{target}", r2[("loto", target)] - r2[("loco", target)],
                                   layer=layer, step=step))
        geometry = measures[measures["model"] == label]
        if not geometry.empty:
            row = geometry.iloc[0]
            cells += [_cell(spec, "affect_plv", row["plv"], layer=layer, step=step),
                      _cell(spec, "affect_occupancy_entropy", row["trajectory_entropy"], layer=layer, step=step),
                      _cell(spec, "affect_pull_index", row["pull_index"], layer=layer, step=step)]
    return cells, affect_measures(step), {}


def probes_measures(step: Step) -> list[Measure]:
    return [measure for probe in (*TARGETS, "category") for measure in (
        Measure(f"probe_{probe}_peak_depth", f"{probe} probe peak depth", "depth 0–1", True, "probes"),
        Measure(f"probe_{probe}_late_fraction", f"{probe} probe late fraction", "share", True, "probes"))]


def read_probes(step, tables, meta, context, rule):
    from core.analyses.probes import summary_table  # the Layer probes page's own summary of the stored curves

    cells = [cell for row in summary_table(tables["curves"]).itertuples() for cell in (
        _cell(row.encoder, f"probe_{row.probe}_peak_depth", row.peak_depth, layer="all", step=step),
        _cell(row.encoder, f"probe_{row.probe}_late_fraction", row.late_fraction, layer="all", step=step))]
    return cells, probes_measures(step), {}


def _reference_columns(step: Step, context: StudyContext) -> list[str]:
    return [f"human · {reference.name}" for reference in context.image_set(step).references]


def similarity_measures(step: Step, context: StudyContext) -> list[Measure]:
    return [Measure(f"{measure} vs {reference}", f"{measure} vs {reference.removeprefix('human · ')}", "similarity",
                    measure != "procrustes", "similarity")
            for reference in _reference_columns(step, context) for measure in step.settings.measures]


def read_similarity(step, tables, meta, context, rule):
    pairs = tables["pairs"]
    references = [name for name in _reference_columns(step, context) if name in set(pairs["column"])]
    layers = [name for name in pairs["row"].unique() if not name.startswith(("human · ", "rdm · "))]
    chosen = chosen_layers(layers, "·", rule, step)
    matrix = context.similarity.get(meta["matrix_key"]) if meta.get("matrix_key") else None
    cells, samples = [], {}
    for (measure, row, column), found in pairs.set_index(["measure", "row", "column"]).iterrows():
        if column in references and row in chosen:
            spec, layer = chosen[row]
            name = f"{measure} vs {column}"
            cells.append(_cell(spec, name, found["value"], found["ci_low"], found["ci_high"], layer=layer, step=step))
            if matrix is not None and matrix.resamples is not None:
                resampled = matrix.resamples[matrix.measures.index(measure), matrix.rows.index(row),
                                             matrix.columns.index(column)]
                samples.setdefault(name, {})[spec] = np.asarray(resampled, float)
    return cells, similarity_measures(step, context), samples


def alignment_measures(step: Step) -> list[Measure]:
    reference = step.settings.source or ""
    return [Measure(f"gwot_top1 vs {reference}", f"GWOT top-1 vs {reference.removeprefix('human · ')}", "rate", True,
                    "alignment"),
            Measure(f"gwot_category vs {reference}", f"GWOT category matching vs "
                    f"{reference.removeprefix('human · ')}", "rate", True, "alignment")]


def read_alignment(step, tables, meta, context, rule):
    from core.analyses.matching import category_chance

    image_set = context.image_set(step)
    n = len(image_set)
    chance_category = category_chance(image_set.metadata["category"].astype(str).to_numpy())
    top1, category = alignment_measures(step)
    measures = [Measure(top1.name, top1.label, top1.unit, True, "alignment", 1 / n),
                Measure(category.name, category.label, category.unit, True, "alignment", chance_category)]
    matching = tables["matching"]
    chosen = chosen_layers(matching["target"], "·", rule, step)
    cells = []
    for row in matching.to_dict("records"):
        if row["target"] in chosen:
            spec, layer = chosen[row["target"]]
            cells += [_cell(spec, measures[0].name, row["top-1"], layer=layer, step=step),
                      _cell(spec, measures[1].name, row["category"], layer=layer, step=step)]
    return cells, measures, {}


MANIFOLD_COLUMNS = {"uniformity": ("uniformity", "", False), "view_alignment": ("view alignment", "", False),
                    "alpha": ("power-law α", "", True), "effective_dimensionality": ("effective dimensionality", "",
                                                                                  True)}


def manifolds_measures(step: Step) -> list[Measure]:
    return [Measure(f"manifold_{column}", label, unit, higher, "manifolds")
            for column, (label, unit, higher) in MANIFOLD_COLUMNS.items()]


def read_manifolds(step, tables, meta, context, rule):
    metrics = tables["metrics"]
    chosen = chosen_layers(metrics["encoder"], "·", rule, step)
    cells = [_cell(chosen[row["encoder"]][0], f"manifold_{column}", row[column], layer=chosen[row["encoder"]][1],
                   step=step)
             for row in metrics.to_dict("records") if row["encoder"] in chosen for column in MANIFOLD_COLUMNS]
    return cells, manifolds_measures(step), {}


def inductive_bias_measures(step: Step) -> list[Measure]:
    return [Measure(f"bias_{kind}_drop_{corruption}", f"{kind} accuracy drop under {corruption}", "share", False,
                    "inductive_bias") for corruption in step.settings.corruptions for kind in ("linear", "knn")]


def read_inductive_bias(step, tables, meta, context, rule):
    metrics = tables["metrics"]
    cells = []
    for spec, rows in metrics.groupby("encoder", sort=False):
        layer = rule.pick([layer for layer in step.layers.get(spec, ()) if layer in set(rows["layer"])]
                          or list(rows["layer"].unique()))
        for row in rows[(rows["layer"] == layer) & (rows["corruption"] != "clean")].to_dict("records"):
            cells += [_cell(spec, f"bias_{kind}_drop_{row['corruption']}", row[f"{kind}_drop"], layer=layer, step=step)
                      for kind in ("linear", "knn")]
    return cells, inductive_bias_measures(step), {}


def brain_measures(step: Step, context: StudyContext) -> list[Measure]:
    groups = context.image_set(step).rdm_references
    names = list(step.settings.reference_groups or [group.name for group in groups])
    return [measure for name in names for measure in _brain_columns(name, "")]


def _brain_columns(reference: str, method: str) -> list[Measure]:
    """The brain columns of one reference group (and comparator, where a step has several)."""
    suffix = f" vs {reference}" + (f" ({method})" if method else "")
    return [Measure(f"brain{suffix}", f"brain score{suffix}", "comparator", True, "brain"),
            Measure(f"brain_normalised{suffix}", f"brain ceiling-normalised{suffix}", "share of ceiling", True,
                    "brain"),
            Measure(f"brain_held_out{suffix}", f"brain, layer chosen on held-out stimuli{suffix}", "comparator",
                    True, "brain")]


def read_brain(step, tables, meta, context, rule):
    from core.analyses.brain import LAYER

    models = tables["models"]
    best = tables.get("best_layers", pd.DataFrame(columns=["reference", "method", "encoder", "layer", "score"]))
    several = "method" in models and models["method"].nunique() > 1
    cells, measures = [], []
    for (reference, method), rows in models.groupby(["reference", "method"] if "method" in models else
                                                     ["reference", pd.Series("", index=models.index)], sort=False):
        score, normalised, held_out = _brain_columns(reference, method if several else "")
        measures += [score, normalised, held_out]
        for spec, layers in rows[rows["kind"] == LAYER].groupby("encoder", sort=False):
            layer = rule.pick([layer for layer in step.layers.get(spec, ()) if layer in set(layers["layer"])]
                              or list(layers["layer"]))
            row = layers[layers["layer"] == layer].iloc[0]
            cells += [_cell(spec, score.name, row["mean"], row["ci_low"], row["ci_high"], layer=layer, step=step),
                      _cell(spec, normalised.name, row["ceiling_normalised"], layer=layer, step=step)]
        for row in rows[rows["kind"] != LAYER].to_dict("records"):  # the dataset's model RDMs, as references
            cells.append(_cell(row["model"], score.name, row["mean"], row["ci_low"], row["ci_high"], step=step))
        chosen = best[(best["reference"] == reference) & ((best["method"] == method) if "method" in best else True)]
        cells += [_cell(row["encoder"], held_out.name, row["score"], layer=row["layer"], step=step)
                  for row in chosen.to_dict("records")]
    return cells, measures, {}


READERS: dict[str, Reader] = {"affect": read_affect, "probes": read_probes, "similarity": read_similarity,
                              "alignment": read_alignment, "manifolds": read_manifolds,
                              "inductive_bias": read_inductive_bias, "brain": read_brain}


def expected_measures(step: Step, context: StudyContext) -> list[Measure]:
    """The columns a step fills once it has run (what a failed or pending step leaves empty)."""
    return {"affect": lambda: affect_measures(step), "probes": lambda: probes_measures(step),
            "similarity": lambda: similarity_measures(step, context), "alignment": lambda: alignment_measures(step),
            "manifolds": lambda: manifolds_measures(step),
            "inductive_bias": lambda: inductive_bias_measures(step),
            "brain": lambda: brain_measures(step, context)}.get(
        step.analysis, lambda: [Measure(step.analysis, step.analysis, "", True, step.analysis)])()


# --- the scoreboard of a study ---------------------------------------------------------------------------------------

def study_scoreboard(study: Study, cache: str | Path, rule: LayerRule | None = None) -> Scoreboard:
    """Every stored step of `study` as one Scoreboard: a cell per model × measure, failed and missing ones marked."""
    context = open_context(study, cache)
    rule = rule or layer_rule(study)
    cells, measures, samples = [], {}, {}
    for step in study.steps:
        key = step_key(step, context)
        stored = context.results.get(STEP_KIND, key)
        reader = READERS.get(step.analysis)
        error = ""
        if stored is not None and reader is not None:
            try:
                found, declared, resampled = reader(step, {name: stored.table(name) for name in stored.table_names},
                                                    stored.meta, context, rule)
            except (KeyError, ValueError, IndexError) as problem:  # a stored table of an older shape
                error = f"cannot read the stored result: {type(problem).__name__}: {problem}"
            else:
                cells += _with_missing(step, found, declared)
                measures |= {measure.name: measure for measure in declared}
                samples |= {name: {**samples.get(name, {}), **values} for name, values in resampled.items()}
                continue
        failure = context.results.failure(STEP_KIND, key)
        if stored is not None and reader is None:  # e.g. an analysis added after the scoreboard: said, not hidden
            status, error = "n/a", f"{step.label} is stored; the scoreboard has no columns for {step.analysis} yet"
        else:
            status = "failed" if failure or error else "missing"
            error = error or (failure["error"] if failure else "never run: run the study")
        declared = expected_measures(step, context)
        measures |= {measure.name: measure for measure in declared}
        cells += [_empty(spec, measure.name, status, error, step) for spec in step.encoders for measure in declared]
    # An encoder of the study that no step scored on a measure: missing (a step would fill it), not n/a.
    have = {(cell["model"], cell["measure"]): cell for cell in cells}
    for step in study.steps:
        for measure in expected_measures(step, context):
            cells += [_empty(spec, measure.name, "missing", f"not in {step.label}: add it to the step", step)
                      for spec in study.encoders if (spec, measure.name) not in have]
            have |= {(spec, measure.name): True for spec in study.encoders}
    table = pd.DataFrame(cells, columns=list(CELL_COLUMNS))
    table = table.drop_duplicates(["model", "measure"], keep="first").reset_index(drop=True)
    return Scoreboard(table, measures, rule.sentence, samples)


def _with_missing(step: Step, cells: Cells, measures: list[Measure]) -> Cells:
    """`cells` plus a missing cell for each of the step's encoders that a measure has no value for (a model the step
    left out, or a target it could not score)."""
    have = {(cell["model"], cell["measure"]) for cell in cells}
    return cells + [_empty(spec, measure.name, "missing", f"{step.label} gave no value for it", step)
                    for spec in step.encoders for measure in measures if (spec, measure.name) not in have]


def _empty(model: str, measure: str, status: str, error: str, step: Step) -> dict:
    return {"model": model, "paradigm": paradigm_of(model), "measure": measure, "layer": "", "value": np.nan,
            "ci_low": np.nan, "ci_high": np.nan, "status": status, "error": error, "step": step.label,
            "analysis": step.analysis}


__all__ = ["LayerRule", "READERS", "chosen_layers", "expected_measures", "layer_rule", "percentile_ci",
           "study_scoreboard"]
