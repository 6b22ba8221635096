"""Representational dissimilarity matrices (docs/science.md §5), RSA between them, and where an RDM comes from.

`rdm` equals `scipy.spatial.distance.cdist(X, X, metric)` (a test checks it) but works in
row chunks with BLAS products, in float32 by default, so a 10k-item RDM never builds an
(N, N, d) intermediate. Loading an uploaded matrix (`load_matrix`, `as_rdm`) validates the
item count and says what to fix. Where an RDM comes from is a `Representation`
(core/analyses/representation.py).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.stats import spearmanr


RDM_METRICS = ("cosine", "correlation", "euclidean")
RDM_METRIC_LABELS = {"cosine": "Cosine distance", "correlation": "Correlation distance (1 − Pearson r)",
                 "euclidean": "Euclidean distance"}


def rdm(features: np.ndarray, metric: str = "cosine", *, normalise: bool = False, dtype=np.float32,
        chunk_size: int = 2048) -> np.ndarray:
    """(N, d) features -> (N, N) symmetric RDM with a zero diagonal; `normalise` divides by its max."""
    if metric not in RDM_METRICS:
        raise ValueError(f"Unknown RDM metric {metric!r}; choose one of {', '.join(RDM_METRICS)}.")
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"An RDM needs an (N, d) matrix with N >= 2; got shape {features.shape}.")
    if not np.isfinite(features).all():
        raise ValueError("The features contain NaN or infinite values; an RDM of them would be meaningless.")
    if metric == "correlation":
        features = features - features.mean(axis=1, keepdims=True)
    if metric in ("cosine", "correlation"):
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise ValueError(f"{int(np.sum(norms == 0))} rows are constant (zero norm), where {metric} distance "
                             "is undefined; use the euclidean metric or drop those items.")
        features = features / norms
    squared_norms = np.einsum("ij,ij->i", features, features)
    result = np.empty((len(features), len(features)), dtype=dtype)
    for start in range(0, len(features), chunk_size):
        block = features[start:start + chunk_size] @ features.T
        if metric == "euclidean":
            block = np.sqrt(np.maximum(squared_norms[start:start + chunk_size, None] + squared_norms - 2 * block, 0))
        else:
            block = 1.0 - block
        result[start:start + chunk_size] = block
    # Rounding makes the chunks' products differ in the last bit; RDMs must be exactly symmetric.
    result = (result + result.T) / 2
    np.fill_diagonal(result, 0)
    return result / result.max() if normalise and result.max() > 0 else result


def upper_triangle(matrix: np.ndarray) -> np.ndarray:
    """(N, N) -> (N(N-1)/2,) entries above the diagonal."""
    return matrix[np.triu_indices(len(matrix), k=1)]


def rsa(rdm_a: np.ndarray, rdm_b: np.ndarray) -> float:
    """Spearman correlation between the upper triangles of two (N, N) RDMs of the same items."""
    if rdm_a.shape != rdm_b.shape:
        raise ValueError(f"RSA needs RDMs of the same items; got shapes {rdm_a.shape} and {rdm_b.shape}.")
    return float(spearmanr(upper_triangle(rdm_a), upper_triangle(rdm_b)).statistic)


def load_matrix(data: bytes, filename: str) -> tuple[np.ndarray, np.ndarray | None]:
    """An uploaded .npy, .txt or .csv file -> (2-D float64 matrix, (N,) item ids or None).

    A CSV whose first column is not numeric is read as item ids (with or without a header
    row), so that `as_rdm` can check and restore the dataset's item order.
    """
    suffix = Path(filename).suffix.lower()
    if suffix not in (".npy", ".txt", ".csv"):
        raise ValueError(f"{filename}: unsupported file type {suffix!r}; upload a .npy, .txt or .csv matrix.")
    item_ids = None
    if suffix == ".npy":
        try:
            matrix = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            # numpy's own message suggests allow_pickle, which would run code from the upload.
            raise ValueError(f"{filename}: not a NumPy array file of numbers. Save the matrix with numpy.save "
                             "(a float array, not an object array or a pickle), or upload it as .csv or .txt "
                             "instead.") from error
    else:
        try:
            text = data.decode("utf-8")
            first_line = text.splitlines()[0] if text.strip() else ""
            delimiter = "," if suffix == ".csv" or "," in first_line else None
            if suffix == ".csv" and not _is_number(first_line.split(",")[0]):
                matrix, item_ids = _labelled_csv(text)
            else:
                matrix = np.loadtxt(io.StringIO(text), delimiter=delimiter, ndmin=2)
        except (ValueError, UnicodeDecodeError, OSError, IndexError) as error:
            raise ValueError(f"{filename}: could not read a numeric matrix ({error}). Expected one row per item: "
                             "numbers only, or (CSV) the item id in the first column and numbers after it.") from error
        if matrix.size == 0:
            raise ValueError(f"{filename}: not a numeric matrix: no numbers were found (only text, or a single "
                             "column of ids). Expected one row per item: numbers only, or (CSV) the item id in the "
                             "first column and numbers after it.")
    matrix = np.asarray(matrix, dtype=np.float64)
    while matrix.ndim > 2 and matrix.shape[0] == 1:
        matrix = matrix[0]  # GWTune stores embeddings as (1, N, d)
    if matrix.ndim != 2:
        raise ValueError(f"{filename}: expected a 2-D matrix (N x d embedding or N x N RDM); got shape {matrix.shape}.")
    if not np.isfinite(matrix).all():
        raise ValueError(f"{filename}: contains NaN or infinite values; fill or drop them first.")
    return matrix, item_ids


def is_rdm(matrix: np.ndarray) -> bool:
    """True when (N, N) `matrix` is symmetric, non-negative and zero on the diagonal."""
    return (matrix.ndim == 2 and matrix.shape[0] == matrix.shape[1] and np.allclose(matrix, matrix.T, atol=1e-6)
            and np.allclose(np.diag(matrix), 0, atol=1e-6) and bool((matrix >= -1e-6).all()))


def as_rdm(matrix: np.ndarray, items: Sequence[str], metric: str, *, item_ids: Sequence[str] | None = None,
           name: str = "the matrix", normalise: bool = False) -> np.ndarray:
    """An N x N RDM (used as is) or an N x d embedding (turned into an RDM) of the dataset's (N,) `items`.

    Rows must be the dataset's items in its order; with `item_ids` (the rows' ids) the order is
    checked and restored. Returns a (N, N) float32 RDM.
    """
    if len(matrix) != len(items):
        raise ValueError(f"{name} has {len(matrix)} rows but the dataset has {len(items)} items. Give one row per "
                         f"item in the dataset's order, that of its image_id column ({_order_hint(items)}; for "
                         "OASIS and the demo, the rows of OASIS.csv), or a CSV whose first column holds each row's "
                         "image_id, in any order.")
    if item_ids is not None:
        item_ids, items = np.asarray(item_ids).astype(str), np.asarray(items).astype(str)
        unknown = sorted(set(item_ids) - set(items))
        if unknown or len(set(item_ids)) != len(item_ids):
            problem = (f"ids not in the dataset, e.g. {', '.join(unknown[:3])}" if unknown
                       else "repeated ids")
            raise ValueError(f"{name}: the first column holds item ids, but it has {problem}. Use the dataset's "
                             "image_id values, one row per item.")
        position = {item: row for row, item in enumerate(item_ids)}
        order = np.array([position[item] for item in items])
        matrix = matrix[order][:, order] if is_rdm(matrix) else matrix[order]
    if is_rdm(matrix):
        matrix = matrix.astype(np.float32)
        return matrix / matrix.max() if normalise and matrix.max() > 0 else matrix
    return rdm(matrix, metric, normalise=normalise)


def _order_hint(items: Sequence[str]) -> str:
    """The first and last item ids, so a user can check their file's order against them."""
    shown = ", ".join(str(item) for item in items[:2])
    return f"first {shown}, last {items[-1]}" if len(items) > 2 else f"items {shown}"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _labelled_csv(text: str) -> tuple[np.ndarray, np.ndarray]:
    """CSV with item ids in the first column and an optional header row -> (matrix, ids)."""
    rows = [line.split(",") for line in text.splitlines() if line.strip()]
    if not all(_is_number(value) for value in rows[0][1:]):
        rows = rows[1:]  # header
    ids = np.array([row[0].strip() for row in rows])
    return np.array([[float(value) for value in row[1:]] for row in rows]), ids
