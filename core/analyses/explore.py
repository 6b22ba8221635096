"""Item by item: nearest neighbours, where two representations disagree, 2-D maps of a representation, and
where a transport plan sends each item (docs/science.md §9)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from core.analyses.manifolds import embed_2d
from core.analyses.rdm import RDM_METRICS
from core.features.results import ResultStore, result_key

MAP_METHODS = ("PCA", "t-SNE", "UMAP")
MAP_KIND = "explore_map"
BLOCK_ROWS = 512  # query rows per (rows, N) block: 512 × 10,000 float64 = 41 MB


@dataclass(frozen=True)
class Neighbours:
    """Each query item's k nearest items by cosine similarity, nearest first (ties: lower row first)."""

    queries: np.ndarray  # (n,) item rows asked about
    indices: np.ndarray  # (n, k) item rows of the neighbours
    similarities: np.ndarray  # (n, k) cosine similarity

    @property
    def distances(self) -> np.ndarray:
        """(n, k) cosine distance 1 − cos."""
        return 1.0 - self.similarities


def unit_rows(features: np.ndarray) -> np.ndarray:
    """(N, d) -> (N, d) float64 rows of unit L2 norm; an all-zero row stays zero (cosine 0 to everything)."""
    rows = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)


def nearest_neighbours(features: np.ndarray, k: int, queries: Sequence[int] | None = None) -> Neighbours:
    """(N, d) -> the k most cosine-similar other items of each query row (all rows by default), itself excluded.

    The same neighbours as the mutual k-NN measure (§8), by exact brute force in row blocks."""
    unit = unit_rows(features)
    n = len(unit)
    if n < 2:
        raise ValueError(f"Nearest neighbours need at least 2 items; got {n}.")
    k = int(min(max(k, 1), n - 1))
    queries = np.arange(n) if queries is None else np.asarray(queries, dtype=int).reshape(-1)
    indices = np.empty((len(queries), k), dtype=np.int64)
    similarities = np.empty((len(queries), k))
    for start in range(0, len(queries), BLOCK_ROWS):
        rows = queries[start:start + BLOCK_ROWS]
        block = unit[rows] @ unit.T
        block[np.arange(len(rows)), rows] = -np.inf
        candidates = np.argpartition(-block, k - 1, axis=1)[:, :k]
        # argpartition picks arbitrarily among values tied with the k-th: rows with such ties sort in full.
        kth = np.take_along_axis(block, candidates, axis=1).min(axis=1, keepdims=True)
        tied = (block >= kth).sum(axis=1) > k
        if tied.any():
            candidates[tied] = np.argsort(-block[tied], axis=1, kind="stable")[:, :k]
        # Exact order among the candidates: similarity descending, then row ascending (deterministic ties).
        values = np.take_along_axis(block, candidates, axis=1)
        order = np.lexsort((candidates, -values), axis=1)
        indices[start:start + len(rows)] = np.take_along_axis(candidates, order, axis=1)
        similarities[start:start + len(rows)] = np.take_along_axis(values, order, axis=1)
    return Neighbours(queries, indices, similarities)


def neighbour_overlap(first: Neighbours, second: Neighbours) -> np.ndarray:
    """(n,) |N_A(i) ∩ N_B(i)| / k per query item: its mutual k-NN alignment (the mean over items is §8's score)."""
    if not np.array_equal(first.queries, second.queries) or first.indices.shape != second.indices.shape:
        raise ValueError("Neighbour overlap needs the same query items and k in both representations.")
    k = first.indices.shape[1]
    return np.array([len(np.intersect1d(a, b, assume_unique=True)) for a, b in zip(first.indices, second.indices)]) / k


