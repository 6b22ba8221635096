"""Inductive bias: how category information in frozen features survives patch shuffling and gamma (§7)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from core.analyses.cv import CATEGORY_SCHEMES
from core.analyses.inductive_bias import TRAIN_ON, BiasSettings, corruption_metrics
from core.analyses.registry import Analysis, Board, Settings, register, setting
from core.analyses.scoreboard import Measure
from core.data.corruptions import CLEAN, DEFAULT_SEED, FAMILIES, Corruption, parse_corruption
from core.data.datasets import ImageSet
from core.data.selections import per_class_subset
from core.encoders.specs import ModelLayer
from core.figures.inductive_bias import corruption_curves_figure
from core.progress import Progress, Report
from core.studies.board import cell
from core.studies.analyses.manifolds import layer_labels
from core.studies.context import Drawn, ExtractionUnit, StepOutput, StudyContext, Tables
from core.studies.study import Step

GRID_SIZES = (2, 3, 4, 6, 7, 8, 14, 16, 28)  # the shuffle levels the page offers
GAMMAS = (0.2, 0.33, 0.5, 0.67, 1.5, 2.0, 2.5, 3.0)  # the gamma levels the page offers


def _corruptions(value):
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError('must be a non-empty list such as ["glo_2", "loc_8", "gamma_0.5"]')
    for name in value:
        parse_corruption(str(name))
    return tuple(value)


@dataclass(frozen=True)
class CorruptionSettings(Settings):
    corruptions: tuple = setting(("glo_2", "glo_8", "loc_2", "loc_8"),
                                 "glo_N: an N × N grid of patches changes places (one fixed permutation for every "
                                 "image; glo_N_rand: one per image). loc_N: the pixels inside every patch are "
                                 "permuted (one permutation for every patch). gamma_g: x' = 255 (x/255)^g.",
                                 check=_corruptions)
    images_per_class: int = setting(25, "A random subset of each category (seed 0): every image goes through the "
                                    "encoder once per corruption level.", low=2, high=10_000)
    scheme: str = setting("gkfold", "For both probes. Grouped K-fold keeps each theme group in one fold (default: a "
                          "tenth of LOTO's refits on OASIS); LOTO holds out one theme at a time; K-fold shuffles "
                          "images (near-duplicates of a theme then help the k-NN probe).", choices=CATEGORY_SCHEMES)
    n_splits: int = setting(5, "Folds of the K-fold schemes (seed 0).", low=2, high=20)
    k: int = setting(10, "k-NN probe: majority vote of the k cosine-nearest training images.", low=1, high=200)
    train_on: str = setting("corrupted", "corrupted: each fold trains and tests on corrupted features (how much "
                            "category information survives). clean: trains on clean images, tests corrupted held-out "
                            "ones (does a clean readout still work).", choices=TRAIN_ON)

    @property
    def probe_settings(self) -> BiasSettings:
        return BiasSettings(k=self.k, scheme=self.scheme, n_splits=self.n_splits, train_on=self.train_on)


def check(step: Step, image_set: ImageSet) -> tuple[str, str] | None:
    if image_set.metadata["category"].nunique() < 2:
        return "analysis", f"{step.dataset} has one category: no category probe to degrade"
    return None


def corruption_subset(image_set: ImageSet, settings: CorruptionSettings) -> ImageSet:
    """The images the probes see: `images_per_class` of each category (seed 0)."""
    return image_set.subset(per_class_subset(image_set, settings.images_per_class))


def corruptions_of(settings: CorruptionSettings, seed: int = DEFAULT_SEED) -> list[Corruption]:
    """The settings' corruptions, shuffles permuted with `seed` (a study step's is always Zhong et al.'s)."""
    return [parse_corruption(name, seed) for name in settings.corruptions]


def corruption_names(families: Sequence[str], levels: Mapping[str, Sequence[float]],
                     per_image: bool) -> tuple[str, ...]:
    """The `corruptions` setting of the page's families (in their order), each family's levels ascending: what
    `page_state` splits back into families and levels."""
    return tuple(Corruption(family, float(level), per_image=per_image).name for family in families
                 for level in sorted(levels.get(family, ())))


def bias_subset(step: Step, context: StudyContext) -> ImageSet:
    return corruption_subset(context.image_set(step), step.settings)


def units(step: Step, context: StudyContext) -> list[ExtractionUnit]:
    subset = bias_subset(step, context)
    conditions = [CLEAN, *corruptions_of(step.settings)]
    return [ExtractionUnit(subset, context.info(spec), step.layers[spec], context.pooling(spec),
                           condition.input_transform) for spec in step.encoders for condition in conditions]


