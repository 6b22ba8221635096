"""`study export`'s figures per analysis, each drawn as its page draws it, from the step's stored result.

`DRAW[analysis](step, stored, tables, context)` gives (figures, extra tables, what is left out and why). A figure is
a function, called once by the export, so an input read only for it is read only if it is drawn. Figures whose data
a step does not store are drawn from what the cache holds beside it, never by fitting again: the error geometry
from the stored out-of-fold predictions, the RDMs and the class distances from the stored (view) features. One whose
inputs have left the cache fails when drawn and is named by the export, the others go in.
"""
from __future__ import annotations

from functools import cache
from typing import Callable

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.analyses.affect_report import AffectAnalysis, affect_analysis
from core.analyses.cv import CrossValidation
from core.analyses.gwot_search import load_alignment
from core.analyses.manifolds import class_distance_matrix, pair_histogram_values, sub_manifolds
from core.analyses.matching import matching_summary, per_category_matching
from core.analyses.similarity import NoiseCeiling, SimilarityMatrix, measure_agreement, percentile_interval
from core.encoders.specs import ModelLayer
from core.export import export_filename
from core.features.extract import feature_keys
from core.features.results import StoredResult
from core.figures.affect import error_field_figure, error_rose_figure, occupancy_figure, r2_summary_figure
from core.figures.alignment import (epsilon_search_figure, matching_rates_figure, per_category_figure,
                                    rdm_pair_figure, transport_plan_figure)
from core.figures.inductive_bias import corruption_curves_figure
from core.figures.manifolds import (centroid_map_figure, class_distance_figure, eigenspectrum_figure,
                                    pair_histograms_figure, radii_figure, uniformity_figure)
from core.figures.probes import probe_curves_figure
from core.figures.similarity import agreement_figure, depth_curves_figure, similarity_heatmap
from core.studies.comparisons import alignment_rdms
from core.studies.spec import Step
from core.studies.steps import StudyContext, bias_subset, feature_sets, manifold_views

PROBE_BAND = "fold_se"  # the Layer probes page's default band
Tables = dict[str, pd.DataFrame]
Figures = dict[str, Callable[[], go.Figure]]  # file stem -> draws it (one that fails is named, the others go in)
Drawn = tuple[Figures, Tables, list[str]]  # figures, tables beside the stored ones, what is left out and why


def slug(text: str) -> str:
    """A file-name-safe lower-case form of `text` (export_filename's rules)."""
    return export_filename(text, "", "", ext="")


def _affect(step: Step, stored: StoredResult, tables: Tables, context: StudyContext) -> Drawn:
    settings = step.settings

    @cache
    def analysis() -> AffectAnalysis:
        """The page's analysis of the step's models, from their stored out-of-fold predictions (nothing is fitted
        while they are stored, and run_affect stored every one it reads)."""
        features = {f"{layer.spec} [{layer.layer}]": feature_set
                    for layer, feature_set in feature_sets(step, context).items()}
        cvs = [CrossValidation(scheme, settings["n_splits"]) for scheme in settings["schemes"]]
        geometry_cv = CrossValidation(settings["geometry_scheme"] or settings["schemes"][0], settings["n_splits"])
        return affect_analysis(context.image_set(step), features, cvs, geometry_cv, zscore=settings["zscore"],
                               bins=settings["bins"], store=context.results)

    return {"r2": lambda: r2_summary_figure(tables["metrics"]),
            "error_field": lambda: error_field_figure(analysis().panels, color_by_category=True),
            "occupancy": lambda: occupancy_figure(analysis().occupancies),
            "error_rose": lambda: error_rose_figure(analysis().panels)}, {}, []


def _probes(step: Step, stored: StoredResult, tables: Tables, context: StudyContext) -> Drawn:
    chance = 1 / context.image_set(step).metadata["category"].nunique()
    return {f"curves_{axis}": lambda axis=axis: probe_curves_figure(tables["curves"], x=axis, band=PROBE_BAND,
                                                                    category_chance=chance)
            for axis in ("depth", "layer_index")}, {}, []


def _similarity(step: Step, stored: StoredResult, tables: Tables, context: StudyContext) -> Drawn:
    key = stored.meta["matrix_key"]
    matrix = context.similarity.get(key)
    if matrix is None:
        return {}, {}, [f"every figure: the matrix {key} is no longer in the cache (pairs.csv holds its values)"]
    reference = step.settings["matrix"] == "reference"
    controls = tables["controls"].reindex(columns=["representation", "control", "measure", "value"])
    ceilings = context.scores.get(f"{key}|ceiling") or {}
    figures: Figures = {}
    for measure in matrix.measures:
        if reference:
            found = ceilings.get(measure)
            ceiling = None if found is None else NoiseCeiling(**{**found, "references": tuple(found["references"])})
            figures[f"depth_{measure}"] = lambda measure=measure, ceiling=ceiling: depth_curves_figure(
                _depth_curves(matrix, measure, stored.meta["layers"], stored.meta["references"]), measure, ceiling)
        else:
            shown = controls[controls["measure"] == measure].set_index(["representation", "control"])["value"]
            figures[f"matrix_{measure}"] = lambda measure=measure, shown=shown: similarity_heatmap(matrix, measure,
                                                                                                   shown)
    if len(matrix.measures) >= 2 and not reference:
        figures["agreement"] = lambda: agreement_figure(measure_agreement(matrix))
    return figures, {}, []


