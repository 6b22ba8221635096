"""Permutation nulls of a similarity between two representations of the same items (docs/science.md §12).

The items of the second side are permuted (rows of an embedding; rows and columns of an RDM together) and the
measure recomputed, `n_perm` times from one seed. Nothing is approximated, but nothing is recomputed either where
the measure allows: for the RDM comparators that are inner products after a per-RDM transform (Pearson, Spearman,
rho-a, cosine) and for linear CKA, the transform (ranks, centring, centred Gram) is done once and each permutation
is one inner product Σ_ij A_ij B_{π(i) π(j)}, gathered block of rows by block of rows (bounded memory, in cache).
Mutual k-NN gathers only the N k neighbour pairs of the first side.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.spatial.distance import squareform
from threadpoolctl import threadpool_limits

from core.analyses import rsa
from core.analyses.similarity.measures import (MEASURES, PreparedRepresentation, SimilaritySettings, prepare,
                                               similarity)

BLOCK_ELEMENTS = 2 ** 18  # entries gathered at once: a block of rows of an N × N matrix (2 MiB in float64)
INNER_PRODUCT_METHODS = ("corr", "spearman", "rho-a", "cosine")  # comparators = scaled <a', b'> of transformed RDMs
RSA_MEASURE_METHODS = {"rsa_spearman": "spearman", "rsa_pearson": "corr", "rsa_cosine": "cosine",
                       "rsa_tau_a": "tau-a"}  # the Similarity page's RSA names -> rsatoolbox's comparator names


@dataclass(frozen=True, eq=False)
class PermutationNull:
    """An observed similarity against its values under permutations of one side's items."""

    observed: float
    null: np.ndarray  # (n_perm,) the measure after each permutation (NaN where it is undefined)
    p: float  # (1 + #{null at least as similar as observed}) / (1 + n_perm), over the finite null values
    z: float  # (observed − mean null) / sd null (ddof 1); NaN when the null has no spread
    q95: float  # the null's 95th percentile (5th for a distance): the value a cell must beat
    beats_null: bool  # p < alpha
    n_perm: int
    seed: int


def null_summary(observed: float, null: np.ndarray, *, seed: int, alpha: float = 0.05,
                 higher_is_similar: bool = True) -> PermutationNull:
    """PermutationNull of an observed value and its (n_perm,) null; a distance (lower = similar) counts null <= observed."""
    null = np.asarray(null, dtype=np.float64)
    finite = null[np.isfinite(null)]
    exceed = np.sum(finite >= observed) if higher_is_similar else np.sum(finite <= observed)
    p = float((1 + exceed) / (1 + len(finite)))
    spread = np.std(finite, ddof=1) if len(finite) > 1 else 0.0
    z = float((observed - np.mean(finite)) / spread) if spread > 0 else float("nan")
    q95 = float(np.percentile(finite, 95 if higher_is_similar else 5)) if len(finite) else float("nan")
    return PermutationNull(float(observed), null, p, z, q95, bool(p < alpha), len(null), seed)


def permutations(n_items: int, n_perm: int, seed: int = 0) -> np.ndarray:
    """(n_perm, n_items) independent random permutations of 0..n_items-1 from one seed."""
    rng = np.random.default_rng(seed)
    return rng.permuted(np.tile(np.arange(n_items), (n_perm, 1)), axis=1)


