"""What each analysis of a study extracts, how it splits into engine tasks, and what it stores.

Per analysis, a `*_units(step, context)` function lists the feature arrays it needs (extraction runs
first, `core.studies.run`), and `run_<analysis>(step, context, engine, report)` computes it and
returns the tables it stores (similarity and alignment: `core.studies.comparisons`). Each fills the stores the pages read (the same keys the pages use):
alignments and out-of-fold predictions in the ResultStore, probe scores in the ResultCache,
similarity matrices in the SimilarityStore, features in the FeatureStore.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np
import pandas as pd

from core.analyses.affect import TARGETS, assemble_predictions, fit_folds
from core.analyses.affect_report import affect_analysis, load_predictions, predictions_key, save_predictions
from core.analyses.cv import CrossValidation
from core.analyses.inductive_bias import BiasSettings, corruption_metrics
from core.analyses.manifolds import analyse_manifolds, compare_manifolds
from core.analyses.probes import ProbeSettings, ProbeTargets, encoder_curves, layer_scores, pending_fits
from core.analyses.similarity import SimilarityStore
from core.data.corruptions import CLEAN, parse_corruption
from core.data.datasets import ImageSet, per_class_subset
from core.data.transforms import IDENTITY, AugmentationPipeline, InputTransform, augmentation_views
from core.encoders.registry import EncoderInfo
from core.encoders.specs import ModelLayer
from core.features.extract import FeatureSet, feature_keys
from core.features.results import ResultStore
from core.features.store import FeatureKey, FeatureStore, ResultCache
from core.studies.spec import Step, Study

Report = Callable[[int, int], None]


@dataclass
class StudyContext:
    """What every step reads and writes: the study, the stores and the engine's extraction settings."""

    study: Study
    features: FeatureStore
    results: ResultStore
    scores: ResultCache  # per-layer probe scores and other small JSON results, as the pages keep them
    similarity: SimilarityStore
    gpus_per_task: float = 0.0
    parallelism: int = 1  # tasks the engine runs at once (how finely to split work)

    def image_set(self, step: Step) -> ImageSet:
        return self.study.image_sets[step.dataset]

    def info(self, spec: str) -> EncoderInfo:
        return self.study.infos[spec]

    def pooling(self, spec: str) -> str:
        """The pooling an encoder uses for the study's choice (its default where it cannot do that one)."""
        return self.info(spec).effective_pooling(self.study.pooling)


@dataclass(frozen=True, eq=False)
class ExtractionUnit:
    """Layers of one encoder on one image set under one input transform: one forward pass gives them all."""

    image_set: ImageSet
    info: EncoderInfo
    layers: tuple[str, ...]
    pooling: str
    input_transform: InputTransform = IDENTITY

    @cached_property
    def keys(self) -> dict[str, FeatureKey]:
        return feature_keys(self.image_set, self.info, self.layers, self.pooling, self.input_transform)

    @property
    def identity(self) -> tuple:
        return self.image_set.fingerprint, self.info.spec, self.pooling, self.input_transform.name

    @property
    def label(self) -> str:
        view = "" if self.input_transform.name == "clean" else f" [{_short(self.input_transform.name)}]"
        return f"extract {self.info.spec}{view} · {len(self.layers)} layer(s) · {len(self.image_set)} images"


def _short(view: str) -> str:
    """"views m=8" for an augmentation's long name, "glo_8" for a corruption's."""
    parts = view.split("|")
    return f"views {parts[1]}" if len(parts) > 1 else view.removeprefix("corrupt:")


@dataclass(frozen=True, eq=False)
class StepOutput:
    """A finished step: tables to store (and export), a line for the summary."""

    tables: dict[str, pd.DataFrame]
    summary: str
    meta: dict = field(default_factory=dict)


# --- inputs -------------------------------------------------------------------------------------------------------

def clean_units(step: Step, context: StudyContext) -> list[ExtractionUnit]:
    return [ExtractionUnit(context.image_set(step), context.info(spec), step.layers[spec], context.pooling(spec))
            for spec in step.encoders] if context.image_set(step).has_images else []


def feature_sets(step: Step, context: StudyContext, image_set: ImageSet | None = None) -> dict[ModelLayer, FeatureSet]:
    image_set = image_set or context.image_set(step)
    found = {}
    for spec in step.encoders:
        keys = feature_keys(image_set, context.info(spec), step.layers[spec], context.pooling(spec))
        for layer, key in keys.items():
            found[ModelLayer(spec, layer)] = FeatureSet(key, context.features.load(key))
    return found


def input_fingerprints(step: Step, context: StudyContext) -> dict[str, str]:
    """What a step's result depends on: the dataset and each encoder layer's feature key (its digest)."""
    image_set = context.image_set(step)
    inputs = {"dataset": image_set.fingerprint, "pooling": context.study.pooling}
    for spec in step.encoders:
        if image_set.has_images:
            for layer, key in feature_keys(image_set, context.info(spec), step.layers[spec],
                                           context.pooling(spec)).items():
                inputs[ModelLayer(spec, layer).label] = key.digest
    return inputs


# --- affect --------------------------------------------------------------------------------------------------------

