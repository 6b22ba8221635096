"""Similarity: matrices of a family of measures between representations of the same items (docs/science.md §8).

A step fills the SimilarityStore under the Similarity page's key (its controls and noise ceiling in the ResultCache),
so a study's matrix opens on the page.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from core.analyses.permutation_null import embedding_null
from core.analyses.rdm import RDM_METRICS
from core.analyses.registry import Analysis, Board, Settings, register, setting
from core.analyses.scoreboard import Measure, versus
from core.analyses.representation import (Representation, layer_representation, rdm_group_representations,
                                          reference_representation)
from core.analyses.similarity import (MEASURES, NoiseCeiling, SimilarityMatrix, SimilaritySettings, SimilarityStore,
                                      compare, controls, matrix_key, measure_agreement, noise_ceiling,
                                      percentile_interval)
from core.analyses.similarity.matrices import ASYMMETRIC
from core.encoders.specs import ModelLayer
from core.features.store import ResultCache
from core.figures.similarity import agreement_figure, depth_curves_figure, similarity_heatmap
from core.progress import Progress, Report
from core.studies.board import cell, chosen_layers
from core.studies.context import (Drawn, Figures, StepOutput, StudyContext, Tables, clean_units, feature_sets,
                                  representation_name, representation_names)
from core.studies.study import Step

MATRIX_KINDS = {"pairs": "All pairs of the chosen sources", "layers": "Layer × layer of two encoders",
                "reference": "Every layer vs a reference"}
MIN_RESAMPLES = 20  # the fewest bootstrap resamples (0: no bootstrap)


def _resamples(value):
    if isinstance(value, bool) or not isinstance(value, int) or not (value == 0 or MIN_RESAMPLES <= value <= 10000):
        raise ValueError(f"must be 0 (no bootstrap) or a number of resamples from {MIN_RESAMPLES} to 10000")
    return value


@dataclass(frozen=True)
class MatrixSettings(Settings):
    measures: tuple = setting(("cka_linear", "rsa_spearman", "mutual_knn"),
                              "Each is computed on every cell. RSA compares RDMs (by the RDM metric); CKA compares "
                              "centred kernels; Procrustes is a distance (0 = identical up to rotation and scale); "
                              "mutual k-NN and CKNNA look only at each item's k nearest neighbours.",
                              choices=tuple(MEASURES), many=True)
    matrix: str = setting("pairs", "All pairs among chosen sources; the blocks of one encoder against the blocks of "
                          "another; or every extracted layer against one reference (a depth curve; with two or more "
                          "references, their mean and the noise ceiling).", choices=tuple(MATRIX_KINDS))
    sources: tuple | None = setting(None, "Representations compared pairwise (rows = columns); default: the first 12.",
                                    many=True, check=representation_names)
    rows_encoder: str | None = setting(None, "Its extracted layers are the rows, shallow to deep.",
                                       check=representation_name)
    columns_encoder: str | None = setting(None, "Its extracted layers are the columns.", check=representation_name)
    references: tuple | None = setting(None, "The reference representations every layer is compared with (several: "
                                       "their mean, with their noise ceiling).", many=True, check=representation_names)
    rdm_metric: str = setting("cosine", "Dissimilarity behind every RSA measure: cosine for DNN features, euclidean "
                              "for SPoSE-style human embeddings.", choices=RDM_METRICS)
    k: int = setting(10, "Mutual k-NN and CKNNA: neighbours per item by cosine similarity (Huh et al. 2024 use 10). "
                     "Capped below N − 1 with a warning.", low=1, high=1000)
    rbf_sigma: float = setting(0.8, "RBF CKA's bandwidth as a fraction of the median pairwise distance of each "
                               "representation (Kornblith et al.: 0.8).", low=0.05, high=10.0)
    bootstrap: int = setting(0, "Bootstrap resamples of the items (seeded) for 95% percentile CIs on every cell and "
                             "the paired tests; pairs of copies of one item are dropped. 0: no bootstrap; 1,000 is "
                             "the usual choice, each resample costs about one matrix.", check=_resamples)

    @property
    def measure_settings(self) -> SimilaritySettings:
        return SimilaritySettings(rdm_metric=self.rdm_metric, k=self.k, rbf_sigma=self.rbf_sigma)


def check(step: Step, image_set) -> tuple[str, str] | None:
    if step.settings.matrix == "reference" and not (step.settings.references or image_set.references
                                                    or image_set.rdm_references):
        return "matrix", f"{step.dataset} has no reference embedding or RDM group to compare every layer with"
    for key, name in (("rows_encoder", step.settings.rows_encoder), ("columns_encoder", step.settings.columns_encoder)):
        if name and name not in step.encoders:
            return key, f"{name!r} is not one of the step's encoders ({', '.join(step.encoders)})"
    return None


def step_representations(step: Step, context: StudyContext) -> tuple[dict[str, Representation], dict[str, np.ndarray]]:
    """(label -> representation, label -> its array): the step's encoder layers, the reference embeddings ((N, d)
    each), then the dataset's RDM groups (their subjects' (N, N) mean RDM: RSA only)."""
    representations, arrays = {}, {}
    for layer, feature_set in feature_sets(step, context).items() if context.image_set(step).has_images else ():
        layers = step.layers[layer.spec]
        representations[layer.label] = layer_representation(layer, context.pooling(layer.spec), feature_set.key,
                                                             layers.index(layer.layer) / max(len(layers) - 1, 1))
        arrays[layer.label] = np.asarray(feature_set.features)
    for reference in context.image_set(step).references:
        representations[f"human · {reference.name}"] = reference_representation(reference.name, reference.embedding)
        arrays[f"human · {reference.name}"] = reference.embedding
    groups = rdm_group_representations(context.image_set(step).rdm_references)
    return representations | groups, arrays | {name: item.matrix for name, item in groups.items()}


def rdm_only(representations: Mapping[str, Representation]) -> tuple[str, ...]:
    """The representations given as RDMs (no item vectors): only the RSA measures compare them."""
    return tuple(name for name, item in representations.items() if item.is_rdm)


def axis_defaults(representations: Mapping[str, Representation], encoders: Sequence[str]) -> dict:
    """The matrix axes where the settings name none (the page's pickers start there): the first 12 sources, the
    first two encoders, every representation that is not an encoder layer as a reference."""
    return {"sources": list(representations)[:12], "rows_encoder": encoders[0] if encoders else None,
            "columns_encoder": encoders[min(1, len(encoders) - 1)] if encoders else None,
            "references": [name for name, item in representations.items() if item.layer is None]}


def matrix_axes(settings: MatrixSettings, representations: Mapping[str, Representation],
                encoders: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """(rows, columns, references) of a matrix over the offered representations: what the settings name, else
    `axis_defaults`."""
    defaults = axis_defaults(representations, encoders)
    if settings.matrix == "pairs":
        chosen = list(settings.sources or defaults["sources"])
        return chosen, chosen, []
    if settings.matrix == "layers":
        first = settings.rows_encoder or defaults["rows_encoder"]
        second = settings.columns_encoder or defaults["columns_encoder"]
        return ([name for name, item in representations.items() if item.encoder == first],
                [name for name, item in representations.items() if item.encoder == second], [])
    references = list(settings.references or defaults["references"])
    return [name for name, item in representations.items() if item.layer is not None], references, references


def stored_matrix_key(settings: MatrixSettings, representations: Mapping[str, Representation], rows: Sequence[str],
                      columns: Sequence[str]) -> str:
    """Where the matrix of `rows` × `columns` under `settings` is stored (the page's key and a study's alike)."""
    return matrix_key({name: representations[name].fingerprint for name in rows},
                      {name: representations[name].fingerprint for name in columns}, tuple(settings.measures),
                      settings.measure_settings, settings.bootstrap, 0)


def compute_matrix(settings: MatrixSettings, representations: Mapping[str, Representation],
                   arrays: Mapping[str, np.ndarray], axes: tuple[list[str], list[str], list[str]],
                   similarity: SimilarityStore, scores: ResultCache, *, engine=None, n_blocks: int = 1,
                   progress: Report | None = None) -> SimilarityMatrix:
    """The matrix of `axes` (rows, columns, references; see `matrix_axes`) over the (N, d) `arrays`, its controls
    and (two or more references) noise ceiling, stored under `stored_matrix_key` (by a study and the page alike).

    Without an `engine` it is one `compare` here, `progress` after every resample (where a page's background job
    stops when cancelled); with one, `n_blocks` row blocks on the engine, `progress` per block.
    """
    rows, columns, references = axes
    measures, measure_settings = tuple(settings.measures), settings.measure_settings
    key = stored_matrix_key(settings, representations, rows, columns)
    common = {"columns": {name: arrays[name] for name in columns}, "measures": measures, "settings": measure_settings,
              "n_bootstrap": settings.bootstrap, "rdm_only": rdm_only({name: representations[name] for name in
                                                                      dict.fromkeys(rows + columns)}),
              "fingerprints": {name: representations[name].fingerprint for name in dict.fromkeys(rows + columns)}}
    if engine is None:
        matrix = compare({name: arrays[name] for name in rows}, **common, progress=progress)
    else:
        blocks = [list(block) for block in np.array_split(rows, n_blocks)]
        parts = engine.map(compare, [{"rows": {name: arrays[name] for name in block}} for block in blocks if block],
                           shared=common, progress=progress)
        matrix = _stacked(parts, rows == columns)
    scores.set(f"{key}|controls", controls({name: arrays[name] for name in rows}, measures, measure_settings,
                                           rdm_only=common["rdm_only"]).to_dict("records"))
    if len(references) >= 2:
        ceiling = noise_ceiling({name: arrays[name] for name in references}, measures, measure_settings,
                                rdm_only=common["rdm_only"])
        scores.set(f"{key}|ceiling", {name: asdict(value) for name, value in ceiling.items()})
    similarity.put(key, matrix)  # last: a stored matrix has its controls and ceiling
    return matrix


def run(step: Step, context: StudyContext, engine, report: Report) -> StepOutput:
    settings = step.settings
    representations, arrays = step_representations(step, context)
    rows, columns, references = axes = matrix_axes(settings, representations, step.encoders)
    if not rows or not columns:
        raise ValueError(f"{step.label}: nothing to compare ({settings.matrix} needs "
                         f"{'a reference embedding' if settings.matrix == 'reference' else 'two sources'}).")
    key = stored_matrix_key(settings, representations, rows, columns)
    matrix = context.similarity.get(key)
    if matrix is None:
        # Row blocks pay off only when resamples dominate: each block prepares every column again.
        n_blocks = min(len(rows), context.parallelism) if settings.bootstrap else 1
        matrix = compute_matrix(settings, representations, arrays, axes, context.similarity, context.scores,
                                engine=engine, n_blocks=n_blocks, progress=report)
    tables = {"pairs": matrix.table(), "controls": pd.DataFrame(context.scores.get(f"{key}|controls") or [])}
    ceiling = context.scores.get(f"{key}|ceiling")
    if ceiling:
        tables["noise_ceiling"] = pd.DataFrame(ceiling.values())[["measure", "lower", "upper", "references"]].astype(
            {"references": str})
    return StepOutput(tables, f"{len(rows)} × {len(columns)} × {len(settings.measures)} measures",
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
                            first.n_bootstrap, first.seed, resamples, warnings,
                            tuple(dict.fromkeys(name for part in parts for name in part.rdm_only)))


def draw(step: Step, stored, tables: Tables, context: StudyContext) -> Drawn:
    key = stored.meta["matrix_key"]
    matrix = context.similarity.get(key)
    if matrix is None:
        return {}, {}, [f"every figure: the matrix {key} is no longer in the cache (pairs.csv holds its values)"]
    reference = step.settings.matrix == "reference"
    # The depth curves' rows: the step's layers (labels and depths only; their features are not read again).
    rows = {ModelLayer(spec, name).label: layer_representation(ModelLayer(spec, name), "",
                                                               depth=index / max(len(names) - 1, 1))
            for spec, names in stored.meta["layers"].items() for index, name in enumerate(names)}
    controls_table = tables["controls"].reindex(columns=["representation", "control", "measure", "value"])
    ceilings = context.scores.get(f"{key}|ceiling") or {}
    figures: Figures = {}
    for measure in matrix.measures:
        if reference:
            found = ceilings.get(measure)
            ceiling = None if found is None else NoiseCeiling(**{**found, "references": tuple(found["references"])})
            figures[f"depth_{measure}"] = lambda measure=measure, ceiling=ceiling: depth_curves_figure(
                depth_curves(matrix, measure, rows, stored.meta["references"]), measure, ceiling)
        else:
            shown = controls_table[controls_table["measure"] == measure].set_index(["representation", "control"])
            figures[f"matrix_{measure}"] = lambda measure=measure, shown=shown["value"]: similarity_heatmap(
                matrix, measure, shown)
    if len(matrix.measures) >= 2 and not reference:
        figures["agreement"] = lambda: agreement_figure(measure_agreement(matrix))
    return figures, {}, []


def depth_curves(matrix: SimilarityMatrix, measure: str, layers: Mapping[str, Representation],
                 references: Sequence[str]) -> pd.DataFrame:
    """encoder, layer, depth, value, ci_low, ci_high per row (an encoder layer of `layers`): its mean over the
    reference columns, its CI from the same resamples' means."""
    m, columns = matrix.measures.index(measure), [matrix.columns.index(name) for name in references]
    records = []
    for r, row in enumerate(matrix.rows):
        low = high = float("nan")
        if matrix.resamples is not None:
            low, high = percentile_interval(matrix.resamples[m, r, columns].mean(axis=0))
        layer = layers[row]
        records.append({"encoder": layer.encoder, "layer": layer.layer.layer, "depth": layer.depth,
                        "value": float(matrix.values[m, r, columns].mean()), "ci_low": low, "ci_high": high})
    return pd.DataFrame(records)


def page_state(settings: MatrixSettings, meta) -> tuple[dict, list[str]]:
    """The page's matrix axes from the stored rows; its bootstrap is a toggle with a number of resamples."""
    encoders = list(meta.get("encoders") or [])
    state = {"similarity.measures": list(settings.measures), "similarity.matrix": settings.matrix,
             "similarity.rdm_metric": settings.rdm_metric, "similarity.k": int(settings.k),
             "similarity.rbf_sigma": float(settings.rbf_sigma), "similarity.bootstrap_on": settings.bootstrap > 0}
    if settings.bootstrap:
        state["similarity.bootstrap"] = int(settings.bootstrap)
    if settings.matrix == "pairs":
        state["similarity.sources"] = list(meta.get("rows") or settings.sources or [])
    elif settings.matrix == "layers":
        state["similarity.rows_encoder"] = settings.rows_encoder or encoders[0]
        state["similarity.columns_encoder"] = settings.columns_encoder or encoders[min(1, len(encoders) - 1)]
    else:
        references = meta.get("references") or settings.references
        if references:
            state["similarity.references"] = list(references)
    return state, []


# --- the Scoreboard's columns and cells of a stored step (core.studies.scoreboard) ---------------------------------

def _reference_columns(step: Step, context: StudyContext) -> list[str]:
    return [f"human · {reference.name}" for reference in context.image_set(step).references]


def similarity_measures(step: Step, context: StudyContext) -> list[Measure]:
    return [versus(measure, reference, measure, "similarity", measure != "procrustes", "similarity")
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
            cells.append(cell(spec, name, found["value"], found["ci_low"], found["ci_high"], layer=layer, step=step))
            if matrix is not None and matrix.resamples is not None:
                resampled = matrix.resamples[matrix.measures.index(measure), matrix.rows.index(row),
                                             matrix.columns.index(column)]
                samples.setdefault(name, {})[spec] = np.asarray(resampled, float)
    return cells, similarity_measures(step, context), samples


def similarity_nulls(step: Step, stored, context: StudyContext, rule, n_perm: int, seed: int,
                     progress: Report | None = None) -> list[dict]:
    """The permutation null of every similarity cell (the rule's layer of each encoder vs each reference embedding,
    each measure): `embedding_null` permuting the reference's items, with the Similarity page's code and settings,
    so `observed` equals the stored cell; `progress` after each cell."""
    representations, arrays = step_representations(step, context)
    references = [name for name, item in representations.items() if item.layer is None and name.startswith("human")]
    layers = [name for name, item in representations.items() if item.layer is not None]
    chosen = chosen_layers(layers, "·", rule, step)
    cells = [(label, reference, measure) for label in chosen for reference in references
             for measure in step.settings.measures]
    records = []
    for done, (label, reference, measure) in enumerate(cells):
        null = embedding_null(arrays[label], arrays[reference], measure, settings=step.settings.measure_settings,
                              n_perm=n_perm, seed=seed)
        records.append({"model": chosen[label][0], "measure": f"{measure} vs {reference}", "observed": null.observed,
                        "null_p": null.p, "null_z": null.z, "null_q95": null.q95, "beats_null": null.beats_null,
                        "n_perm": n_perm, "seed": seed})
        if progress is not None:
            progress(Progress(done + 1, len(cells), f"{step.label}: {label} · {measure}"))
    return records


ENTRY = register(Analysis("similarity", "Similarity", "views/similarity.py", "🟰", MatrixSettings, clean_units, run,
                          draw, check=check, page_state=page_state, needs_images=False, order=50,
                         board=Board(similarity_measures, read_similarity, similarity_nulls)))