def _depth_curves(matrix: SimilarityMatrix, measure: str, layers: dict[str, list[str]],
                  references: list[str]) -> pd.DataFrame:
    """encoder, layer, depth, value, ci_low, ci_high per row: its mean over the reference columns, as on the page."""
    m, columns = matrix.measures.index(measure), [matrix.columns.index(name) for name in references]
    where = {ModelLayer(spec, layer).label: (spec, layer, index / max(len(names) - 1, 1))
             for spec, names in layers.items() for index, layer in enumerate(names)}
    records = []
    for r, row in enumerate(matrix.rows):
        low = high = float("nan")
        if matrix.resamples is not None:
            low, high = percentile_interval(matrix.resamples[m, r, columns].mean(axis=0))
        encoder, layer, depth = where[row]
        records.append({"encoder": encoder, "layer": layer, "depth": depth,
                        "value": float(matrix.values[m, r, columns].mean()), "ci_low": low, "ci_high": high})
    return pd.DataFrame(records)


def _alignment(step: Step, stored: StoredResult, tables: Tables, context: StudyContext) -> Drawn:
    categories = context.image_set(step).metadata["category"].astype(str).to_numpy()
    matrices = cache(lambda: alignment_rdms(step, context)[1])  # name -> RDM, as run_alignment computes it
    rdm = cache(lambda name: matrices()(name))  # each once (the source is every pair's)
    figures: Figures = {}
    extra, omitted = {}, []
    for row in tables["matching"].to_dict("records"):
        pair, name = (row["source"], row["target"]), slug(row["target"])
        figures[f"rdms_{name}"] = lambda pair=pair: rdm_pair_figure(rdm(pair[0]), rdm(pair[1]), categories, pair)
        alignment = load_alignment(context.results, row["alignment_key"])
        if alignment is None:
            omitted.append(f"{row['target']}: alignment {row['alignment_key']} is no longer in the cache "
                           "(matching.csv keeps its rates)")
            continue
        plan = alignment.transport_plan
        figures[f"transport_plan_{name}"] = lambda plan=plan, pair=pair: transport_plan_figure(plan, categories,
                                                                                             names=pair)
        figures[f"matching_rates_{name}"] = lambda plan=plan: matching_rates_figure(matching_summary(plan, categories))
        figures[f"epsilon_search_{name}"] = lambda found=alignment: epsilon_search_figure(found.trials, found.selected)
        figures[f"per_category_{name}"] = lambda plan=plan: per_category_figure(per_category_matching(plan, categories))
        extra[f"trials_{name}"] = alignment.trials  # every ε trial of the search, from the stored alignment
    return figures, extra, omitted


def _manifolds(step: Step, stored: StoredResult, tables: Tables, context: StudyContext) -> Drawn:
    per_image, method = tables["per_image"], step.settings["map"]
    scales = tables["map_scales"].set_index("encoder")["map_scale"] if "map_scales" in tables else {}
    maps = {f"map_{slug(name)}": lambda name=name: centroid_map_figure(
                per_image[per_image["encoder"] == name].drop(columns="encoder"), float(scales[name]), method)
            for name in scales.keys()}

    @cache
    def from_views() -> dict[str, tuple[dict, list[str], np.ndarray]]:
        """Encoder layer -> (pair histogram values, class names, class distances) of its stored view features:
        analyse_manifolds' pieces for these two figures (its 2-D map and spectrum are stored, not redone)."""
        subset, views, transform = manifold_views(step, context)
        categories, m, found = subset.metadata["category"].to_numpy().astype(str), step.settings["m"], {}
        for layer in step.model_layers:
            key = feature_keys(views, context.info(layer.spec), [layer.layer], context.pooling(layer.spec),
                               transform)[layer.layer]
            view_features = np.asarray(context.features.load(key)).reshape(len(subset), m, -1)
            pairs = pair_histogram_values(sub_manifolds(view_features, step.settings["radius_scale"]), categories)
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


def _inductive_bias(step: Step, stored: StoredResult, tables: Tables, context: StudyContext) -> Drawn:
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


DRAW: dict[str, Callable[[Step, StoredResult, Tables, StudyContext], Drawn]] = {
    "affect": _affect, "probes": _probes, "similarity": _similarity, "alignment": _alignment,
    "manifolds": _manifolds, "inductive_bias": _inductive_bias}
