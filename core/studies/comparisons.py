"""The steps that compare representations of the same items: similarity matrices and GWOT alignments.

Each fills the store its page reads, under the page's key: matrices in the SimilarityStore (with their controls and
noise ceiling in the ResultCache), alignments in the ResultStore; so a study's result opens on the page.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Callable

import numpy as np
import pandas as pd

from core.analyses.gwot import DEFAULT_EPS, Alignment, alignment_report, validate_rdms
from core.analyses.gwot_search import (SearchSettings, alignment_result_key, assemble, load_alignment, refinement,
                                       run_chain, save_alignment, search_chains, starts_for)
from core.analyses.matching import matching_summary
from core.analyses.rdm import RdmSource, layer_source, reference_source, source_rdm
from core.analyses.similarity import (SimilarityMatrix, SimilaritySettings, compare, controls, fingerprint, matrix_key,
                                      noise_ceiling)
from core.analyses.similarity.matrices import ASYMMETRIC
from core.studies.spec import Step
from core.studies.steps import Report, StepOutput, StudyContext, feature_sets

# --- similarity ------------------------------------------------------------------------------------------------------

def similarity_sources(step: Step, context: StudyContext) -> dict[str, tuple[str, np.ndarray, dict]]:
    """name -> (fingerprint, (N, d) array, {encoder, layer, depth}) as the Similarity page names them."""
    sources = {}
    for layer, feature_set in feature_sets(step, context).items() if context.image_set(step).has_images else ():
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
        # Row blocks pay off only when resamples dominate: each block prepares every column again.
        n_blocks = min(len(rows), context.parallelism) if settings["bootstrap"] else 1
        blocks = [list(block) for block in np.array_split(rows, n_blocks)]
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


def alignment_rdms(step: Step, context: StudyContext) -> tuple[dict[str, RdmSource], Callable[[str], np.ndarray]]:
    """(the step's RDM sources by the Alignment page's names, name -> its (N, N) RDM under the step's metric)."""
    image_set, settings = context.image_set(step), step.settings
    items = image_set.metadata["image_id"].astype(str).to_numpy()
    features = {layer.label: feature_set for layer, feature_set in feature_sets(step, context).items()} \
        if image_set.has_images else {}
    rdm_sources = {f"human · {reference.name}": reference_source(reference.name, reference.embedding)
                   for reference in image_set.references}
    rdm_sources |= {layer.label: layer_source(layer, context.pooling(layer.spec)) for layer in step.model_layers
                    if layer.label in features}

    def matrix(name: str) -> np.ndarray:
        feature_set = features.get(name)
        return source_rdm(rdm_sources[name], items, settings["metric"], normalise=settings["normalise"],
                          features=None if feature_set is None else np.asarray(feature_set.features))

    return rdm_sources, matrix


def run_alignment(step: Step, context: StudyContext, engine, report: Report) -> StepOutput:
    image_set, settings = context.image_set(step), step.settings
    categories = image_set.metadata["category"].astype(str).to_numpy()
    rdm_sources, matrix = alignment_rdms(step, context)
    search = alignment_settings(step)
    source = matrix(settings["source"])
    targets = {target: matrix(target) for target in settings["targets"]}
    keys = {target: alignment_result_key(image_set.fingerprint, rdm_sources[settings["source"]].key,
                                         rdm_sources[target].key, settings["metric"], settings["normalise"], search)
            for target in targets}
    alignments = {target: load_alignment(context.results, key) for target, key in keys.items()}
    missing = {target: targets[target] for target, alignment in alignments.items() if alignment is None}
    for target, alignment in search_alignments(source, missing, search, engine, context, report).items():
        save_alignment(context.results, keys[target], alignment, {
            "label": f"{settings['source']} → {target}", "source": settings["source"], "target": target,
            "dataset": step.dataset, "metric": settings["metric"], "normalise": settings["normalise"],
            "search_settings": {name: getattr(search, name) for name in ("eps_range", "n_eps", "n_inits", "init",
                                                                         "search", "warm_start", "backend",
                                                                         "max_iter")}})
        alignments[target] = alignment
    rows = []
    for target, alignment in alignments.items():
        rates = matching_summary(alignment.transport_plan, categories).set_index("measure")["rate"].to_dict()
        rsa = alignment_report(alignment, source, targets[target], categories).rsa
        rows.append({"source": settings["source"], "target": target, "rsa": rsa, "epsilon": alignment.epsilon,
                     "gw_distance": alignment.gw_distance, **rates, "alignment_key": keys[target]})
    table = pd.DataFrame(rows)
    return StepOutput({"matching": table}, ", ".join(f"{row['target']}: top-1 {row['top-1']:.1%}" for row in rows))


def search_alignments(source: np.ndarray, targets: dict[str, np.ndarray], search: SearchSettings, engine,
                      context: StudyContext, report: Report) -> dict[str, Alignment]:
    """The ε search of (N, N) `source` against every (N, N) target as engine tasks, one per chain (an init's
    annealing path, or one cold trial) of every target at once, so all of them keep the workers busy."""
    for target in targets.values():
        validate_rdms(source, target)  # a NaN or misshapen RDM is named as such, before any trial
    handles = {name: engine.put(np.asarray(target, np.float32)) for name, target in targets.items()}
    shared = {"C_source": np.asarray(source, np.float32), "settings": search}
    gpus = context.gpus_per_task if search.backend == "torch" else 0
    keep = search.search == "sequential" and search.warm_start
    # Largest ε first: those trials are the slowest, so no worker is left with one at the end (assemble re-sorts).
    first_chains = sorted([(name, chain) for name in targets for chain in search_chains(search, search.first_stage())],
                          key=lambda pair: -pair[1].epsilons[0])
    first = engine.map(run_chain, [{"chain": chain, "C_target": handles[name], "keep_states": keep}
                                   for name, chain in first_chains], shared=shared, gpus=gpus, progress=report)
    by_target = {name: [result for (owner, _), result in zip(first_chains, first) if owner == name] for name in targets}
    second_chains = [(name, chain) for name in targets
                     for chain in search_chains(search, refinement(search, by_target[name]), stage=1)]
    second = engine.map(run_chain, [{"chain": chain, "C_target": handles[name],
                                     "starts": starts_for(chain, by_target[name])} for name, chain in second_chains],
                        shared=shared, gpus=gpus, progress=report)
    for (name, _), result in zip(second_chains, second):
        by_target[name].append(result)
    return {name: assemble(results, search) for name, results in by_target.items()}