def permuted_inner_products(a: np.ndarray, b: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """(n_perm,) Σ_ij a_ij b_{π(i) π(j)} for symmetric (N, N) a, b and permutations (n_perm, N), in blocks of rows.

    Symmetry halves the gathering: a block of rows R = [s, e) takes only the columns from s on, and
    Σ_ij = Σ_R (2 <a[R, s:], b_π[R, s:]> − <a[R, R], b_π[R, R]>) (pairs right of the block once per side, the
    block's own square once).
    """
    n = a.shape[0]
    rows = max(1, BLOCK_ELEMENTS // n)
    starts = range(0, n, rows)
    a_blocks = [np.ascontiguousarray(a[start:start + rows, start:]) for start in starts]
    out = np.zeros(len(perms))
    # One BLAS thread: thousands of small memory-bound dot products ran 10-100x slower, and erratically, with
    # OpenBLAS's threads on two busy cores (a 2 MiB block: 0.1 ms single-threaded, up to 7 ms threaded).
    with threadpool_limits(limits=1):
        for index, perm in enumerate(perms):
            total = 0.0
            for start, a_block in zip(starts, a_blocks):
                size = a_block.shape[0]
                b_block = b.take(perm[start:start + size], axis=0).take(perm[start:], axis=1)
                total += 2 * np.vdot(a_block, b_block) - np.vdot(a_block[:, :size], b_block[:, :size])
            out[index] = total
    return out


def rsa_null(rdm_a: np.ndarray, rdm_b: np.ndarray, *, method: str = "spearman", n_perm: int = 1000, seed: int = 0,
             alpha: float = 0.05) -> PermutationNull:
    """Null of comparator(rdm_a, rdm_b) for condensed (M,) RDMs, permuting the items of rdm_b (rsa.METHODS names).

    rdm_b may be (S, M), one RDM per subject: the value is then the mean over subjects (rsa_inference's evaluation
    of a fixed model), and each permutation permutes every subject's items alike.
    """
    a, b = np.asarray(rdm_a, dtype=np.float64).ravel(), np.atleast_2d(np.asarray(rdm_b, dtype=np.float64))
    if b.ndim != 2 or b.shape[1] != a.size:
        raise ValueError(f"The RDMs have {a.size} and {b.shape[-1]} pairs: they must describe the same items.")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("A permutation null needs complete RDMs (a NaN pair would move with the permutation).")
    observed = float(np.mean(rsa.compare_rdms(a, b, method)))
    null = rdm_null_values(a, b, method, permutations(rsa.n_items_of(a.size), n_perm, seed))
    return null_summary(observed, null, seed=seed, alpha=alpha)


def rdm_null_values(a: np.ndarray, b: np.ndarray, method: str, perms: np.ndarray) -> np.ndarray:
    """(n_perm,) mean over rows of comparator(a, b's row permuted) for complete condensed RDMs a (M,), b (M,) or
    (S, M), and item permutations (n_perm, N)."""
    b = np.atleast_2d(b)
    if method not in INNER_PRODUCT_METHODS:  # tau-a and the whitened comparators: recomputed (exact, slower)
        upper = np.triu_indices(perms.shape[1], 1)
        squares = [squareform(row, checks=False) for row in b]
        return np.array([np.mean(rsa.compare_rdms(a, np.array([square[np.ix_(perm, perm)][upper] for square in squares]),
                                                  method)) for perm in perms])
    prepared_a, prepared_b = rsa.prepare(a[None], method)[0], rsa.prepare(b, method)
    # Ranks and centring commute with permuting the pairs, and the mean over subjects of an inner product is the
    # inner product with their (norm-weighted) mean: transform and combine once, then permute the combination.
    if method == "rho-a":
        combined, scale = prepared_b.mean(axis=0), 12 / (a.size ** 3 - a.size)
    else:
        norms = np.linalg.norm(prepared_b, axis=1)
        weights = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)  # rsatoolbox: 0 for a zero RDM
        norm_a = np.linalg.norm(prepared_a)
        combined, scale = weights @ prepared_b / len(b), (1 / norm_a if norm_a > 0 else 0.0)
    inner = permuted_inner_products(squareform(prepared_a, checks=False), squareform(combined, checks=False), perms)
    return inner / 2 * scale  # the square form holds every pair twice


def embedding_null(a: np.ndarray, b: np.ndarray, measure: str | Callable[[np.ndarray, np.ndarray], float], *,
                   settings: SimilaritySettings = SimilaritySettings(), n_perm: int = 1000, seed: int = 0,
                   alpha: float = 0.05) -> PermutationNull:
    """Null of measure(a (N, Da), b (N, Db)), permuting the rows of b: a similarity.MEASURES name or a callable.

    A name gives the Similarity page's number as `observed` (same code, same settings); a callable is taken as
    higher = more similar and recomputed on b[π] for every permutation.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"The representations describe {a.shape[0]} and {b.shape[0]} items: they must be the same.")
    perms = permutations(a.shape[0], n_perm, seed)
    if callable(measure):
        observed = float(measure(a, b))
        return null_summary(observed, [measure(a, b[perm]) for perm in perms], seed=seed, alpha=alpha)
    first, second = prepare(a, settings), prepare(b, settings)
    observed = similarity(first, second, measure)
    null = _measure_null(first, second, measure, perms, settings)
    return null_summary(observed, null, seed=seed, alpha=alpha, higher_is_similar=MEASURES[measure].higher_is_similar)


def _measure_null(first: PreparedRepresentation, second: PreparedRepresentation, measure: str, perms: np.ndarray,
                  settings: SimilaritySettings) -> np.ndarray:
    """(n_perm,) a similarity.MEASURES measure after each permutation of `second`'s items."""
    if measure == "cka_linear":
        # The centred Gram of b[π] is the centred Gram of b with rows and columns permuted.
        x, y = first.centred_gram, second.centred_gram
        return permuted_inner_products(x, y, perms) / np.sqrt(np.vdot(x, x) * np.vdot(y, y))
    if measure == "mutual_knn":
        # Neighbours of b[π] are b's neighbours relabelled (up to exact ties): count first's N k pairs (i, j)
        # whose permuted pair (π(i), π(j)) are neighbours in b.
        rows, columns = np.nonzero(first.neighbour_mask)
        mask = second.neighbour_mask.astype(bool)
        return np.array([mask[perm[rows], perm[columns]].sum() for perm in perms]) / (first.n * settings.k)
    if measure in RSA_MEASURE_METHODS:
        return rdm_null_values(first.rdm_vector, second.rdm_vector, RSA_MEASURE_METHODS[measure], perms)
    features, gram = second.features, second.gram
    return np.array([similarity(first, PreparedRepresentation(features[perm], settings, gram=gram[np.ix_(perm, perm)]),
                                measure) for perm in perms])
