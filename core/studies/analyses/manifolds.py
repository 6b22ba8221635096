"""Manifolds: augmentation sub-manifolds of each image (CLAMP) and the geometry of the feature space (§6)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd

from core.analyses.manifolds import (IMAGENET_RADIUS_SCALE, MANIFOLD_PRESETS, MAP_METHODS, ManifoldAnalysis,
                                     analyse_manifolds, class_distance_matrix, compare_manifolds,
                                     pair_histogram_values, sub_manifolds)
from core.analyses.registry import Analysis, Board, Settings, register, setting
from core.analyses.scoreboard import Measure
from core.data.datasets import ImageSet
from core.data.selections import per_class_subset
from core.data.transforms import AugmentationPipeline, InputTransform, augmentation_views
from core.features.extract import feature_keys
from core.figures.manifolds import (centroid_map_figure, class_distance_figure, eigenspectrum_figure,
                                    pair_histograms_figure, radii_figure, uniformity_figure)
from core.progress import Progress, Report
from core.studies.board import cell, chosen_layers
from core.studies.context import Drawn, ExtractionUnit, StepOutput, StudyContext, Tables, slug
from core.studies.study import Step


@dataclass(frozen=True)
class ManifoldSettings(Settings):
    # Views and images default to the page's Quick preset, r_s to ImageNet's: core declares them (the bench reads them).
    m: int = setting(MANIFOLD_PRESETS["quick"].m, "Augmented views per image (CLAMP uses 16). Extraction cost grows "
                     "with m.", low=2, high=64)
    images_per_class: int = setting(MANIFOLD_PRESETS["quick"].per_class, "A random subset of each category (seed 0), "
                                    "for speed: images × m views go through the encoder.", low=2, high=10_000)
    radius_scale: float = setting(IMAGENET_RADIUS_SCALE, "CLAMP's radius scale r_s: 8.5 for ImageNet models, 7 for "
                                  "CIFAR. Scales the radii, the CLAMP loss's range and the neighbour threshold.",
                                  low=0.1, high=50.0)
    map: str = setting("t-SNE", "2-D map of the centroids. UMAP compiles itself on first use in a server (tens of "
                       "seconds, once); results are cached.", choices=MAP_METHODS)
    map_parameter: int = setting(30, "t-SNE: perplexity (capped at (N − 1)/3). UMAP: n_neighbors. Larger = more "
                                 "global layout.", low=2, high=100)


def view_subset(image_set: ImageSet, settings: ManifoldSettings) -> ImageSet:
    """The images whose views are analysed: `images_per_class` of each category (seed 0)."""
    return image_set.subset(per_class_subset(image_set, settings.images_per_class))


def analyse(view_features: np.ndarray, subset: ImageSet, settings: ManifoldSettings) -> ManifoldAnalysis:
    """`analyse_manifolds` of the (N, m, D) view features of `subset` at the settings' r_s and 2-D map."""
    return analyse_manifolds(view_features, subset.metadata["category"].to_numpy(),
                             subset.metadata["image_id"].to_numpy(), radius_scale=settings.radius_scale,
                             map_method=settings.map, map_parameter=settings.map_parameter)


def manifold_views(step: Step, context: StudyContext) -> tuple[ImageSet, ImageSet, InputTransform]:
    """(subset of images_per_class per category, its N·m views, the augmentation) with CLAMP's default pipeline."""
    subset = view_subset(context.image_set(step), step.settings)
    views, transform = augmentation_views(subset, step.settings.m, AugmentationPipeline())
    return subset, views, transform


def units(step: Step, context: StudyContext) -> list[ExtractionUnit]:
    _, views, transform = manifold_views(step, context)
    return [ExtractionUnit(views, context.info(spec), step.layers[spec], context.pooling(spec), transform)
            for spec in step.encoders]


def _view_features(step: Step, context: StudyContext, layer, subset: ImageSet, views: ImageSet,
                   transform: InputTransform) -> np.ndarray:
    """(N, m, D) features of the views of one encoder layer, from the feature store."""
    key = feature_keys(views, context.info(layer.spec), [layer.layer], context.pooling(layer.spec),
                       transform)[layer.layer]
    return np.asarray(context.features.load(key)).reshape(len(subset), step.settings.m, -1)


