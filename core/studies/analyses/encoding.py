"""Encoding: every layer of the step's encoders as a cross-validated ridge model of each unit of the dataset's
response patterns, per subject, against each unit's split-half reliability (docs/science.md §11).

A step stores three tables (`core.analyses.encoding_tables`): `layers` (per encoder · layer · group · subject: median
r, ceiling-normalised median r, median R², fraction of reliable units), `units` (every unit's r, R² and reliability)
and `ceilings`. The section sits on the Brain page; its key is the page's, so a step opens there at once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.analyses.encoding import ENCODING_ALPHAS, MIN_RELIABILITY
from core.analyses.encoding_tables import encoding_tables, layer_summary
from core.analyses.registry import Analysis, Board, Settings, register, setting
from core.analyses.scoreboard import Measure, versus
from core.data.datasets import ImageSet
from core.jobs import job_key
from core.studies.analyses.brain import name_list, store_tables
from core.progress import Report
from core.studies.board import cell
from core.studies.context import Drawn, Figures, StepOutput, StudyContext, Tables, clean_units, feature_sets, slug
from core.studies.study import Step

ALPHA_GRIDS = {"standard": ENCODING_ALPHAS, "fine": np.logspace(-2, 8, 61)}  # both 1e-2 .. 1e8, log-spaced
TABLES = ("layers", "units", "ceilings")


@dataclass(frozen=True)
class EncodingSettings(Settings):
    pattern_groups: tuple | None = setting(None, "The dataset's response-pattern groups (per subject N items × U "
                                           "units, optionally R repetitions) each layer predicts. Default: all.",
                                           many=True, check=name_list)
    n_splits: int = setting(5, "K of the K-fold cross-validation over items (shuffled with the seed): every item's "
                            "response is predicted by a model that never saw it.", low=2, high=20)
    min_reliability: float = setting(MIN_RELIABILITY, "Units whose split-half reliability (Spearman-Brown) is at or "
                                     "below this are left out of the medians: their ceiling is too low to say "
                                     "anything. Without repetitions every unit counts.", low=0.0, high=0.99)
    alpha_grid: str = setting("standard", "Ridge penalties tried by leave-one-out inside each training fold: "
                              "standard = 21, fine = 61 values log-spaced from 1e-2 to 1e8.",
                              choices=tuple(ALPHA_GRIDS))
    alpha_per_unit: bool = setting(True, "Choose the penalty for each unit (on) or one for all units of a fit (off).")
    seed: int = setting(0, "Seed of the folds and of the random split-halves: the same seed gives the same numbers.",
                        low=0, high=2 ** 31 - 1)


def chosen_groups(settings: EncodingSettings, image_set: ImageSet) -> list:
    """The chosen pattern groups (default: all), in the dataset's order."""
    wanted = settings.pattern_groups
    return [group for group in image_set.pattern_references if not wanted or group.name in wanted]


def check(step: Step, image_set: ImageSet) -> tuple[str, str] | None:
    groups = [group.name for group in image_set.pattern_references]
    if not groups:
        return "analysis", (f"{step.dataset} has no response patterns (a neural:<folder> with a patterns/ folder, or "
                            f"|patterns=<file or folder> on any dataset, gives them)")
    for name in step.settings.pattern_groups or ():
        if name not in groups:
            return "pattern_groups", f"{step.dataset} has no pattern group {name!r}; it has {', '.join(groups)}"
    if step.settings.n_splits > len(image_set) // 2:
        return "n_splits", (f"{step.settings.n_splits} folds over {len(image_set)} items leave fewer than 2 items per "
                            f"fold; use at most {len(image_set) // 2}")
    return None


def compute(settings: EncodingSettings, image_set: ImageSet, features: dict, layer_order: dict,
            progress: Report | None = None) -> Tables:
    """The encoding tables of every layer in `features` ((spec, layer) -> (N, D)) for the chosen groups: what a
    step runs and the Brain page's section calls."""
    return encoding_tables(features, layer_order, chosen_groups(settings, image_set),
                           alphas=ALPHA_GRIDS[settings.alpha_grid], alpha_per_unit=settings.alpha_per_unit,
                           n_splits=settings.n_splits, seed=settings.seed, min_reliability=settings.min_reliability,
                           progress=progress)


