"""The measures for many items (N above `DENSE_MAX_ITEMS`), without an N × N matrix per representation.

Linear and debiased CKA and Procrustes use the feature form (p × q products, in column blocks); mutual k-NN
and CKNNA keep each item's k neighbours only (found in row blocks; CKNNA's masked kernels are sparse, N·k
entries). RBF CKA streams its kernels in row blocks (two passes: row sums, then HSIC); its σ needs the exact
median of the N² squared distances, kept as one float32 vector. RSA needs the global ranks of the RDM's
N(N−1)/2 entries, kept as float32: 200 MB per RDM at N = 10,000, the one O(N²) cost. Same numbers as the
dense path (tested at small N with a low threshold); no bootstrap at this size.
"""
from __future__ import annotations

import functools

import numpy as np
from scipy import sparse
from scipy.stats import rankdata

from core.analyses.similarity.measures import RDM_MEASURES, SimilaritySettings, kendall_tau_a

DENSE_MAX_ITEMS = 4096  # beyond: this module (an N × N float64 matrix is 134 MB here)
ROW_BLOCK = 1024
MAX_PROCRUSTES_CROSS = 10 ** 8  # p × q entries of Xᵀ Y


class StreamedRepresentation:
    """(N, p) features with the per-representation terms of the large-N measures, computed on first use."""

    def __init__(self, features: np.ndarray, settings: SimilaritySettings, row_block: int = ROW_BLOCK):
        self.features, self.settings, self.row_block = features, settings, row_block
        self.n = len(features)

    @functools.cached_property
    def centred(self) -> np.ndarray:
        return self.features - self.features.mean(axis=0)

    @functools.cached_property
    def unit_rows(self) -> np.ndarray:
        norms = np.linalg.norm(self.features, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise ValueError(f"{int(np.sum(norms == 0))} items have all-zero features; cosine neighbours are undefined.")
        return self.features / norms

    @functools.cached_property
    def neighbours(self) -> np.ndarray:
        """(N, k) indices of each item's k most cosine-similar other items, found a row block at a time."""
        k, unit = self.settings.k, self.unit_rows
        found = np.empty((self.n, k), dtype=np.int64)
        for start in range(0, self.n, self.row_block):
            block = unit[start:start + self.row_block] @ unit.T
            block[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf
            top = np.argpartition(-block, k - 1, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(block, top, axis=1), axis=1)
            found[start:start + len(block)] = np.take_along_axis(top, order, axis=1)
        return found

    @functools.cached_property
    def rdm_ranks(self) -> np.ndarray:
        return rankdata(self.rdm_vector).astype(np.float32)

    @functools.cached_property
    def rdm_vector(self) -> np.ndarray:
        """(N(N−1)/2,) float32 RDM upper triangle (core.analyses.rdm's definitions), a row block at a time."""
        rows = self.features
        if self.settings.rdm_metric == "correlation":
            rows = rows - rows.mean(axis=1, keepdims=True)
        if self.settings.rdm_metric in ("cosine", "correlation"):
            norms = np.linalg.norm(rows, axis=1, keepdims=True)
            if np.any(norms == 0):
                raise ValueError(f"{int(np.sum(norms == 0))} rows are constant (zero norm), where "
                                 f"{self.settings.rdm_metric} distance is undefined; use the euclidean metric.")
            rows = rows / norms
        squared = np.einsum("ij,ij->i", rows, rows)
        pieces = []
        for start in range(0, self.n, self.row_block):
            stop = min(start + self.row_block, self.n)
            block = rows[start:stop] @ rows[start:].T
            if self.settings.rdm_metric == "euclidean":
                block = np.sqrt(np.clip(squared[start:stop, None] + squared[None, start:] - 2 * block, 0, None))
            else:
                block = 1.0 - block
            pieces.extend(block[offset, offset + 1:].astype(np.float32) for offset in range(stop - start))
        return np.concatenate(pieces)

    def rbf_kernel_rows(self, start: int, stop: int, sigma_squared: float) -> np.ndarray:
        """Rows start:stop of exp(−d²/(2σ²)) over all N items."""
        squared = np.einsum("ij,ij->i", self.features, self.features)
        block = squared[start:stop, None] + squared[None, :] - 2 * self.features[start:stop] @ self.features.T
        return np.exp(-np.clip(block, 0, None) / (2 * sigma_squared))

    @functools.cached_property
    def rbf_sigma_squared(self) -> float:
        """fraction² × the median of all N² squared distances (Kornblith's gram_rbf), diagonal zeros included."""
        squared = np.einsum("ij,ij->i", self.features, self.features)
        values = np.concatenate([np.clip(squared[row] + squared[row + 1:] - 2 * self.features[row + 1:]
                                         @ self.features[row], 0, None).astype(np.float32)
                                 for row in range(self.n - 1)])
        # The full matrix holds N zeros (the diagonal) and every off-diagonal value twice.
        total = self.n * self.n
        positions = [total // 2 - 1, total // 2] if total % 2 == 0 else [total // 2]
        ranks = [(position - self.n) // 2 for position in positions if position >= self.n]
        picked = np.partition(values, ranks)[ranks] if ranks else np.array([])
        median = np.mean([0.0] * (len(positions) - len(ranks)) + [float(value) for value in picked])
        if median <= 0:
            raise ValueError("RBF CKA: the median pairwise distance is 0 (most items are identical); σ is undefined.")
        return self.settings.rbf_sigma ** 2 * median

    def rbf_row_sums(self) -> np.ndarray:
        return np.concatenate([self.rbf_kernel_rows(start, min(start + self.row_block, self.n),
                                                    self.rbf_sigma_squared).sum(axis=1)
                               for start in range(0, self.n, self.row_block)])


def _frobenius_cross(first: np.ndarray, second: np.ndarray, block: int = 2048) -> float:
    """||firstᵀ second||_F² computed in column blocks of `first` (never a full p × q matrix)."""
    return float(sum(np.sum((first[:, start:start + block].T @ second) ** 2)
                     for start in range(0, first.shape[1], block)))


def _debiased_dot(cross: float, rows_x: np.ndarray, rows_y: np.ndarray, norm_x: float, norm_y: float, n: int) -> float:
    """Kornblith's feature-space unbiased HSIC numerator (centred features)."""
    return cross - n / (n - 2.0) * float(rows_x @ rows_y) + norm_x * norm_y / ((n - 1) * (n - 2))


def _rbf_hsic(first: StreamedRepresentation, second: StreamedRepresentation) -> float:
    """tr(K H L H) = Σ K∘L − (2/N) (K1)·(L1) + (1ᵀK1)(1ᵀL1)/N², streamed in row blocks."""
    n = first.n
    rows_k, rows_l = first.rbf_row_sums(), second.rbf_row_sums()
    elementwise = sum(float(np.sum(first.rbf_kernel_rows(start, min(start + first.row_block, n),
                                                         first.rbf_sigma_squared)
                                   * second.rbf_kernel_rows(start, min(start + first.row_block, n),
                                                            second.rbf_sigma_squared)))
                      for start in range(0, n, first.row_block))
    return elementwise - 2 / n * float(rows_k @ rows_l) + rows_k.sum() * rows_l.sum() / n ** 2


def _sparse_unbiased_hsic(first: sparse.csr_matrix, second: sparse.csr_matrix, n: int) -> float:
    """unbiased_hsic of two sparse (N, N) kernels with zero diagonals (platonic-rep's Σ K̃∘L̃ᵀ form)."""
    return ((first.multiply(second.T).sum() + first.sum() * second.sum() / ((n - 1) * (n - 2))
             - 2 * float(np.asarray(first.sum(axis=0)).ravel() @ np.asarray(second.sum(axis=1)).ravel()) / (n - 2))
            / (n * (n - 3)))


def _masked_kernel(representation: StreamedRepresentation, mask: sparse.csr_matrix) -> sparse.csr_matrix:
    """The cosine kernel at the mask's entries only."""
    rows, columns = mask.nonzero()
    values = np.einsum("ij,ij->i", representation.unit_rows[rows], representation.unit_rows[columns])
    return sparse.csr_matrix((values, (rows, columns)), shape=mask.shape)


def _neighbour_mask(representation: StreamedRepresentation) -> sparse.csr_matrix:
    n, k = representation.n, representation.settings.k
    return sparse.csr_matrix((np.ones(n * k), (np.repeat(np.arange(n), k), representation.neighbours.ravel())),
                             shape=(n, n))


def streamed_similarity(first: StreamedRepresentation, second: StreamedRepresentation, measure: str) -> float:
    """One measure between two large representations; the same definition as measures.similarity."""
    n = first.n
    if measure in RDM_MEASURES:
        if measure == "rsa_spearman":
            a, b = first.rdm_ranks.astype(np.float64), second.rdm_ranks.astype(np.float64)
        else:
            a, b = first.rdm_vector.astype(np.float64), second.rdm_vector.astype(np.float64)
        if measure == "rsa_tau_a":
            return kendall_tau_a(a, b)
        if measure != "rsa_cosine":
            a, b = a - a.mean(), b - b.mean()
        return float(a @ b / np.sqrt((a @ a) * (b @ b)))
    x, y = first.centred, second.centred
    if measure in ("cka_linear", "cka_debiased"):
        cross, self_x, self_y = _frobenius_cross(x, y), _frobenius_cross(x, x), _frobenius_cross(y, y)
        if measure == "cka_linear":
            return cross / np.sqrt(self_x * self_y)
        rows_x, rows_y = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
        norm_x, norm_y = rows_x.sum(), rows_y.sum()
        numerator = _debiased_dot(cross, rows_x, rows_y, norm_x, norm_y, n)
        denominator = _debiased_dot(self_x, rows_x, rows_x, norm_x, norm_x, n) * _debiased_dot(
            self_y, rows_y, rows_y, norm_y, norm_y, n)
        return numerator / np.sqrt(denominator) if denominator > 0 else float("nan")
    if measure in ("procrustes", "procrustes_angular"):
        if x.shape[1] * y.shape[1] > MAX_PROCRUSTES_CROSS:
            raise ValueError(f"Procrustes over {n} items builds a {x.shape[1]} × {y.shape[1]} matrix; reduce the "
                             "features (e.g. flat:<dim> pooling with a smaller dim) or use fewer items.")
        overlap = float(np.sum(np.linalg.svd((x / np.linalg.norm(x)).T @ (y / np.linalg.norm(y)), compute_uv=False)))
        return float(np.sqrt(max(0.0, 2 - 2 * overlap)) if measure == "procrustes" else np.arccos(min(overlap, 1.0)))
    if measure == "cka_rbf":
        return _rbf_hsic(first, second) / np.sqrt(_rbf_hsic(first, first) * _rbf_hsic(second, second))
    mask_x, mask_y = _neighbour_mask(first), _neighbour_mask(second)
    if measure == "mutual_knn":
        return float(mask_x.multiply(mask_y).sum() / (n * first.settings.k))
    both = mask_x.multiply(mask_y).tocsr()
    shared = _sparse_unbiased_hsic(_masked_kernel(first, both), _masked_kernel(second, both), n)
    self_x = _sparse_unbiased_hsic(_masked_kernel(first, mask_x), _masked_kernel(first, mask_x), n)
    self_y = _sparse_unbiased_hsic(_masked_kernel(second, mask_y), _masked_kernel(second, mask_y), n)
    return shared / np.sqrt(self_x * self_y) if self_x * self_y > 0 else float("nan")
