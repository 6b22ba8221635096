"""Layer probes: the affect ridge probe and a category probe at every block of each encoder, as depth curves."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from core.analyses.affect import TARGETS
from core.analyses.cv import CATEGORY_SCHEMES, SCHEMES
from core.analyses.probes import ProbeSettings, ProbeTargets, encoder_curves, layer_scores, pending_fits
from core.analyses.registry import Analysis, Board, Settings, register, setting
from core.analyses.scoreboard import Measure
from core.data.datasets import ImageSet
from core.features.extract import feature_keys
from core.figures.probes import BANDS, probe_curves_figure
from core.progress import Report
from core.studies.board import cell
from core.studies.context import Drawn, StepOutput, StudyContext, Tables, clean_units
from core.studies.study import Step

FIGURE_BAND = "fold_se"  # the band of the exported curves: the Layer probes page's default


@dataclass(frozen=True)
class LayerProbeSettings(Settings):
    scheme: str = setting("loto", "Cross-validation of the affect probe, as on the Affect page: LOTO holds out one "
                          "theme group at a time, LOCO a whole category, K-fold shuffled folds, grouped K-fold K folds "
                          "of whole themes. The final layer's numbers equal the Affect page's for the same scheme.",
                          choices=SCHEMES)
    category_scheme: str = setting("gkfold", "Cross-validation of the category probe. Leave-One-Category-Out is not "
                                   "offered: the held-out category never appears in training, so a category probe "
                                   "cannot name it. Grouped K-fold (default) keeps each theme group in one fold with K "
                                   "refits per layer; LOTO refits once per theme (minutes for wide layers such as raw "
                                   "pixels); K-fold shuffles images, so a theme's near-duplicates help.",
                                   choices=CATEGORY_SCHEMES)
    n_splits: int = setting(5, "Folds of the K-fold schemes (seed 0): shuffled images, or whole theme groups.",
                            low=2, high=20)

    @property
    def probe_settings(self) -> ProbeSettings:
        """The cross-validation every cached layer score is keyed by (the page's and a study's alike)."""
        return ProbeSettings(self.scheme, self.category_scheme, self.n_splits)


def probe_names(image_set: ImageSet) -> tuple[str, ...]:
    """The probes a dataset supports: valence and arousal with ratings, category with two or more categories."""
    return (TARGETS if image_set.has_affect else ()) + (("category",) if image_set.metadata["category"].nunique() > 1
                                                         else ())


def check(step: Step, image_set: ImageSet) -> tuple[str, str] | None:
    if image_set.metadata["category"].nunique() < 2 and not image_set.has_affect:
        return "analysis", f"{step.dataset} has one category and no ratings: nothing to probe"
    return None


def run(step: Step, context: StudyContext, engine, report: Report) -> StepOutput:
    image_set, settings = context.image_set(step), step.settings.probe_settings
    probes = probe_names(image_set)
    targets = ProbeTargets.from_metadata(image_set.metadata)
    todo = []
    for spec in step.encoders:
        keys = feature_keys(image_set, context.info(spec), "all", context.pooling(spec))
        todo += [(keys[layer], kind) for layer, kind in pending_fits(image_set, context.info(spec), settings=settings,
                                                                    probes=probes, pooling=context.pooling(spec),
                                                                    results=context.scores)]

    def stored(index: int, scores: list) -> None:  # under the Layer probes page's key, as each fit arrives
        key, kind = todo[index]
        context.scores.set(settings.cache_key(key.digest, kind), [asdict(score) for score in scores])

    engine.map(layer_scores, [{"features": np.asarray(context.features.load(key)), "probe": kind} for key, kind in todo],
               shared={"targets": targets, "settings": settings}, progress=report, on_result=stored)
    curves = pd.concat([encoder_curves(image_set, context.info(spec), context.features, settings=settings, probes=probes,
                                       pooling=context.pooling(spec), results=context.scores)
                        for spec in step.encoders], ignore_index=True)
    return StepOutput({"curves": curves}, f"{len(todo)} fits, {len(curves)} layer scores")


def draw(step: Step, stored, tables: Tables, context: StudyContext) -> Drawn:
    chance = 1 / context.image_set(step).metadata["category"].nunique()
    return {f"curves_{axis}": lambda axis=axis: probe_curves_figure(tables["curves"], x=axis, band=FIGURE_BAND,
                                                                    category_chance=chance)
            for axis in ("depth", "layer_index")}, {}, []


def methods_rows(step: Step, stored) -> list[tuple[str, str]]:
    return [("figure band", BANDS[FIGURE_BAND])] if stored is not None else []


# --- the Scoreboard's columns and cells of a stored step (core.studies.scoreboard) ---------------------------------

def probes_measures(step: Step, context: StudyContext) -> list[Measure]:
    return [measure for probe in (*TARGETS, "category") for measure in (
        Measure(f"probe_{probe}_peak_depth", f"{probe} probe peak depth", "depth 0–1", True, "probes"),
        Measure(f"probe_{probe}_late_fraction", f"{probe} probe late fraction", "share", True, "probes"))]


def read_probes(step, tables, meta, context, rule):
    from core.analyses.probes import summary_table  # the Layer probes page's own summary of the stored curves

    cells = [found for row in summary_table(tables["curves"]).itertuples() for found in (
        cell(row.encoder, f"probe_{row.probe}_peak_depth", row.peak_depth, layer="all", step=step),
        cell(row.encoder, f"probe_{row.probe}_late_fraction", row.late_fraction, layer="all", step=step))]
    return cells, probes_measures(step, context), {}


ENTRY = register(Analysis("probes", "Layer probes", "views/probes.py", "📈", LayerProbeSettings, clean_units, run,
                          draw, check=check, methods_rows=methods_rows, all_layers=True, order=30,
                         board=Board(probes_measures, read_probes)))