def run(step: Step, context: StudyContext, engine, report: Report) -> StepOutput:
    subset, settings = bias_subset(step, context), step.settings
    corruptions = corruptions_of(settings)
    tables = []
    for done, layer in enumerate(step.model_layers):  # every array is extracted already: the probes run here
        tables.append(corruption_metrics(subset, context.info(layer.spec), layer.layer, context.features, corruptions,
                                         settings.probe_settings, pooling=context.pooling(layer.spec),
                                         results=context.scores))
        report(Progress(done + 1, len(step.model_layers)))
    table = pd.concat(tables, ignore_index=True)
    return StepOutput({"metrics": table}, f"{len(step.model_layers)} encoder layer(s) × {len(corruptions) + 1} conditions")


def draw(step: Step, stored, tables: Tables, context: StudyContext) -> Drawn:
    metrics = tables["metrics"].copy()
    metrics.insert(0, "model", [ModelLayer(*pair).label for pair in zip(metrics["encoder"], metrics["layer"])])
    categories = bias_subset(step, context).metadata["category"]  # the images the probes saw: chance levels
    chance = {"knn_accuracy": categories.value_counts(normalize=True).max(),
              "linear_balanced_accuracy": 1 / categories.nunique()}
    title = "Category probes vs corruption level"
    return {"accuracy": lambda: corruption_curves_figure(metrics, ["knn_accuracy", "linear_balanced_accuracy"],
                                                         title=title, chance=chance),
            "relative_drop": lambda: corruption_curves_figure(metrics, ["knn_drop", "linear_drop"], title=title),
            "uniformity": lambda: corruption_curves_figure(metrics, ["uniformity"],
                                                           title="Uniformity vs corruption level"),
            "clean_similarity": lambda: corruption_curves_figure(
                metrics, ["clean_similarity"], title="Cosine between corrupted and clean features",
                floor="unrelated_similarity")}, {}, ["corruption gallery: drawn from the images, not a result"]


def page_state(settings: CorruptionSettings, meta) -> tuple[dict, list[str]]:
    """Corruptions as the page's families and levels (levels it does not offer are named), per-image or fixed."""
    corruptions = corruptions_of(settings)
    notes, levels = [], {}
    for corruption in corruptions:
        options = GAMMAS if corruption.family == "gamma" else GRID_SIZES
        match = [option for option in options if math.isclose(option, corruption.level)]
        if match:
            levels.setdefault(corruption.family, []).append(match[0])
        else:
            notes.append(f"{corruption.name}: the page offers no such level.")
    per_image = {corruption.per_image for corruption in corruptions if corruption.shuffles}
    if len(per_image) > 1:
        notes.append("The step mixes fixed and per-image permutations; the page uses one kind for all.")
    families = [family for family in FAMILIES if family in levels]
    state = {f"inductive_bias.{name}": value for name, value in settings.items() if name != "corruptions"}
    return {**state, "inductive_bias.layers": layer_labels(meta), "inductive_bias.families": families,
            **{f"inductive_bias.levels.{family}": levels[family] for family in families},
            "inductive_bias.seed": DEFAULT_SEED, "inductive_bias.per_image": any(per_image)}, notes


# --- the Scoreboard's columns and cells of a stored step (core.studies.scoreboard) ---------------------------------

def inductive_bias_measures(step: Step, context: StudyContext) -> list[Measure]:
    return [Measure(f"bias_{kind}_drop_{corruption}", f"{kind} accuracy drop under {corruption}", "share", False,
                    "inductive_bias") for corruption in step.settings.corruptions for kind in ("linear", "knn")]


def read_inductive_bias(step, tables, meta, context, rule):
    metrics = tables["metrics"]
    cells = []
    for spec, rows in metrics.groupby("encoder", sort=False):
        layer = rule.pick([layer for layer in step.layers.get(spec, ()) if layer in set(rows["layer"])]
                          or list(rows["layer"].unique()))
        for row in rows[(rows["layer"] == layer) & (rows["corruption"] != "clean")].to_dict("records"):
            cells += [cell(spec, f"bias_{kind}_drop_{row['corruption']}", row[f"{kind}_drop"], layer=layer, step=step)
                      for kind in ("linear", "knn")]
    return cells, inductive_bias_measures(step, context), {}


ENTRY = register(Analysis("inductive_bias", "Inductive bias", "views/inductive_bias.py", "🧩", CorruptionSettings,
                          units, run, draw, check=check, page_state=page_state, order=80,
                         board=Board(inductive_bias_measures, read_inductive_bias)))
