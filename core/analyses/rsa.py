"""RDM comparators and noise ceilings equal to rsatoolbox's (docs/science.md §9), vectorised over all RDM pairs.

Every function takes condensed RDMs (upper triangles in scipy `squareform` order) as rows of a 2-D array; a column
that is NaN in any RDM is a pair left out of the comparison (rsatoolbox's convention for the pairs of duplicated
stimuli in a stimulus bootstrap). One call compares all models with all subjects: ranks, centring and norms are
computed once per RDM, the comparisons are one matrix product; only `tau-a` loops over pairs (as rsatoolbox does).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.stats import rankdata
from scipy.stats._stats import _kendall_dis

METHODS = ("corr", "spearman", "tau-a", "rho-a", "cosine", "corr_cov", "cosine_cov")
RANK_METHODS = ("spearman", "rho-a", "tau-a")


def condensed(stack: np.ndarray) -> np.ndarray:
    """(S, N, N) symmetric RDMs -> (S, N (N - 1) / 2) upper triangles in scipy `squareform` order."""
    i, j = np.triu_indices(stack.shape[-1], 1)
    return stack[:, i, j]


def n_items_of(n_pairs: int) -> int:
    """N such that N (N - 1) / 2 == n_pairs; ValueError when there is none."""
    n = int(round((1 + np.sqrt(1 + 8 * n_pairs)) / 2))
    if n * (n - 1) // 2 != n_pairs:
        raise ValueError(f"{n_pairs} is not the length of a condensed RDM (N (N - 1) / 2 for some N)")
    return n


def _check(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown RDM comparator {method!r}; choose from {', '.join(METHODS)}")


def _rank(vectors: np.ndarray) -> np.ndarray:
    """Average-tie ranks of each row (K, P) -> (K, P)."""
    return rankdata(vectors, axis=1)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of every row of a (K, P) with every row of b (L, P) -> (K, L); 0 for an all-zero row (rsatoolbox)."""
    na = np.sqrt(np.einsum("ij,ij->i", a, a))
    nb = np.sqrt(np.einsum("ij,ij->i", b, b))
    out = a @ b.T
    with np.errstate(divide="ignore", invalid="ignore"):
        out = out / na[:, None] / nb[None, :]
    out[~np.outer(na > 0, nb > 0)] = 0.0
    return out


def _centre(vectors: np.ndarray) -> np.ndarray:
    return vectors - vectors.mean(axis=1, keepdims=True)


def _indicators(n: int, keep: np.ndarray) -> sparse.csr_matrix:
    """rsatoolbox's row + column indicator (P' + N, N), sparse: the kept pairs' two items, then the N diagonal ones."""
    i, j = np.triu_indices(n, 1)
    i, j = i[keep], j[keep]
    rows = np.concatenate([np.arange(len(i)), np.arange(len(i)), len(i) + np.arange(n)])
    cols = np.concatenate([i, j, np.arange(n)])
    values = np.concatenate([np.ones(2 * len(i)), np.full(n, 2.0)])
    return sparse.csr_matrix((values, (rows, cols)), shape=(len(i) + n, n))


