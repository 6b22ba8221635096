"""Affect probes: ridge probes of valence and arousal under cross-validation, then the geometry of their errors."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd

from core.analyses.affect import TARGETS, assemble_predictions, fit_folds
from core.analyses.affect_report import (PREDICTIONS_KIND, AffectAnalysis, affect_analysis, load_predictions,
                                        predictions_key, predictions_meta, save_predictions)
from core.analyses.cv import SCHEMES, CrossValidation
from core.analyses.registry import Analysis, Board, CannotOpen, Settings, register, setting
from core.analyses.scoreboard import Measure
from core.data.datasets import ImageSet
from core.features.extract import FeatureSet
from core.figures.affect import error_field_figure, error_rose_figure, occupancy_figure, r2_summary_figure
from core.progress import Progress, Report
from core.studies.board import cell, chosen_layers
from core.studies.context import Drawn, StepOutput, StudyContext, Tables, clean_units, feature_sets
from core.studies.study import Step


@dataclass(frozen=True)
class AffectSettings(Settings):
    schemes: tuple = setting(("loto", "loco"), "Cross-validation schemes to compare: Leave-One-Theme-Out (whole "
                             "theme groups held out), Leave-One-Category-Out, K-fold, grouped K-fold.",
                             choices=SCHEMES, many=True)
    n_splits: int = setting(5, "K of the K-fold schemes (plain and grouped).", low=2, high=20)
    geometry_scheme: str | None = setting(None, "The scheme whose out-of-fold errors the geometry figures show "
                                          "(default: the first scheme).", choices=SCHEMES)
    zscore: bool = setting(False, "Divide each rating axis by the SD of the ratings before the error geometry "
                           "(docs/science.md §3); default: raw rating units.")
    bins: int = setting(20, "Grid cells per axis of the occupancy histograms (B in docs/science.md §3).",
                        low=8, high=40)

    @property
    def cvs(self) -> list[CrossValidation]:
        return [CrossValidation(scheme, self.n_splits) for scheme in self.schemes]

    @property
    def geometry_cv(self) -> CrossValidation:
        return CrossValidation(self.geometry_scheme or self.schemes[0], self.n_splits)


def check(step: Step, image_set) -> tuple[str, str] | None:
    if not image_set.has_affect:
        return "analysis", f"{step.dataset} has no valence/arousal ratings, which affect probes predict"
    if step.settings.geometry_scheme and step.settings.geometry_scheme not in step.settings.schemes:
        return "geometry_scheme", f"{step.settings.geometry_scheme!r} is not one of the step's schemes"
    return None


def model_label(spec: str, layer: str) -> str:
    """How the analysis names one encoder layer: `<spec> [<layer>]` (its tables' `model`, its stored predictions')."""
    return f"{spec} [{layer}]"


def analysis_of(image_set: ImageSet, features: Mapping[str, FeatureSet], settings: AffectSettings,
                **options) -> AffectAnalysis:
    """The analysis of `features` (by model label) under `settings`: the study step's, its export's and the page's.

    `options` go to `affect_analysis` (memo, store, progress)."""
    return affect_analysis(image_set, features, settings.cvs, settings.geometry_cv, zscore=settings.zscore,
                           bins=settings.bins, **options)


def _features(step: Step, context: StudyContext) -> dict:
    return {model_label(layer.spec, layer.layer): feature_set
            for layer, feature_set in feature_sets(step, context).items()}


def run(step: Step, context: StudyContext, engine, report: Report) -> StepOutput:
    image_set, settings = context.image_set(step), step.settings
    metadata = image_set.metadata
    features = _features(step, context)
    targets = metadata[list(TARGETS)].to_numpy(dtype=float)
    fits = [(label, cv) for label in features for cv in dict.fromkeys([*settings.cvs, settings.geometry_cv])]
    for done, (label, cv) in enumerate(fits):
        key = predictions_key(features[label].key.digest, cv)
        if load_predictions(context.results, key) is None:
            groups = cv.groups(metadata)
            splits = cv.split(groups)
            # Folds in chunks: a task per chunk keeps every worker busy without one task per tiny fold.
            chunks = [list(chunk) for chunk in np.array_split(np.arange(len(splits)), min(len(splits),
                                                                                            4 * context.parallelism))]
            folds = engine.map(fit_folds, [{"indices": chunk} for chunk in chunks if chunk],
                               shared={"features": np.asarray(features[label].features), "targets": targets,
                                       "splits": splits})
            predictions = assemble_predictions([fit for chunk in folds for fit in chunk], targets, groups, cv)
            save_predictions(context.results, key, predictions,
                             {**predictions_meta(label, features[label].key, cv, image_set.name),
                              "dataset": step.dataset})
        report(Progress(done + 1, len(fits)))
    analysis = analysis_of(image_set, features, settings, store=context.results)
    predictions = pd.concat([pd.DataFrame({"model": panel.label, "image_id": panel.image_ids,
                                           "category": panel.categories, "valence_true": panel.y_true[:, 0],
                                           "arousal_true": panel.y_true[:, 1], "valence_pred": panel.y_pred[:, 0],
                                           "arousal_pred": panel.y_pred[:, 1]}) for panel in analysis.panels],
                            ignore_index=True)
    best = analysis.metrics.sort_values("r2", ascending=False).iloc[0]
    return StepOutput({"metrics": analysis.metrics, "paired": analysis.paired, "per_group": analysis.per_group,
                       "measures": analysis.measures, "predictions": predictions},
                      f"best R² {best['r2']:.3f} ({best['model']}, {best['target']}, {best['scheme']})")


def draw(step: Step, stored, tables: Tables, context: StudyContext) -> Drawn:
    @cache
    def analysis() -> AffectAnalysis:
        """The page's analysis of the step's models, from their stored out-of-fold predictions (nothing is fitted
        while they are stored, and `run` stored every one it reads)."""
        return analysis_of(context.image_set(step), _features(step, context), step.settings, store=context.results)

    return {"r2": lambda: r2_summary_figure(tables["metrics"]),
            "error_field": lambda: error_field_figure(analysis().panels, color_by_category=True),
            "occupancy": lambda: occupancy_figure(analysis().occupancies),
            "error_rose": lambda: error_rose_figure(analysis().panels)}, {}, []


def page_state(settings: AffectSettings, meta) -> tuple[dict, list[str]]:
    """The page shows the geometry of the first scheme unless told otherwise."""
    state = {f"affect.{name}": value for name, value in settings.items()}
    state["affect.geometry_scheme"] = settings.geometry_scheme or settings.schemes[0]
    return state, []


def open_stored(kind: str, meta, store) -> tuple[dict, dict, list[str]]:
    """Out-of-fold predictions: their encoder, layer, scheme and K as stored with them. Predictions stored before
    they recorded those fields name them only in their label `<spec> [<layer>] · <scheme>`, read as a fallback."""
    scheme, spec, layer = meta.get("scheme"), meta.get("encoder"), meta.get("layer")
    if not spec:
        model, separator, _ = meta.get("label", "").partition("] · ")
        spec, bracket, layer = model.rpartition(" [")
        spec = spec if separator and bracket else ""
    if not (spec and layer and scheme):
        raise CannotOpen("these predictions do not record their encoder, layer and scheme")
    widgets = {"affect.schemes": [scheme], "affect.geometry_scheme": scheme}
    notes = []
    if meta.get("n_splits"):
        widgets["affect.n_splits"] = int(meta["n_splits"])
    else:
        notes.append("These out-of-fold predictions do not record K: the Affect page opens with its current K.")
    if not meta.get("dataset"):
        notes.append("These out-of-fold predictions do not record their dataset: the Affect page opens on the "
                     "sidebar's dataset, and reads these predictions where they match.")
    return {"dataset": meta.get("dataset"), "encoders": [spec], "layers": {spec: [layer]}}, widgets, notes


# --- the Scoreboard's columns and cells of a stored step (core.studies.scoreboard) ---------------------------------

def affect_measures(step: Step, context: StudyContext) -> list[Measure]:
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
            cells.append(cell(spec, f"affect_r2_{row.scheme}_{row.target}", row.r2, row.r2_lo, row.r2_hi,
                               layer=layer, step=step))
        for target in TARGETS:
            if ("loto", target) in r2 and ("loco", target) in r2:
                cells.append(cell(spec, f"affect_r2_drop_{target}", r2[("loto", target)] - r2[("loco", target)],
                                   layer=layer, step=step))
        geometry = measures[measures["model"] == label]
        if not geometry.empty:
            row = geometry.iloc[0]
            cells += [cell(spec, "affect_plv", row["plv"], layer=layer, step=step),
                      cell(spec, "affect_occupancy_entropy", row["trajectory_entropy"], layer=layer, step=step),
                      cell(spec, "affect_pull_index", row["pull_index"], layer=layer, step=step)]
    return cells, affect_measures(step, context), {}


ENTRY = register(Analysis("affect", "Affect", "views/affect.py", "🎭", AffectSettings, clean_units, run, draw,
                          check=check, page_state=page_state, order=20,
                          result_kinds=(PREDICTIONS_KIND,), open_stored=open_stored,
                         board=Board(affect_measures, read_affect)))
