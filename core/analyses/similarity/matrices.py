"""Similarity matrices over sets of representations, with bootstrap CIs, paired tests, controls and noise ceilings.

`compare(rows, columns)` is the one entry point: all pairs among a set (rows = columns), layer × layer of two
encoders, or every representation vs a reference (one column). Each representation is prepared once and every
bootstrap resample is drawn once for the whole matrix, so all cells share resamples (what the paired test needs).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Collection, Mapping

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from core.analyses.similarity.large import DENSE_MAX_ITEMS, StreamedRepresentation, streamed_similarity
from core.analyses.similarity.given_rdms import not_applicable, prepare_rdm, validate_rdm
from core.analyses.similarity.measures import (MEASURES, RDM_MEASURES, PreparedRepresentation, SimilaritySettings,
                                               as_backend, check_measures, similarity, validate_features)
from core.progress import Progress, Report

MIN_BOOTSTRAP_ITEMS = 10  # fewer items: a resample repeats most of them; CIs would mislead
ASYMMETRIC = frozenset({"cknna"})  # platonic-rep's masked HSIC uses Kᵀ: (X, Y) and (Y, X) differ slightly


@dataclass(frozen=True, eq=False)
class SimilarityMatrix:
    """Measures × rows × columns values, with percentile CIs and the bootstrap draws when bootstrapped."""

    measures: tuple[str, ...]
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    values: np.ndarray  # (n_measures, n_rows, n_columns)
    settings: SimilaritySettings
    n_items: int
    fingerprints: Mapping[str, str]  # representation name -> fingerprint of its input
    n_bootstrap: int = 0
    seed: int = 0
    resamples: np.ndarray | None = None  # (n_measures, n_rows, n_columns, n_bootstrap)
    warnings: tuple[str, ...] = ()
    rdm_only: tuple[str, ...] = ()  # representations given as RDMs: only the RSA measures have values for them

    def value(self, measure: str, row: str, column: str) -> float:
        return float(self.values[self.measures.index(measure), self.rows.index(row), self.columns.index(column)])

    def interval(self, measure: str, row: str, column: str, level: float = 0.95) -> tuple[float, float]:
        """Percentile bootstrap interval of one cell ((nan, nan) without a bootstrap)."""
        if self.resamples is None:
            return float("nan"), float("nan")
        draws = self.resamples[self.measures.index(measure), self.rows.index(row), self.columns.index(column)]
        return percentile_interval(draws, level)

    def note(self, measure: str, row: str, column: str) -> str:
        """Why a cell has no value ("" where it has one, or where only the data leave it undefined)."""
        if measure in RDM_MEASURES:
            return ""
        given = next((name for name in (row, column) if name in self.rdm_only), None)
        return "" if given is None else not_applicable(given)

    def table(self) -> pd.DataFrame:
        """One row per measure × row × column: value, ci_low, ci_high (NaN without a bootstrap), and a `note` where
        the measure does not apply (a side given as RDMs only)."""
        records = []
        for m, measure in enumerate(self.measures):
            for r, row in enumerate(self.rows):
                for c, column in enumerate(self.columns):
                    low, high = self.interval(measure, row, column)
                    record = {"measure": measure, "row": row, "column": column,
                              "value": float(self.values[m, r, c]), "ci_low": low, "ci_high": high}
                    if self.rdm_only:
                        record["note"] = self.note(measure, row, column)
                    records.append(record)
        return pd.DataFrame(records)


def fingerprint(features: np.ndarray) -> str:
    """16 hex digits of sha256 over an array's shape, dtype and bytes."""
    array = np.ascontiguousarray(features)
    return hashlib.sha256(f"{array.shape}{array.dtype}".encode() + array.tobytes()).hexdigest()[:16]


