"""What each analysis of a study extracts, how it splits into engine tasks, and what it stores.

Per analysis, `<analysis>_units(step, context)` lists the feature arrays it needs (extraction runs
first, `core.studies.run`), and `run_<analysis>(step, context, engine, report)` computes it and
returns the tables it stores. Each fills the stores the pages read (the same keys the pages use):
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
from core.analyses.gwot import DEFAULT_EPS, alignment_report
from core.analyses.gwot_search import (SearchSettings, alignment_result_key, assemble, load_alignment, refinement,
                                       run_chain, save_alignment, search_chains, starts_for)
from core.analyses.inductive_bias import BiasSettings, corruption_metrics
from core.analyses.manifolds import analyse_manifolds, compare_manifolds
from core.analyses.matching import matching_summary
from core.analyses.probes import ProbeSettings, ProbeTargets, encoder_curves, layer_scores, pending_fits
from core.analyses.rdm import layer_source, reference_source, source_rdm
from core.analyses.similarity import (SimilarityMatrix, SimilaritySettings, SimilarityStore, compare, controls,
                                      fingerprint, matrix_key, noise_ceiling)
from core.analyses.similarity.matrices import ASYMMETRIC
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
        info = self.info(spec)
        try:
            return info.resolve_pooling(self.study.pooling)
        except ValueError:
            return info.default_pooling


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


def _feature_sets(step: Step, context: StudyContext, image_set: ImageSet | None = None) -> dict[ModelLayer, FeatureSet]:
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
    features = {f"{layer.spec} [{layer.layer}]": feature_set for layer, feature_set in _feature_sets(step, context).items()}
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
    # A task per layer × probe; each stored under the key the Layer probes page reads.
    scores = engine.map(layer_scores, [{"features": np.asarray(context.features.load(key)), "probe": kind}
                                       for key, kind in todo], shared={"targets": targets, "settings": settings},
                        progress=report)
    for (key, kind), layer in zip(todo, scores):
        context.scores.set(settings.cache_key(key.digest, kind), [asdict(score) for score in layer])
    curves = pd.concat([encoder_curves(image_set, context.info(spec), context.features, settings=settings, probes=probes,
                                       pooling=context.pooling(spec), results=context.scores)
                        for spec in step.encoders], ignore_index=True)
    return StepOutput({"curves": curves}, f"{len(todo)} fits, {len(curves)} layer scores")


# --- similarity ------------------------------------------------------------------------------------------------------

def similarity_sources(step: Step, context: StudyContext) -> dict[str, tuple[str, np.ndarray, dict]]:
    """name -> (fingerprint, (N, d) array, {encoder, layer, depth}) as the Similarity page names them."""
    sources = {}
    for layer, feature_set in _feature_sets(step, context).items() if context.image_set(step).has_images else ():
        layers = step.layers[layer.spec]
        depth = layers.index(layer.layer) / max(len(layers) - 1, 1)
        sources[layer.label] = (feature_set.key.digest, np.asarray(feature_set.features),
                                {"encoder": layer.spec, "layer": layer.layer, "depth": depth})
    for reference in context.image_set(step).references:
        sources[f"human · {reference.name}"] = (fingerprint(reference.embedding), reference.embedding, {})
    return sources


def similarity_axes(step: Step, sources: dict) -> tuple[list[str], list[str], list[str]]:
    """(rows, columns, references) of the step's matrix, chosen as the page chooses them."""
    settings = step.settings
    if settings["matrix"] == "pairs":
        chosen = list(settings["sources"] or list(sources)[:12])
        return chosen, chosen, []
    if settings["matrix"] == "layers":
        first = settings["rows_encoder"] or step.encoders[0]
        second = settings["columns_encoder"] or step.encoders[min(1, len(step.encoders) - 1)]
        return ([name for name, (_, _, info) in sources.items() if info.get("encoder") == first],
                [name for name, (_, _, info) in sources.items() if info.get("encoder") == second], [])
    references = list(settings["references"] or [name for name, (_, _, info) in sources.items() if not info])
    return [name for name, (_, _, info) in sources.items() if info], references, references