def run(step: Step, context: StudyContext, engine, report: Report) -> StepOutput:
    subset, views, transform = manifold_views(step, context)
    settings = step.settings
    analyses = {}
    for done, layer in enumerate(step.model_layers):
        analyses[layer.label] = analyse(_view_features(step, context, layer, subset, views, transform), subset,
                                        settings)
        report(Progress(done + 1, len(step.model_layers)))
    comparison = compare_manifolds(analyses)
    map_scales = pd.DataFrame({"encoder": list(analyses), "map_scale": [result.map_scale for result in analyses.values()]})
    return StepOutput({"metrics": comparison.metrics, "per_image": comparison.per_image, "spectra": comparison.spectra,
                       "power_law": comparison.fits, "map_scales": map_scales},
                      f"{len(analyses)} encoder layer(s), {len(subset)} images × {settings.m} views")


def draw(step: Step, stored, tables: Tables, context: StudyContext) -> Drawn:
    per_image, method = tables["per_image"], step.settings.map
    scales = tables["map_scales"].set_index("encoder")["map_scale"] if "map_scales" in tables else {}
    maps = {f"map_{slug(name)}": lambda name=name: centroid_map_figure(
                per_image[per_image["encoder"] == name].drop(columns="encoder"), float(scales[name]), method)
            for name in scales.keys()}

    @cache
    def from_views() -> dict[str, tuple[dict, list[str], np.ndarray]]:
        """Encoder layer -> (pair histogram values, class names, class distances) of its stored view features:
        analyse_manifolds' pieces for these two figures (its 2-D map and spectrum are stored, not redone)."""
        subset, views, transform = manifold_views(step, context)
        categories, m, found = subset.metadata["category"].to_numpy().astype(str), step.settings.m, {}
        for layer in step.model_layers:
            view_features = _view_features(step, context, layer, subset, views, transform)
            pairs = pair_histogram_values(sub_manifolds(view_features, step.settings.radius_scale), categories)
            found[layer.label] = (pairs, *class_distance_matrix(view_features.reshape(len(subset) * m, -1),
                                                                np.repeat(categories, m)))
        return found

    distances = {f"class_distances_{slug(layer.label)}": lambda name=layer.label: class_distance_figure(
                     *from_views()[name][1:], name) for layer in step.model_layers}
    return {**maps, **distances,
            "pair_histograms": lambda: pair_histograms_figure({name: found[0] for name, found in from_views().items()}),
            "radii": lambda: radii_figure(per_image),
            "uniformity": lambda: uniformity_figure(tables["metrics"]),
            "eigenspectrum": lambda: eigenspectrum_figure(tables["spectra"], tables["power_law"])}, {}, []


def page_state(settings: ManifoldSettings, meta) -> tuple[dict, list[str]]:
    """The stored layers, the settings, and CLAMP's default pipeline (the one studies use)."""
    pipeline = AugmentationPipeline()
    return {**{f"manifolds.{name}": value for name, value in settings.items()},
            "manifolds.layers": layer_labels(meta),
            "manifolds.brightness": pipeline.brightness, "manifolds.contrast": pipeline.contrast,
            "manifolds.saturation": pipeline.saturation, "manifolds.hue": pipeline.hue,
            "manifolds.crop": pipeline.crop_scale[0]}, []


def layer_labels(meta) -> list[str]:
    """`<spec> · <layer>` of every layer of a stored step, as the pages' encoder · layer pickers name them."""
    layers = meta.get("layers") or {}
    return [f"{spec} · {layer}" for spec in meta.get("encoders") or [] for layer in layers.get(spec, [])]


# --- the Scoreboard's columns and cells of a stored step (core.studies.scoreboard) ---------------------------------

MANIFOLD_COLUMNS = {"uniformity": ("uniformity", "", False), "view_alignment": ("view alignment", "", False),
                    "alpha": ("power-law α", "", True), "effective_dimensionality": ("effective dimensionality", "",
                                                                                  True)}


def manifolds_measures(step: Step, context: StudyContext) -> list[Measure]:
    return [Measure(f"manifold_{column}", label, unit, higher, "manifolds")
            for column, (label, unit, higher) in MANIFOLD_COLUMNS.items()]


def read_manifolds(step, tables, meta, context, rule):
    metrics = tables["metrics"]
    chosen = chosen_layers(metrics["encoder"], "·", rule, step)
    cells = [cell(chosen[row["encoder"]][0], f"manifold_{column}", row[column], layer=chosen[row["encoder"]][1],
                   step=step)
             for row in metrics.to_dict("records") if row["encoder"] in chosen for column in MANIFOLD_COLUMNS]
    return cells, manifolds_measures(step, context), {}


ENTRY = register(Analysis("manifolds", "Manifolds", "views/manifolds.py", "🫧", ManifoldSettings, units, run, draw,
                          page_state=page_state, order=70,
                         board=Board(manifolds_measures, read_manifolds)))