def compare(rows: Mapping[str, np.ndarray], columns: Mapping[str, np.ndarray] | None = None,
            measures=("cka_linear", "rsa_spearman"), settings: SimilaritySettings = SimilaritySettings(), *,
            n_bootstrap: int = 0, seed: int = 0, backend: str = "numpy", device: str = "cpu",
            fingerprints: Mapping[str, str] | None = None, progress: Report | None = None,
            dense_max_items: int = DENSE_MAX_ITEMS, rdm_only: Collection[str] = ()) -> SimilarityMatrix:
    """Every measure for every (row, column) pair of (N, p_i) representations of the same N items.

    `columns=None` compares the rows among themselves. A name in both rows and columns is one representation,
    prepared once. The names in `rdm_only` are (N, N) RDMs given without item vectors: the RSA measures compare
    them as given, every other measure is NaN there with a warning (`not_applicable`). `n_bootstrap` resamples the
    items (seeded) for CIs; too few items give a warning, no CIs. `progress` counts the values, then every resample.
    """
    measures = check_measures(measures)
    columns = rows if columns is None else columns
    arrays = {**rows, **columns}
    for name in set(rows) & set(columns):
        if rows[name] is not columns[name] and not np.array_equal(rows[name], columns[name]):
            raise ValueError(f"{name!r} names two different representations; give them different names.")
    rdm_only = tuple(name for name in arrays if name in set(rdm_only))
    checked = {name: validate_rdm(array, name) if name in rdm_only else validate_features(array, name)
               for name, array in arrays.items()}
    sizes = {name: len(array) for name, array in checked.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError("The representations describe different numbers of items: "
                         + ", ".join(f"{name} {size}" for name, size in sizes.items()) + "; they must be the same "
                         "items in the same order.")
    n_items = next(iter(sizes.values()))
    settings, warnings = _feasible(settings, n_items, measures)
    vector_measures = [MEASURES[name].label for name in measures if name not in RDM_MEASURES]
    warnings += [f"{', '.join(vector_measures)}: {not_applicable(name)} (only the RSA measures compare RDMs)."
                 for name in rdm_only if vector_measures]
    if n_bootstrap and n_items < MIN_BOOTSTRAP_ITEMS:
        warnings.append(f"Only {n_items} items: too few for a bootstrap over items (need {MIN_BOOTSTRAP_ITEMS}); "
                        "values are shown without confidence intervals.")
        n_bootstrap = 0
    streamed = n_items > dense_max_items and not rdm_only  # an RDM given is N × N already
    if streamed and n_bootstrap:
        warnings.append(f"{n_items} items: above {dense_max_items}, the measures stream in blocks without an "
                        "N × N matrix per representation, and a bootstrap (one full matrix per resample) is not "
                        "offered; values are shown without confidence intervals.")
        n_bootstrap = 0
    prepared = {name: prepare_rdm(array, settings, name) if name in rdm_only else
                StreamedRepresentation(array, settings) if streamed else
                PreparedRepresentation(as_backend(array, device, backend), settings)
                for name, array in checked.items()}
    total = 1 + n_bootstrap
    values = _cells(prepared, tuple(rows), tuple(columns), measures)
    if progress is not None:
        progress(Progress(1, total, "values"))
    resamples = None
    if n_bootstrap:
        rng = np.random.default_rng(seed)
        resamples = np.empty(values.shape + (n_bootstrap,), dtype=np.float32)
        for draw in range(n_bootstrap):
            sample = rng.integers(0, n_items, n_items)
            drawn = {name: representation.resample(sample) for name, representation in prepared.items()}
            resamples[..., draw] = _cells(drawn, tuple(rows), tuple(columns), measures)
            if progress is not None:
                progress(Progress(2 + draw, total, f"bootstrap {draw + 1}/{n_bootstrap}"))
    given = dict(fingerprints or {})
    return SimilarityMatrix(measures, tuple(rows), tuple(columns), values, settings, n_items,
                            {name: given.get(name) or fingerprint(checked[name]) for name in checked},
                            n_bootstrap, seed, resamples, tuple(warnings), rdm_only)


def _feasible(settings: SimilaritySettings, n_items: int, measures) -> tuple[SimilaritySettings, list[str]]:
    """Settings that can run on `n_items`, with a warning for each change (k >= N − 1 is capped)."""
    warnings = []
    if any(name in ("mutual_knn", "cknna") for name in measures) and settings.k > n_items - 2:
        k = max(1, n_items - 2)
        warnings.append(f"k = {settings.k} is not below N − 1 = {n_items - 1} items (every item would be every "
                        f"other's neighbour); using k = {k}.")
        settings = replace(settings, k=k)
    if "cka_debiased" in measures and n_items < 4:
        raise ValueError(f"Debiased CKA needs at least 4 items; these representations have {n_items}.")
    return settings, warnings


def _cells(prepared: Mapping[str, PreparedRepresentation | StreamedRepresentation], rows: tuple[str, ...], columns: tuple[str, ...],
           measures: tuple[str, ...]) -> np.ndarray:
    """(n_measures, n_rows, n_columns) values; a symmetric measure's (b, a) reuses (a, b)."""
    values = np.full((len(measures), len(rows), len(columns)), np.nan)
    done: dict[tuple[str, str, str], float] = {}
    for m, measure in enumerate(measures):
        for r, row in enumerate(rows):
            for c, column in enumerate(columns):
                mirrored = (measure, column, row)
                if measure not in ASYMMETRIC and mirrored in done:
                    values[m, r, c] = done[mirrored]
                    continue
                pair = streamed_similarity if isinstance(prepared[row], StreamedRepresentation) else similarity
                values[m, r, c] = done[(measure, row, column)] = pair(prepared[row], prepared[column], measure)
    return values


def percentile_interval(draws: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap draws (NaN draws, e.g. an undefined debiased CKA, left out)."""
    finite = draws[np.isfinite(draws)]
    if not len(finite):
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class PairedTest:
    """Measure(first, reference) − measure(second, reference) over the same bootstrap resamples."""

    measure: str
    first: str
    second: str
    reference: str
    difference: float
    ci_low: float
    ci_high: float
    p_value: float  # two-sided: 2 min(share <= 0, share >= 0) of the bootstrapped differences
    n_bootstrap: int


def paired_test(matrix: SimilarityMatrix, measure: str, first: str, second: str, reference: str) -> PairedTest:
    """Is `first` closer to `reference` than `second` is, by `measure`? Needs a bootstrapped matrix."""
    if matrix.resamples is None:
        raise ValueError("A paired test needs a bootstrapped matrix; compute it with n_bootstrap > 0.")
    m, column = matrix.measures.index(measure), matrix.columns.index(reference)
    a, b = matrix.rows.index(first), matrix.rows.index(second)
    differences = (matrix.resamples[m, a, column].astype(np.float64) - matrix.resamples[m, b, column])
    differences = differences[np.isfinite(differences)]
    low, high = percentile_interval(differences)
    p_value = min(1.0, 2 * min(np.mean(differences <= 0), np.mean(differences >= 0))) if len(differences) else np.nan
    return PairedTest(measure, first, second, reference, float(matrix.values[m, a, column] - matrix.values[m, b, column]),
                      low, high, float(p_value), len(differences))


def random_rotation(features: np.ndarray, seed: int = 0, n_reflections: int = 16) -> np.ndarray:
    """(N, p) features times a random orthogonal matrix (a product of an even number of Householder
    reflections, so a rotation), in O(N p) per reflection: no p × p matrix is formed."""
    rng = np.random.default_rng(seed)
    rotated = np.array(features, dtype=np.float64)
    for _ in range(n_reflections + n_reflections % 2):
        direction = rng.normal(size=rotated.shape[1])
        direction /= np.linalg.norm(direction)
        rotated -= 2 * np.outer(rotated @ direction, direction)
    return rotated


CONTROLS = {"self": "vs itself", "rotation": "vs a random rotation of itself", "shuffle": "vs itself, items shuffled"}


def controls(representations: Mapping[str, np.ndarray], measures, settings: SimilaritySettings = SimilaritySettings(),
             *, seed: int = 0, rdm_only: Collection[str] = ()) -> pd.DataFrame:
    """Each representation vs itself, a rotation of itself and an item-shuffled copy (chance), for every measure.

    An (N, N) RDM named in `rdm_only` has no features to rotate: its rotation control and its measures that need
    item vectors are NaN. Returns a long table: representation, control, measure, value.
    """
    measures = check_measures(measures)
    records = []
    for index, (name, array) in enumerate(representations.items()):
        given = name in set(rdm_only)
        features = validate_rdm(array, name) if given else validate_features(array, name)
        settings_here, _ = _feasible(settings, len(features), measures)
        permutation = np.random.default_rng(seed + index).permutation(len(features))
        if given:
            original = prepare_rdm(features, settings_here, name)
            partners = {"self": original, "rotation": None,
                        "shuffle": prepare_rdm(features[permutation][:, permutation], settings_here, name)}
        else:
            original = PreparedRepresentation(features, settings_here)
            partners = {"self": original,
                        "rotation": PreparedRepresentation(random_rotation(features, seed + index), settings_here),
                        "shuffle": PreparedRepresentation(features[permutation], settings_here,
                                                          gram=original.gram[permutation][:, permutation])}
        for control, partner in partners.items():
            for measure in measures:
                records.append({"representation": name, "control": control, "measure": measure,
                                "value": np.nan if partner is None else similarity(original, partner, measure)})
    return pd.DataFrame(records)


@dataclass(frozen=True)
class NoiseCeiling:
    """How well any model can match S reference representations of the same items, for one measure."""

    measure: str
    lower: float  # mean_s m(R_s, mean of the other references): leave-one-out
    upper: float  # mean_s m(R_s, mean of all references)
    references: tuple[str, ...]


def noise_ceiling(references: Mapping[str, np.ndarray], measures,
                  settings: SimilaritySettings = SimilaritySettings(), *,
                  rdm_only: Collection[str] = ()) -> dict[str, NoiseCeiling]:
    """Upper and lower noise-ceiling bounds per measure from S >= 2 (N, d_s) references (docs/science.md §8).

    For RSA the mean reference is the mean RDM; for every other measure it is the representation whose linear
    Gram is the mean Gram (the references side by side, scaled by 1/√S). With a reference given as an (N, N) RDM
    (named in `rdm_only`) only the RSA measures have a ceiling; the others are NaN.
    """
    measures = check_measures(measures)
    if len(references) < 2:
        raise ValueError(f"A noise ceiling needs at least 2 references of the same items; got {len(references)}.")
    given = set(rdm_only)
    arrays = {name: validate_rdm(array, name) if name in given else validate_features(array, name)
              for name, array in references.items()}
    settings, _ = _feasible(settings, len(next(iter(arrays.values()))), measures)
    prepared = {name: prepare_rdm(array, settings, name) if name in given else PreparedRepresentation(array, settings)
                for name, array in arrays.items()}

    def mean_of(names: list[str]) -> PreparedRepresentation:
        rdm_vector = None
        if any(measure in RDM_MEASURES for measure in measures):
            rdm_vector = np.mean([prepared[name].rdm_vector for name in names], axis=0)
        if given & set(names):
            return PreparedRepresentation(None, settings, rdm_vector=rdm_vector, n=len(arrays[names[0]]))
        features = np.hstack([arrays[name] for name in names]) / np.sqrt(len(names))
        return PreparedRepresentation(features, settings, rdm_vector=rdm_vector)

    names = list(arrays)
    everything = mean_of(names)
    others = {name: mean_of([other for other in names if other != name]) for name in names}
    return {measure: NoiseCeiling(measure,
                                  float(np.mean([similarity(prepared[name], others[name], measure) for name in names])),
                                  float(np.mean([similarity(prepared[name], everything, measure) for name in names])),
                                  tuple(names))
            for measure in measures}


def measure_agreement(matrix: SimilarityMatrix) -> pd.DataFrame:
    """(n_measures, n_measures) Spearman ρ between measures across the matrix's distinct off-diagonal pairs;
    distances are negated first, so a positive ρ means the measures rank the pairs alike."""
    square = matrix.rows == matrix.columns  # all pairs of one set: each pair once, the diagonal left out
    cells = [(r, c) for r, row in enumerate(matrix.rows) for c, column in enumerate(matrix.columns)
             if (r < c if square else row != column)]
    signs = np.array([1.0 if MEASURES[measure].higher_is_similar else -1.0 for measure in matrix.measures])
    scores = np.array([[matrix.values[m, r, c] for r, c in cells] for m in range(len(matrix.measures))]) * signs[:, None]
    agreement = np.full((len(matrix.measures),) * 2, np.nan)
    if len(cells) >= 3:
        for a in range(len(matrix.measures)):
            for b in range(len(matrix.measures)):
                agreement[a, b] = spearmanr(scores[a], scores[b]).statistic
    return pd.DataFrame(agreement, index=list(matrix.measures), columns=list(matrix.measures))