def run_similarity(step: Step, context: StudyContext, engine, report: Report) -> StepOutput:
    settings = step.settings
    sources = similarity_sources(step, context)
    rows, columns, references = similarity_axes(step, sources)
    if not rows or not columns:
        raise ValueError(f"{step.label}: nothing to compare ({settings['matrix']} needs "
                         f"{'a reference embedding' if settings['matrix'] == 'reference' else 'two sources'}).")
    measures = tuple(settings["measures"])
    similarity_settings = SimilaritySettings(rdm_metric=settings["rdm_metric"], k=settings["k"],
                                             rbf_sigma=settings["rbf_sigma"])
    fingerprints = {name: sources[name][0] for name in dict.fromkeys(rows + columns)}
    key = matrix_key({name: fingerprints[name] for name in rows}, {name: fingerprints[name] for name in columns},
                     measures, similarity_settings, settings["bootstrap"], 0)
    matrix = context.similarity.get(key)
    if matrix is None:
        arrays = {name: sources[name][1] for name in dict.fromkeys(rows + columns)}
        blocks = [list(block) for block in np.array_split(rows, min(len(rows), 2 * context.parallelism))]
        common = {"columns": {name: arrays[name] for name in columns}, "measures": measures,
                  "settings": similarity_settings, "n_bootstrap": settings["bootstrap"], "fingerprints": fingerprints}
        parts = engine.map(compare, [{"rows": {name: arrays[name] for name in block}} for block in blocks if block],
                           shared=common, progress=report)
        matrix = _stacked(parts, rows == columns)
        context.scores.set(f"{key}|controls", controls({name: arrays[name] for name in rows}, measures,
                                                       similarity_settings).to_dict("records"))
        if len(references) >= 2:
            ceiling = noise_ceiling({name: arrays[name] for name in references}, measures, similarity_settings)
            context.scores.set(f"{key}|ceiling", {name: asdict(value) for name, value in ceiling.items()})
        context.similarity.put(key, matrix)  # last, as on the page: a stored matrix has its controls and ceiling
    table = matrix.table()
    control_table = pd.DataFrame(context.scores.get(f"{key}|controls") or [])
    tables = {"pairs": table, "controls": control_table}
    ceiling = context.scores.get(f"{key}|ceiling")
    if ceiling:
        tables["noise_ceiling"] = pd.DataFrame(ceiling.values())[["measure", "lower", "upper", "references"]].astype(
            {"references": str})
    return StepOutput(tables, f"{len(rows)} × {len(columns)} × {len(measures)} measures",
                      {"matrix_key": key, "rows": rows, "columns": columns, "references": references})


def _stacked(parts: list[SimilarityMatrix], symmetric: bool) -> SimilarityMatrix:
    """One matrix from row blocks; a symmetric measure's lower triangle mirrors the upper, as one `compare` does."""
    first = parts[0]
    values = np.concatenate([part.values for part in parts], axis=1)
    resamples = None if first.resamples is None else np.concatenate([part.resamples for part in parts], axis=1)
    if symmetric:
        lower = np.tril_indices(values.shape[1], -1)
        for m, measure in enumerate(first.measures):
            if measure not in ASYMMETRIC:
                values[m][lower] = values[m].T[lower]
                if resamples is not None:
                    resamples[m][lower] = resamples[m].transpose(1, 0, 2)[lower]
    warnings = tuple(dict.fromkeys(warning for part in parts for warning in part.warnings))
    return SimilarityMatrix(first.measures, tuple(row for part in parts for row in part.rows), first.columns, values,
                            first.settings, first.n_items, {name: value for part in parts
                                                             for name, value in part.fingerprints.items()},
                            first.n_bootstrap, first.seed, resamples, warnings)


# --- alignment -----------------------------------------------------------------------------------------------------