def rdm_row_spearman(first: np.ndarray, second: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """(N, d1), (N, d2) -> (N,) Spearman ρ between item i's dissimilarities to all others in A and in B.

    NaN where a row is constant (e.g. an all-zero item under cosine): its ranking is undefined."""
    if len(first) != len(second):
        raise ValueError(f"Both representations need the same items; got {len(first)} and {len(second)} rows.")
    a, b = (_metric_space(x, metric) for x in (first, second))
    n = len(a)
    off_diagonal = ~np.eye(min(BLOCK_ROWS, n), n, dtype=bool)
    rho = np.empty(n)
    for start in range(0, n, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, n)
        keep = np.roll(off_diagonal, start, axis=1)[:stop - start]
        ranks = [_row_ranks(_dissimilarity_rows(x, start, stop, metric)[keep].reshape(stop - start, n - 1))
                 for x in (a, b)]
        rho[start:stop] = _row_pearson(*ranks)
    return rho


def _row_ranks(values: np.ndarray) -> np.ndarray:
    """(n, m) -> (n, m) ranks within each row, ties averaged (scipy's rankdata, 15x faster where rows have no ties)."""
    order = np.argsort(values, axis=1)
    ranks = np.empty_like(values)
    np.put_along_axis(ranks, order, np.arange(1.0, values.shape[1] + 1), axis=1)
    tied = (np.diff(np.take_along_axis(values, order, axis=1), axis=1) == 0).any(axis=1)
    if tied.any():
        ranks[tied] = rankdata(values[tied], axis=1)
    return ranks


def _metric_space(features: np.ndarray, metric: str) -> np.ndarray:
    """(N, d) float64 rows in which the RDM metric is a matrix product: unit rows (cosine), centred unit rows
    (correlation) or the rows themselves (euclidean)."""
    if metric not in RDM_METRICS:
        raise ValueError(f"Unknown RDM metric {metric!r}; choose one of {', '.join(RDM_METRICS)}.")
    rows = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    if metric == "correlation":
        rows = rows - rows.mean(axis=1, keepdims=True)
    return rows if metric == "euclidean" else unit_rows(rows)


def _dissimilarity_rows(space: np.ndarray, start: int, stop: int, metric: str) -> np.ndarray:
    """(stop − start, N) dissimilarities of rows start..stop to every row, by BLAS (scipy's cdist is 20x slower)."""
    products = space[start:stop] @ space.T
    if metric != "euclidean":
        return 1.0 - products
    norms = np.einsum("ij,ij->i", space, space)
    return np.sqrt(np.maximum(norms[start:stop, None] + norms[None, :] - 2.0 * products, 0.0))


def _row_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(n, m), (n, m) -> (n,) Pearson r of each row pair (NaN for a constant row)."""
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    denominator = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (x * y).sum(axis=1) / denominator, np.nan)


def item_agreement(first: np.ndarray, second: np.ndarray, *, k: int = 10, metric: str = "cosine") -> pd.DataFrame:
    """Per item (N rows, in item order): `rdm_row_spearman`, `knn_overlap` and `disagreement_rank`
    (1 = the item the two representations disagree on most: lowest ρ, then lowest overlap)."""
    rho = rdm_row_spearman(first, second, metric)
    overlap = neighbour_overlap(nearest_neighbours(first, k), nearest_neighbours(second, k))
    order = np.lexsort((overlap, np.nan_to_num(rho, nan=np.inf)))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(1, len(order) + 1)
    return pd.DataFrame({"rdm_row_spearman": rho, "knn_overlap": overlap, "disagreement_rank": rank})


def embedding_map(features: np.ndarray, method: str = "PCA", parameter: float = 30, seed: int = 0) -> np.ndarray:
    """(N, d) -> (N, 2) by PCA (centred, first two components; `parameter` unused), t-SNE or UMAP."""
    points = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    if method == "PCA":
        from sklearn.decomposition import PCA
        components = min(2, *points.shape)
        xy = PCA(n_components=components, svd_solver="randomized" if min(points.shape) > 200 else "full",
                 random_state=seed).fit_transform(points)
        return np.pad(xy, ((0, 0), (0, 2 - components)))
    if method not in MAP_METHODS:
        raise ValueError(f"Unknown map method {method!r}; choose one of {', '.join(MAP_METHODS)}.")
    return embed_2d(points, method, parameter, seed)


@dataclass(frozen=True)
class ItemMap:
    """The items on a 2-D map: (N, 2) coordinates by `method`; for PCA each axis's share of the total variance."""

    xy: np.ndarray  # (N, 2)
    method: str
    explained: tuple[float, float] | None = None  # PCA only


def explained_variance(features: np.ndarray, xy: np.ndarray) -> tuple[float, float]:
    """(N, d) features and their (N, 2) PCA scores -> each score's variance / the features' total variance.

    A PCA score's variance is its component's variance, so this is scikit-learn's explained_variance_ratio_ without
    refitting; the total is summed in row blocks (no float64 copy of the features)."""
    points = np.asarray(features).reshape(len(features), -1)
    mean = points.mean(axis=0, dtype=np.float64)
    total = sum(float(np.square(points[start:start + BLOCK_ROWS] - mean).sum())
                for start in range(0, len(points), BLOCK_ROWS))
    scores = np.asarray(xy, dtype=np.float64)
    shares = np.square(scores - scores.mean(axis=0)).sum(axis=0) / total if total > 0 else np.zeros(2)
    return float(shares[0]), float(shares[1])


def stored_map(store: ResultStore, features_fingerprint: str, features: np.ndarray, method: str, parameter: float,
               seed: int = 0) -> ItemMap:
    """The map of the features with this fingerprint: read from the store, else computed and stored."""
    settings = {"method": method, "parameter": float(parameter) if method != "PCA" else 0.0, "seed": seed}
    key = result_key(MAP_KIND, settings, {"features": features_fingerprint})
    found = store.get(MAP_KIND, key)
    if found is not None and "xy" in found.array_names:
        xy, explained = found.array("xy"), found.meta.get("explained_variance")
        if method == "PCA" and explained is None:  # a map stored before its variance was: one pass over the features
            explained = explained_variance(features, xy)
        return ItemMap(xy, method, tuple(explained) if explained is not None else None)
    xy = embedding_map(features, method, parameter, seed)
    explained = explained_variance(features, xy) if method == "PCA" else None
    store.put(MAP_KIND, key, {"label": f"{method} map", **settings, "features": features_fingerprint,
                              "n_items": len(xy), "explained_variance": explained}, arrays={"xy": xy})
    return ItemMap(xy, method, explained)


def row_normalised(plan: np.ndarray) -> np.ndarray:
    """(N, M) plan -> each row divided by its sum (where source item i sends its mass, summing to 1)."""
    plan = np.asarray(plan, dtype=np.float64)
    sums = plan.sum(axis=1, keepdims=True)
    return np.divide(plan, sums, out=np.zeros_like(plan), where=sums > 0)


def transport_targets(plan: np.ndarray, source: int, top: int = 10) -> pd.DataFrame:
    """The `top` target items source row `source` sends most mass to: target, mass (share of the row), correct
    (target == source: the plan's item order is the shared item order)."""
    shares = row_normalised(plan)[int(source)]
    order = np.lexsort((np.arange(len(shares)), -shares))[:top]
    return pd.DataFrame({"rank": np.arange(1, len(order) + 1), "target": order, "mass": shares[order],
                         "correct": order == int(source)})


def confident_wrong_matches(plan: np.ndarray, top: int = 20) -> pd.DataFrame:
    """The `top` largest (source, target ≠ source) entries by share of the source's mass, with the mass the
    source keeps on its own partner (`own_mass`). (N, N) plans only."""
    shares = row_normalised(plan)
    if shares.shape[0] != shares.shape[1]:
        raise ValueError(f"Wrong matches need a square plan over the same items; got {shares.shape}.")
    own = np.diag(shares).copy()
    wrong = shares.copy()
    np.fill_diagonal(wrong, -1.0)
    flat = wrong.ravel()
    top = min(top, flat.size - len(own))
    best = np.argpartition(-flat, top - 1)[:top]
    best = best[np.lexsort((best, -flat[best]))]
    sources, targets = np.divmod(best, shares.shape[1])
    return pd.DataFrame({"source": sources, "target": targets, "mass": flat[best], "own_mass": own[sources]})


def category_confusion(plan: np.ndarray, source_categories: Sequence[str],
                       target_categories: Sequence[str] | None = None) -> tuple[list[str], list[str], np.ndarray]:
    """(source names, target names, (C_s, C_t) share of each source category's mass sent to each target category).

    Rows sum to 1; a plan that only permutes items within their categories gives a diagonal matrix."""
    plan = np.asarray(plan, dtype=np.float64)
    source_categories = np.asarray(source_categories).astype(str)
    target_categories = source_categories if target_categories is None else np.asarray(target_categories).astype(str)
    rows, row_index = np.unique(source_categories, return_inverse=True)
    columns, column_index = np.unique(target_categories, return_inverse=True)
    by_row = np.zeros((len(rows), plan.shape[1]))
    np.add.at(by_row, row_index, plan)
    summed = np.zeros((len(rows), len(columns)))
    np.add.at(summed.T, column_index, by_row.T)
    return rows.tolist(), columns.tolist(), row_normalised(summed)