def run_affect(step: Step, context: StudyContext, engine, report: Report) -> StepOutput:
    image_set, settings = context.image_set(step), step.settings
    metadata = image_set.metadata
    features = {f"{layer.spec} [{layer.layer}]": feature_set for layer, feature_set in feature_sets(step, context).items()}
    cvs = [CrossValidation(scheme, settings["n_splits"]) for scheme in settings["schemes"]]
    geometry_cv = CrossValidation(settings["geometry_scheme"] or settings["schemes"][0], settings["n_splits"])
    targets = metadata[list(TARGETS)].to_numpy(dtype=float)
    fits = [(label, cv) for label in features for cv in dict.fromkeys([*cvs, geometry_cv])]
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
            save_predictions(context.results, key, predictions, {"label": f"{label} · {cv.label}"})
        report(done + 1, len(fits))
    analysis = affect_analysis(image_set, features, cvs, geometry_cv, zscore=settings["zscore"], bins=settings["bins"],
                               store=context.results)
    predictions = pd.concat([pd.DataFrame({"model": panel.label, "image_id": panel.image_ids,
                                           "category": panel.categories, "valence_true": panel.y_true[:, 0],
                                           "arousal_true": panel.y_true[:, 1], "valence_pred": panel.y_pred[:, 0],
                                           "arousal_pred": panel.y_pred[:, 1]}) for panel in analysis.panels],
                            ignore_index=True)
    best = analysis.metrics.sort_values("r2", ascending=False).iloc[0]
    return StepOutput({"metrics": analysis.metrics, "paired": analysis.paired, "per_group": analysis.per_group,
                       "measures": analysis.measures, "predictions": predictions},
                      f"best R² {best['r2']:.3f} ({best['model']}, {best['target']}, {best['scheme']})")


# --- layer probes ---------------------------------------------------------------------------------------------------

def probe_settings(step: Step) -> ProbeSettings:
    return ProbeSettings(step.settings["scheme"], step.settings["category_scheme"], step.settings["n_splits"])


def probe_names(image_set: ImageSet) -> tuple[str, ...]:
    """The probes a dataset supports: valence and arousal with ratings, category with two or more categories."""
    return (TARGETS if image_set.has_affect else ()) + (("category",) if image_set.metadata["category"].nunique() > 1
                                                         else ())


def run_probes(step: Step, context: StudyContext, engine, report: Report) -> StepOutput:
    image_set, settings = context.image_set(step), probe_settings(step)
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


# --- manifolds -----------------------------------------------------------------------------------------------------

def manifold_views(step: Step, context: StudyContext) -> tuple[ImageSet, ImageSet, InputTransform]:
    """(subset of images_per_class per category, its N·m views, the augmentation) with CLAMP's default pipeline."""
    image_set = context.image_set(step)
    subset = image_set.subset(per_class_subset(image_set, step.settings["images_per_class"]))
    views, transform = augmentation_views(subset, step.settings["m"], AugmentationPipeline())
    return subset, views, transform


def manifold_units(step: Step, context: StudyContext) -> list[ExtractionUnit]:
    _, views, transform = manifold_views(step, context)
    return [ExtractionUnit(views, context.info(spec), step.layers[spec], context.pooling(spec), transform)
            for spec in step.encoders]


def run_manifolds(step: Step, context: StudyContext, engine, report: Report) -> StepOutput:
    subset, views, transform = manifold_views(step, context)
    m, settings = step.settings["m"], step.settings
    analyses = {}
    for done, layer in enumerate(step.model_layers):
        key = feature_keys(views, context.info(layer.spec), [layer.layer], context.pooling(layer.spec),
                           transform)[layer.layer]
        view_features = np.asarray(context.features.load(key)).reshape(len(subset), m, -1)
        analyses[layer.label] = analyse_manifolds(view_features, subset.metadata["category"].to_numpy(),
                                                  subset.metadata["image_id"].to_numpy(),
                                                  radius_scale=settings["radius_scale"], map_method=settings["map"],
                                                  map_parameter=settings["map_parameter"])
        report(done + 1, len(step.model_layers))
    comparison = compare_manifolds(analyses)
    map_scales = pd.DataFrame({"encoder": list(analyses), "map_scale": [result.map_scale for result in analyses.values()]})
    return StepOutput({"metrics": comparison.metrics, "per_image": comparison.per_image, "spectra": comparison.spectra,
                       "power_law": comparison.fits, "map_scales": map_scales},
                      f"{len(analyses)} encoder layer(s), {len(subset)} images × {m} views")


# --- inductive bias -------------------------------------------------------------------------------------------------

def bias_subset(step: Step, context: StudyContext) -> ImageSet:
    image_set = context.image_set(step)
    return image_set.subset(per_class_subset(image_set, step.settings["images_per_class"]))


def bias_units(step: Step, context: StudyContext) -> list[ExtractionUnit]:
    subset = bias_subset(step, context)
    conditions = [CLEAN, *map(parse_corruption, step.settings["corruptions"])]
    return [ExtractionUnit(subset, context.info(spec), step.layers[spec], context.pooling(spec),
                           condition.input_transform) for spec in step.encoders for condition in conditions]


def run_inductive_bias(step: Step, context: StudyContext, engine, report: Report) -> StepOutput:
    subset, settings = bias_subset(step, context), step.settings
    bias = BiasSettings(k=settings["k"], scheme=settings["scheme"], n_splits=settings["n_splits"],
                        train_on=settings["train_on"])
    corruptions = [parse_corruption(name) for name in settings["corruptions"]]
    tables = []
    for done, layer in enumerate(step.model_layers):  # every array is extracted already: the probes run here
        tables.append(corruption_metrics(subset, context.info(layer.spec), layer.layer, context.features, corruptions,
                                         bias, pooling=context.pooling(layer.spec), results=context.scores))
        report(done + 1, len(step.model_layers))
    table = pd.concat(tables, ignore_index=True)
    return StepOutput({"metrics": table}, f"{len(step.model_layers)} encoder layer(s) × {len(corruptions) + 1} conditions")