def _whiten(vectors: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """rsatoolbox's `_cov_weighting` with sigma_k = None: (K, P') kept pairs -> (K, P' + N) isotropic vectors."""
    n = n_items_of(keep.size)
    k, n_kept = vectors.shape
    w = -0.5 * np.concatenate([vectors, np.zeros((k, n))], axis=1)
    sum_i = _indicators(n, keep)
    if keep.all():
        # double centring of the second-moment matrix: row/column means and the grand mean
        m = (sum_i.T @ w.T).T / n
        mm = np.sum(w * 2, axis=1, keepdims=True) / (n * n)
        w = w - (sum_i @ m.T).T + mm
    else:
        # least-squares double centring with missing pairs (rsatoolbox's one-line projection)
        halve = sparse.diags(np.concatenate([np.ones(n_kept), np.full(n, 0.5)]))
        sum_i = halve @ sum_i
        diag = np.concatenate([np.full(n_kept, 0.5), np.ones(n)])
        weighted = sparse.diags(diag) @ sum_i
        gram = (sum_i.T @ weighted).toarray()
        w = w - (weighted @ np.linalg.solve(gram, (sum_i.T @ w.T))).T
    w[:, :n_kept] *= np.sqrt(2)
    return w


def _tau_a(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-a of two vectors, rsatoolbox's `_tau_a` (ties neither concordant nor discordant)."""
    size = x.size
    perm = np.argsort(y, kind="mergesort")
    x, y = x[perm], y[perm]
    y = np.r_[True, y[1:] != y[:-1]].cumsum(dtype=np.intp)
    perm = np.argsort(x, kind="mergesort")
    x, y = x[perm], y[perm]
    x = np.r_[True, x[1:] != x[:-1]].cumsum(dtype=np.intp)
    dis = _kendall_dis(x, y)
    obs = np.r_[True, (x[1:] != x[:-1]) | (y[1:] != y[:-1]), True]
    cnt = np.diff(np.nonzero(obs)[0]).astype("int64", copy=False)
    ntie = (cnt * (cnt - 1) // 2).sum()

    def ties(ranks: np.ndarray) -> int:
        c = np.bincount(ranks).astype("int64", copy=False)
        c = c[c > 1]
        return (c * (c - 1) // 2).sum()

    tot = (size * (size - 1)) // 2
    return float(min(1.0, max(-1.0, (tot - ties(x) - ties(y) + ntie - 2 * dis) / tot)))


def prepare(vectors: np.ndarray, method: str, keep: np.ndarray | None = None) -> np.ndarray:
    """The per-RDM transform of a comparator (K, P) -> (K, P''): ranks, centring, whitening, done once per RDM."""
    _check(method)
    v = np.asarray(vectors, dtype=float)
    full = keep is None or v.shape[1] == keep.size
    if keep is not None and full:
        v = v[:, keep]  # else: the rows hold only the kept pairs already
    if keep is None:
        keep = np.ones(v.shape[1], bool)
    if method in RANK_METHODS:
        v = _rank(v)
        return v if method == "tau-a" else _centre(v)
    if method == "corr":
        return _centre(v)
    if method == "corr_cov":
        return _whiten(_centre(v), keep)
    if method == "cosine_cov":
        return _whiten(v, keep)
    return v


def compare_prepared(a: np.ndarray, b: np.ndarray, method: str) -> np.ndarray:
    """Comparator values of prepared rows a (K, P'') with prepared rows b (L, P'') -> (K, L)."""
    if method == "rho-a":
        n = a.shape[1]
        return a @ b.T / (n ** 3 - n) * 12
    if method == "tau-a":
        return np.array([[_tau_a(x, y) for y in b] for x in a]).reshape(len(a), len(b))
    return _cosine(a, b)


def _keep_of(*arrays: np.ndarray) -> np.ndarray | None:
    """Pairs present in every RDM (None when none is missing); ValueError when RDMs disagree on them."""
    masks = [~np.isnan(x).any(axis=0) for x in arrays]
    if all(m.all() for m in masks):
        return None
    if any((m != masks[0]).any() for m in masks[1:]):
        raise ValueError("the RDMs have NaN at different pairs")
    return masks[0]


def compare_rdms(models: np.ndarray, data: np.ndarray, method: str = "corr") -> np.ndarray:
    """Every model RDM (M, P) against every data RDM (S, P), both condensed -> (M, S); equals rsatoolbox's compare."""
    models, data = np.atleast_2d(np.asarray(models, float)), np.atleast_2d(np.asarray(data, float))
    if models.shape[1] != data.shape[1]:
        raise ValueError(f"models have {models.shape[1]} pairs, data {data.shape[1]}: RDMs of different N")
    keep = _keep_of(models, data)
    return compare_prepared(prepare(models, method, keep), prepare(data, method, keep), method)


def pool_rdms(data: np.ndarray, method: str, weights: np.ndarray | None = None) -> np.ndarray:
    """rsatoolbox's `pool_rdm`: the RDM (P,) that best represents rows (S, P) under `method`, count-weighted."""
    _check(method)
    v = np.asarray(data, float)
    w = np.ones(len(v)) if weights is None else np.asarray(weights, float)
    if method in ("cosine", "cosine_cov"):
        v = v / np.sqrt(np.mean(v ** 2, axis=1, keepdims=True))
    elif method in ("corr", "corr_cov"):
        v = _centre(v)
        v = v / v.std(axis=1, keepdims=True)
    else:
        v = _rank(v)
    pooled = w @ v / w.sum()
    return pooled - pooled.min() if method in ("corr", "corr_cov") else pooled


@dataclass(frozen=True)
class NoiseCeiling:
    """The noise ceiling of a group of data RDMs: lower (each vs the mean of the others), upper (each vs all)."""

    lower: float
    upper: float
    per_subject_lower: np.ndarray  # (S,)
    per_subject_upper: np.ndarray  # (S,)


def _transformed(data: np.ndarray, method: str) -> np.ndarray:
    """The rows (S, P) as `pool_rdms` averages them, before the weighted mean."""
    if method in ("cosine", "cosine_cov"):
        return data / np.sqrt(np.mean(data ** 2, axis=1, keepdims=True))
    if method in ("corr", "corr_cov"):
        c = _centre(data)
        return c / c.std(axis=1, keepdims=True)
    return _rank(data)


def _paired(a: np.ndarray, b: np.ndarray, method: str, keep: np.ndarray) -> np.ndarray:
    """Comparator of row s of a with row s of b, both (S, P') of the kept pairs -> (S,)."""
    pa, pb = prepare(a, method, keep), prepare(b, method, keep)
    if method == "tau-a":
        return np.array([_tau_a(x, y) for x, y in zip(pa, pb)])
    if method == "rho-a":
        n = pa.shape[1]
        return np.einsum("ij,ij->i", pa, pb) / (n ** 3 - n) * 12
    num = np.einsum("ij,ij->i", pa, pb)
    den = np.sqrt(np.einsum("ij,ij->i", pa, pa) * np.einsum("ij,ij->i", pb, pb))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, 0.0)


def noise_ceiling(data: np.ndarray, method: str = "corr", counts: np.ndarray | None = None) -> NoiseCeiling:
    """rsatoolbox's `boot_noise_ceiling` of data RDMs (S, P) (NaN columns dropped); `counts` (S,) weight copies.

    Pooling follows rsatoolbox: rank comparators average ranks, corr z-scores, cosine scales to unit RMS. With
    counts (a subject bootstrap), the pooled RDMs weight each subject by its copies and the bounds average the
    distinct subjects (rsatoolbox leaves all copies of a subject out together).
    """
    _check(method)
    data = np.atleast_2d(np.asarray(data, float))
    keep = ~np.isnan(data).any(axis=0)
    data = data[:, keep]
    counts = np.ones(len(data)) if counts is None else np.asarray(counts, float)
    present = counts > 0
    t = _transformed(data, method)
    total = counts @ t
    upper_pool = total / counts.sum()
    if method in ("corr", "corr_cov"):
        upper_pool = upper_pool - upper_pool.min()
    if present.sum() > 1:
        others = (total[None, :] - counts[:, None] * t) / (counts.sum() - counts)[:, None].clip(min=1e-300)
        if method in ("corr", "corr_cov"):
            others = others - others.min(axis=1, keepdims=True)
    else:
        others = np.repeat(upper_pool[None], len(data), axis=0)
    lower = _paired(others[present], data[present], method, keep)
    upper = _paired(np.repeat(upper_pool[None], present.sum(), axis=0), data[present], method, keep)
    return NoiseCeiling(float(lower.mean()), float(upper.mean()), lower, upper)