def alignment_settings(step: Step) -> SearchSettings:
    """The step's search with the Alignment page's defaults (its ε range per RDM metric)."""
    settings = step.settings
    return SearchSettings(settings["eps_range"] or DEFAULT_EPS[settings["metric"]], settings["n_eps"],
                          settings["n_inits"], settings["init"], settings["search"], settings["anneal"],
                          settings["max_iter"], backend=settings["backend"])


def run_alignment(step: Step, context: StudyContext, engine, report: Report) -> StepOutput:
    image_set, settings = context.image_set(step), step.settings
    items = image_set.metadata["image_id"].astype(str).to_numpy()
    categories = image_set.metadata["category"].astype(str).to_numpy()
    features = {layer.label: feature_set for layer, feature_set in _feature_sets(step, context).items()} \
        if image_set.has_images else {}
    rdm_sources = {f"human · {reference.name}": reference_source(reference.name, reference.embedding)
                   for reference in image_set.references}
    rdm_sources |= {layer.label: layer_source(layer, context.pooling(layer.spec)) for layer in step.model_layers
                    if layer.label in features}
    search = alignment_settings(step)

    def matrix(name: str) -> np.ndarray:
        feature_set = features.get(name)
        return source_rdm(rdm_sources[name], items, settings["metric"], normalise=settings["normalise"],
                          features=None if feature_set is None else np.asarray(feature_set.features))

    source = matrix(settings["source"])
    rows = []
    for done, target in enumerate(settings["targets"]):
        key = alignment_result_key(image_set.fingerprint, rdm_sources[settings["source"]].key, rdm_sources[target].key,
                                   settings["metric"], settings["normalise"], search)
        alignment = load_alignment(context.results, key)
        target_rdm = matrix(target)
        if alignment is None:
            alignment = search_alignment(source, target_rdm, search, engine, context)
            save_alignment(context.results, key, alignment, {"label": f"{settings['source']} → {target}",
                                                              "source": settings["source"], "target": target,
                                                              "dataset": step.dataset, "metric": settings["metric"]})
        rates = matching_summary(alignment.transport_plan, categories).set_index("measure")["rate"].to_dict()
        rsa = alignment_report(alignment, source, target_rdm, categories).rsa
        rows.append({"source": settings["source"], "target": target, "rsa": rsa, "epsilon": alignment.epsilon,
                     "gw_distance": alignment.gw_distance, **rates, "alignment_key": key})
        report(done + 1, len(settings["targets"]))
    table = pd.DataFrame(rows)
    return StepOutput({"matching": table}, ", ".join(f"{row['target']}: top-1 {row['top-1']:.1%}" for row in rows))


def search_alignment(source: np.ndarray, target: np.ndarray, search: SearchSettings, engine, context: StudyContext):
    """An epsilon search as engine tasks: one per chain (an init's annealing path, or one cold trial)."""
    shared = {"C_source": np.asarray(source, np.float32), "C_target": np.asarray(target, np.float32),
              "settings": search}
    gpus = context.gpus_per_task if search.backend == "torch" else 0
    keep = search.search == "sequential" and search.warm_start
    first = engine.map(run_chain, [{"chain": chain, "keep_states": keep}
                                   for chain in search_chains(search, search.first_stage())], shared=shared, gpus=gpus)
    second_chains = search_chains(search, refinement(search, first), stage=1)
    second = engine.map(run_chain, [{"chain": chain, "starts": starts_for(chain, first)} for chain in second_chains],
                        shared=shared, gpus=gpus)
    return assemble(first + second, search)


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
    return StepOutput({"metrics": comparison.metrics, "per_image": comparison.per_image, "spectra": comparison.spectra,
                       "power_law": comparison.fits}, f"{len(analyses)} encoder layer(s), {len(subset)} images × {m} views")


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


UNITS = {"affect": clean_units, "probes": clean_units, "similarity": clean_units, "alignment": clean_units,
         "manifolds": manifold_units, "inductive_bias": bias_units}
RUNNERS = {"affect": run_affect, "probes": run_probes, "similarity": run_similarity, "alignment": run_alignment,
           "manifolds": run_manifolds, "inductive_bias": run_inductive_bias}