def result_key(settings: EncodingSettings, image_set: ImageSet, layer_digests) -> str:
    """Where the tables of `settings` over the layers of `layer_digests` are stored in the ResultCache (the page's
    key and a step's alike; the default groups resolved to names)."""
    groups = sorted(group.name for group in chosen_groups(settings, image_set))
    return "encoding|" + job_key("encoding", image_set.fingerprint, groups, settings.n_splits,
                                 settings.min_reliability, settings.alpha_grid, settings.alpha_per_unit,
                                 settings.seed, sorted(layer_digests))


def stored_tables(cache, key: str) -> Tables | None:
    """The tables stored under `key` (None: not computed yet), as `store_tables` (the Brain step's) wrote them."""
    found = cache.get(key)
    return None if found is None else {name: pd.DataFrame.from_records(found[name]["records"],
                                                                       columns=found[name]["columns"])
                                       for name in TABLES}


def run(step: Step, context: StudyContext, engine, report: Report) -> StepOutput:
    image_set = context.image_set(step)
    found = feature_sets(step, context).items()
    features = {(layer.spec, layer.layer): np.asarray(feature_set.features) for layer, feature_set in found}
    key = result_key(step.settings, image_set, [feature_set.key.digest for _, feature_set in found])
    tables = stored_tables(context.scores, key)
    if tables is None:
        tables = compute(step.settings, image_set, features, dict(step.layers), report)
        store_tables(context.scores, key, tables)
    layers = tables["layers"]
    groups = list(dict.fromkeys(layers["group"]))
    return StepOutput(tables, f"{len(features)} layers × {len(tables['ceilings'])} subjects ({', '.join(groups)}), "
                              f"{step.settings.n_splits}-fold ridge; best median r {layers['median_r'].max():.3f}",
                      {"groups": groups, "result_key": key})


def draw(step: Step, stored, tables: Tables, context: StudyContext) -> Drawn:
    from core.figures.encoding import encoding_curves_figure, unit_scatter_figure

    layers, units, ceilings = tables["layers"], tables["units"], tables["ceilings"]
    figures: Figures = {}
    for group in dict.fromkeys(layers["group"]):
        ceiling = ceilings[ceilings["group"] == group]["median_ceiling_r"].mean()
        figures[f"layers_{slug(group)}"] = lambda group=group, ceiling=ceiling: encoding_curves_figure(
            layer_summary(layers, group), layer_summary(layers, group, "median_r_normalised"), group, ceiling)
        for encoder, rows in layers[layers["group"] == group].groupby("encoder", sort=False):
            deepest = rows.sort_values("depth")["layer"].iloc[-1]
            shown = units[(units["group"] == group) & (units["encoder"] == encoder) & (units["layer"] == deepest)]
            figures[f"units_{slug(group)}_{slug(encoder)}"] = lambda shown=shown, name=f"{group} · {encoder} · " \
                f"{deepest}": unit_scatter_figure(shown, name)
    return figures, {}, []


# --- the Scoreboard's columns and cells of a stored step (core.studies.scoreboard) ---------------------------------

def encoding_measures(step: Step, context: StudyContext) -> list[Measure]:
    groups = [group.name for group in chosen_groups(step.settings, context.image_set(step))]
    return [measure for group in groups for measure in (
        versus("encoding_r", group, "encoding median r", "Pearson r", True, "encoding"),
        versus("encoding_r_normalised", group, "encoding median r / √reliability", "share of ceiling", True,
               "encoding"))]


def read_encoding(step, tables, meta, context, rule):
    """Each encoder at the rule's layer: its median r over reliable units (raw and over √reliability) against each
    pattern group, averaged over the group's subjects (what the Brain page's encoding curve shows)."""
    layers, cells = tables["layers"], []
    for (spec, group), rows in layers.groupby(["encoder", "group"], sort=False):
        layer = rule.pick([layer for layer in step.layers.get(spec, ()) if layer in set(rows["layer"])]
                          or list(dict.fromkeys(rows["layer"])))
        chosen = rows[rows["layer"] == layer]
        cells += [cell(spec, f"encoding_r vs {group}", chosen["median_r"].mean(), layer=layer, step=step),
                  cell(spec, f"encoding_r_normalised vs {group}", chosen["median_r_normalised"].mean(), layer=layer,
                       step=step)]
    return cells, encoding_measures(step, context), {}


ENTRY = register(Analysis("encoding", "Encoding models", "views/brain.py", "🧠", EncodingSettings, clean_units, run,
                          draw, check=check, all_layers=True, order=56,
                          board=Board(encoding_measures, read_encoding)))
