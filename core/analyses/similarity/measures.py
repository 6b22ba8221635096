"""Similarity measures between two representations of the same N items (docs/science.md §8).

A representation is prepared once (`prepare`): its linear Gram, centred Gram, RBF kernel, RDM,
neighbour lists and Procrustes factor are computed lazily, the first time a measure needs them,
and kept. A matrix of R representations then costs R preparations plus R² cheap pair products,
not R² recomputations. Arrays live on one backend (POT's `get_backend` idiom): numpy, or torch
on the GPU when `device="cuda"`; the numbers agree to 1e-5 (a test checks torch on the CPU).
RSA's ranks are always computed on the CPU by scipy.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from ot.backend import get_backend
from scipy.stats import kendalltau, rankdata

from core.analyses.rdm import RDM_METRICS, rdm

RSA_COMPARISONS = {"rsa_spearman": "Spearman ρ", "rsa_pearson": "Pearson r", "rsa_tau_a": "Kendall τ-a",
                   "rsa_cosine": "cosine"}


@dataclass(frozen=True)
class Measure:
    """One similarity measure: how it is named and read."""

    name: str  # the one identifier: UI, CLI, exports
    label: str
    identity: float  # its value for a representation against itself
    higher_is_similar: bool
    invariant_to: str
    chance: str


MEASURES: dict[str, Measure] = {measure.name: measure for measure in (
    Measure("rsa_spearman", "RSA (Spearman ρ)", 1.0, True,
            "any monotone transform of the dissimilarities; rotations of the features (cosine, euclidean RDMs)",
            "0 (items shuffled)"),
    Measure("rsa_pearson", "RSA (Pearson r)", 1.0, True,
            "linear transforms of the dissimilarities; rotations (cosine, euclidean RDMs)", "0 (items shuffled)"),
    Measure("rsa_tau_a", "RSA (Kendall τ-a)", 1.0, True,
            "monotone transforms of the dissimilarities (ties count against it)", "0 (items shuffled)"),
    Measure("rsa_cosine", "RSA (cosine)", 1.0, True,
            "scaling of the dissimilarities (not shifts: all-positive RDMs give a high floor)",
            "well above 0: dissimilarities are positive"),
    Measure("cka_linear", "Linear CKA", 1.0, True, "orthogonal transforms and isotropic scaling (not general linear maps)",
            "small but positive; falls with N (shown by the shuffle control)"),
    Measure("cka_rbf", "RBF CKA", 1.0, True,
            "orthogonal transforms and isotropic scaling (σ follows the median distance)",
            "small but positive (shuffle control)"),
    Measure("cka_debiased", "Debiased CKA", 1.0, True, "orthogonal transforms and isotropic scaling",
            "≈ 0 (unbiased HSIC; can be slightly negative)"),
    Measure("procrustes", "Procrustes distance", 0.0, False,
            "rotations, reflections, translation and isotropic scaling", "near √2·(1 − overlap): see shuffle control"),
    Measure("procrustes_angular", "Procrustes angle", 0.0, False,
            "rotations, reflections, translation and isotropic scaling", "near π/2 for unrelated high-dim data"),
    Measure("mutual_knn", "Mutual k-NN", 1.0, True, "rotations and per-item scaling (neighbours by cosine)",
            "k / (N − 1)"),
    Measure("cknna", "CKNNA", 1.0, True, "rotations and per-item scaling (cosine kernels)", "≈ 0"),
)}
RDM_MEASURES = tuple(RSA_COMPARISONS)


@dataclass(frozen=True)
class SimilaritySettings:
    """What the measures depend on besides the two representations."""

    rdm_metric: str = "cosine"  # RSA's RDMs: one of core.analyses.rdm.RDM_METRICS
    k: int = 10  # neighbours for mutual k-NN and CKNNA
    rbf_sigma: float = 0.8  # RBF CKA: σ as a fraction of the median pairwise distance

    def __post_init__(self) -> None:
        if self.rdm_metric not in RDM_METRICS:
            raise ValueError(f"Unknown RDM metric {self.rdm_metric!r}; choose one of {', '.join(RDM_METRICS)}.")
        if self.k < 1:
            raise ValueError(f"k must be at least 1; got {self.k}.")
        if not self.rbf_sigma > 0:
            raise ValueError(f"The RBF σ fraction must be positive; got {self.rbf_sigma}.")


def check_measures(measures) -> tuple[str, ...]:
    """Measure names validated against MEASURES (a clear error naming the unknown one)."""
    unknown = [name for name in measures if name not in MEASURES]
    if unknown:
        raise ValueError(f"Unknown measure(s) {', '.join(unknown)}; choose from {', '.join(MEASURES)}.")
    return tuple(measures)


def as_backend(features: np.ndarray, device: str = "cpu", backend: str = "numpy"):
    """(N, p) float64 array on the chosen backend: numpy, or torch on `device` ("cpu", "cuda")."""
    array = np.ascontiguousarray(features, dtype=np.float64)
    if backend == "numpy":
        return array
    import torch
    return torch.from_numpy(array).to(device)


class PreparedRepresentation:
    """One (N, p) representation with everything the measures need, computed on first use and kept.

    `copies` (N,) says which original item each row is (bootstrap resamples repeat items): pairs of
    copies of one item are no RDM pair and no neighbour, like the diagonal.
    """

    def __init__(self, features, settings: SimilaritySettings, *, copies: np.ndarray | None = None,
                 gram=None, rdm_vector: np.ndarray | None = None, rdm_weights: np.ndarray | None = None,
                 n: int | None = None):
        self.settings = settings
        self.features = features
        self.has_vectors = features is not None or gram is not None  # False: given as an RDM only
        self.nx = get_backend(features if gram is None else gram) if self.has_vectors else get_backend(rdm_vector)
        self.n = int(features.shape[0] if features is not None else gram.shape[0] if gram is not None else n)
        self.copies = np.arange(self.n) if copies is None else np.asarray(copies)
        self.rdm_weights = rdm_weights  # bootstrap: how often each of the original RDM's pairs was drawn
        if gram is not None:
            self.__dict__["gram"] = gram
        if rdm_vector is not None:
            self.__dict__["rdm_vector"] = rdm_vector

    def resample(self, sample: np.ndarray) -> PreparedRepresentation:
        """The same representation over the items `sample` (N,) drawn with replacement (a bootstrap resample).

        Its Gram is indexed from this one's; its RDM is this one's upper triangle with each pair (i, j)
        weighted by how often it was drawn (c_i c_j), so no RDM is recomputed and copy pairs drop out.
        """
        counts = np.bincount(sample, minlength=self.n).astype(np.float64)
        upper = np.triu_indices(self.n, k=1)
        weights = counts[upper[0]] * counts[upper[1]]
        if not self.has_vectors:
            child = PreparedRepresentation(None, self.settings, copies=sample, rdm_weights=weights,
                                           rdm_vector=self.rdm_vector, n=self.n)
            child.__dict__["rdm_tie_groups"] = self.rdm_tie_groups
            return child
        index = self.nx.from_numpy(sample, type_as=self.gram) if not isinstance(self.gram, np.ndarray) else sample
        child = PreparedRepresentation(None if self.features is None else self.features[index], self.settings,
                                       copies=sample, gram=self.gram[index][:, index], rdm_weights=weights)
        child.__dict__["rdm_vector"] = self.rdm_vector
        child.__dict__["rdm_tie_groups"] = self.rdm_tie_groups
        return child

    @functools.cached_property
    def gram(self):
        """(N, N) linear Gram X Xᵀ of the uncentred features."""
        return self.nx.dot(self.features, self.features.T)

    @functools.cached_property
    def kept_pairs(self):
        """(N, N) 1, but 0 for pairs of two copies of one item (a bootstrap resample's duplicates); None without."""
        duplicate = (self.copies[:, None] == self.copies[None, :]) & ~np.eye(self.n, dtype=bool)
        if not duplicate.any():
            return None
        return self.nx.from_numpy((~duplicate).astype(np.float64), type_as=self.gram)

    def _kept(self, kernel):
        # A copy pair would count one item's self-similarity as a pair (inflating every kernel measure in a
        # bootstrap); dropped like rsatoolbox drops them from a resampled RDM.
        return kernel if self.kept_pairs is None else kernel * self.kept_pairs

    @functools.cached_property
    def centred_gram(self):
        """(N, N) H X Xᵀ H: the Gram of the column-centred features (copy pairs zeroed)."""
        return self._kept(_centre(self.nx, self.gram))

    @functools.cached_property
    def squared_distances(self):
        """(N, N) ||x_i − x_j||² from the Gram (clipped at 0 against rounding)."""
        diagonal = self.nx.diag(self.gram)
        return self.nx.clip(diagonal[:, None] + diagonal[None, :] - 2 * self.gram, 0.0, None)

    @functools.cached_property
    def rbf_centred_kernel(self):
        """(N, N) centred exp(−d²/(2σ²)), σ² = fraction² × median d² over the whole matrix (Kornblith's gram_rbf)."""
        nx = self.nx
        distances = self.squared_distances
        flat = nx.reshape(distances, (-1,))
        if self.kept_pairs is not None:
            flat = flat[nx.reshape(self.kept_pairs, (-1,)) > 0]
        flat = nx.sort(flat)
        middle = flat.shape[0] // 2
        median = flat[middle] if flat.shape[0] % 2 else (flat[middle - 1] + flat[middle]) / 2
        if float(median) <= 0:
            raise ValueError("RBF CKA: the median pairwise distance is 0 (most items are identical); σ is undefined.")
        return self._kept(_centre(nx, nx.exp(-distances / (2 * self.settings.rbf_sigma ** 2 * median))))

    @functools.cached_property
    def cosine_similarity(self):
        """(N, N) inner products of the L2-normalised rows."""
        norms = self.nx.sqrt(self.nx.diag(self.gram))
        if float(self.nx.min(norms)) == 0:
            raise ValueError(f"{int(np.sum(self.nx.to_numpy(norms) == 0))} items have all-zero features; cosine "
                             "neighbours are undefined for them (mutual k-NN, CKNNA). Drop those items.")
        return self.gram / (norms[:, None] * norms[None, :])

    @functools.cached_property
    def neighbour_mask(self):
        """(N, N) 1 where j is among the k most cosine-similar items of i (itself and its copies excluded)."""
        nx, k = self.nx, self.settings.k
        excluded = nx.from_numpy(self.copies[:, None] == self.copies[None, :], type_as=self.cosine_similarity)
        similarity = self.cosine_similarity - 4.0 * excluded  # cosine >= -1: excluded pairs sort last
        top = nx.argsort(-similarity, axis=1)[:, :k]
        mask = nx.zeros((self.n, self.n), type_as=similarity)
        rows = nx.from_numpy(np.repeat(np.arange(self.n), k), type_as=top)
        mask[rows, nx.reshape(top, (-1,))] = 1.0
        return mask

    @functools.cached_property
    def procrustes_factor(self):
        """(N, r) B with B Bᵀ = the centred Gram scaled to unit trace (the features up to a rotation)."""
        nx = self.nx
        if self.features is not None and self.features.shape[1] <= self.n:
            centred = self.features - nx.mean(self.features, axis=0)[None, :]
        else:  # wider than tall: the Gram's square root is narrower than the features (copy pairs kept: Procrustes
            # weights items, it compares no pairs)
            values, vectors = nx.eigh(_centre(nx, self.gram))
            keep = values > values[-1] * 1e-12
            centred = vectors[:, keep] * nx.sqrt(values[keep])[None, :]
        norm = nx.sqrt(nx.sum(centred * centred))
        if float(norm) == 0:
            raise ValueError("Procrustes: the representation is constant over the items.")
        return centred / norm

    @functools.cached_property
    def rdm_vector(self) -> np.ndarray:
        """(N(N−1)/2,) float64 RDM upper triangle (numpy), pairs of copies of one item excluded."""
        features = self.nx.to_numpy(self.features)
        upper = np.triu_indices(self.n, k=1)
        keep = self.copies[upper[0]] != self.copies[upper[1]]
        return rdm(features, self.settings.rdm_metric, dtype=np.float64)[upper][keep]

    @functools.cached_property
    def rdm_tie_groups(self) -> np.ndarray:
        """(M,) dense rank − 1 of each RDM entry: equal dissimilarities share a group."""
        return rankdata(self.rdm_vector, method="dense").astype(np.int64) - 1

    @functools.cached_property
    def rdm_ranks(self) -> np.ndarray:
        """Average ranks of the RDM entries (ties share their mean rank, as scipy's spearmanr), under the weights."""
        if self.rdm_weights is None:
            return rankdata(self.rdm_vector)
        # The resampled vector holds entry m w_m times: its rank is the weight of smaller entries + (w + 1) / 2.
        totals = np.bincount(self.rdm_tie_groups, weights=self.rdm_weights)
        return (np.cumsum(totals) - totals + (totals + 1) / 2)[self.rdm_tie_groups]


def prepare(features, settings: SimilaritySettings = SimilaritySettings(), *, device: str = "cpu",
            backend: str = "numpy") -> PreparedRepresentation:
    """(N, p) features -> a PreparedRepresentation (validated: 2-D, finite, N >= 3)."""
    array = validate_features(features)
    return PreparedRepresentation(as_backend(array, device, backend), settings)


def validate_features(features, name: str = "representation") -> np.ndarray:
    """(N, p) or (1, N, p) array -> (N, p) float64, with a clear error for 1-D input, NaN/inf or N < 3."""
    array = np.asarray(features)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"{name}: expected an (N, d) matrix (or (1, N, d)); got shape {array.shape}.")
    if len(array) < 3:
        raise ValueError(f"{name}: {len(array)} items; similarity measures need at least 3 (debiased CKA 4).")
    bad_rows = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if len(bad_rows):
        raise ValueError(f"{name}: rows {', '.join(map(str, bad_rows[:5]))}{' …' if len(bad_rows) > 5 else ''} "
                         f"contain NaN or infinite values ({len(bad_rows)} rows); fix or drop those items.")
    return array.astype(np.float64)


def similarity(first: PreparedRepresentation, second: PreparedRepresentation, measure: str) -> float:
    """One measure between two prepared representations of the same N items."""
    if first.n != second.n:
        raise ValueError(f"The representations describe different numbers of items ({first.n} vs {second.n}).")
    if measure in RDM_MEASURES:
        return _rsa(first, second, measure)
    pair = _PAIR_MEASURES[check_measures([measure])[0]]
    if not (first.has_vectors and second.has_vectors):
        return float("nan")  # an RDM-only side: only RSA is defined (`not_applicable` says so)
    return float(first.nx.to_numpy(pair(first, second)))


def _rsa(first: PreparedRepresentation, second: PreparedRepresentation, measure: str) -> float:
    """RSA: rsatoolbox's compare(method=spearman | corr | tau-a | cosine) on the RDMs' upper triangles."""
    weights = first.rdm_weights
    if (weights is None) != (second.rdm_weights is None):
        raise ValueError("RSA: compare two resamples of the same draw, or two full representations.")
    if measure == "rsa_spearman":
        return _pearson(first.rdm_ranks, second.rdm_ranks, weights)
    if measure == "rsa_pearson":
        return _pearson(first.rdm_vector, second.rdm_vector, weights)
    a, b = first.rdm_vector, second.rdm_vector
    if measure == "rsa_cosine":
        w = np.ones_like(a) if weights is None else weights
        return float((w * a) @ b / np.sqrt(((w * a) @ a) * ((w * b) @ b)))
    if weights is not None:
        repeats = weights.astype(np.int64)
        a, b = np.repeat(a, repeats), np.repeat(b, repeats)
    return kendall_tau_a(a, b)


def kendall_tau_a(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall τ-a of two (M,) vectors: (concordant − discordant) / (M(M−1)/2), in O(M log M) through scipy's τ-b."""
    pairs = len(a) * (len(a) - 1) / 2
    tau_b = kendalltau(a, b).statistic
    ties_a, ties_b = (float(np.sum(counts * (counts - 1) / 2)) for counts in
                      (np.unique(a, return_counts=True)[1], np.unique(b, return_counts=True)[1]))
    if np.isnan(tau_b):
        return float("nan")
    return float(tau_b * np.sqrt((pairs - ties_a) * (pairs - ties_b)) / pairs)


def _pearson(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Pearson r of (M,) vectors, each entry counted `weights` times (all once when None)."""
    w = np.ones_like(a) if weights is None else weights
    a, b = a - (w @ a) / w.sum(), b - (w @ b) / w.sum()
    denominator = np.sqrt(((w * a) @ a) * ((w * b) @ b))
    return float((w * a) @ b / denominator) if denominator > 0 else float("nan")


def _centre(nx, kernel):
    """H K H for an (N, N) kernel, H = I − 11ᵀ/N."""
    row_means = nx.mean(kernel, axis=0)
    return kernel - row_means[None, :] - row_means[:, None] + nx.mean(row_means)


def _cka(kernel_x, kernel_y, nx):
    """Biased-HSIC CKA of two centred (N, N) kernels: <K, L>_F / (||K||_F ||L||_F)."""
    return nx.sum(kernel_x * kernel_y) / nx.sqrt(nx.sum(kernel_x * kernel_x) * nx.sum(kernel_y * kernel_y))


def unbiased_hsic(kernel_x, kernel_y, nx):
    """Song et al. (2012) unbiased HSIC of two (N, N) kernels (diagonals ignored); platonic-rep's form for
    asymmetric (masked) kernels: Σ K̃ ∘ L̃ᵀ and Σ K̃ L̃."""
    n = kernel_x.shape[0]
    off_diagonal = 1.0 - nx.eye(n, type_as=kernel_x)
    x, y = kernel_x * off_diagonal, kernel_y * off_diagonal
    return (nx.sum(x * y.T) + nx.sum(x) * nx.sum(y) / ((n - 1) * (n - 2))
            - 2 * nx.dot(nx.sum(x, axis=0), nx.sum(y, axis=1)) / (n - 2)) / (n * (n - 3))


def _debiased_cka(kernel_x, kernel_y, nx):
    if kernel_x.shape[0] < 4:
        raise ValueError("Debiased CKA needs at least 4 items (its normalisation divides by N − 3).")
    self_x, self_y = unbiased_hsic(kernel_x, kernel_x, nx), unbiased_hsic(kernel_y, kernel_y, nx)
    if float(self_x) <= 0 or float(self_y) <= 0:
        return nx.from_numpy(np.array(np.nan), type_as=kernel_x)  # HSIC_u(K, K) <= 0: too few items; no sqrt of < 0
    return unbiased_hsic(kernel_x, kernel_y, nx) / nx.sqrt(self_x * self_y)


def _procrustes_overlap(first: PreparedRepresentation, second: PreparedRepresentation):
    """||XᵀY||_* of the centred, unit-norm representations (1 = identical up to rotation and scale)."""
    cross = first.nx.dot(first.procrustes_factor.T, second.procrustes_factor)
    if isinstance(cross, np.ndarray):
        singular_values = np.linalg.svd(cross, compute_uv=False)
    else:
        import torch
        singular_values = torch.linalg.svdvals(cross)
    return first.nx.sum(singular_values)


def _cknna(first: PreparedRepresentation, second: PreparedRepresentation):
    """Huh et al. (2024): unbiased HSIC of the cosine kernels masked to mutual neighbours, normalised by self-terms."""
    nx = first.nx
    mask = first.neighbour_mask * second.neighbour_mask
    both = unbiased_hsic(mask * first.cosine_similarity, mask * second.cosine_similarity, nx)
    self_x = unbiased_hsic(first.neighbour_mask * first.cosine_similarity,
                           first.neighbour_mask * first.cosine_similarity, nx)
    self_y = unbiased_hsic(second.neighbour_mask * second.cosine_similarity,
                           second.neighbour_mask * second.cosine_similarity, nx)
    if float(self_x * self_y) <= 0:
        return nx.from_numpy(np.array(np.nan), type_as=mask)
    return both / nx.sqrt(self_x * self_y)


_PAIR_MEASURES = {
    "cka_linear": lambda x, y: _cka(x.centred_gram, y.centred_gram, x.nx),
    "cka_rbf": lambda x, y: _cka(x.rbf_centred_kernel, y.rbf_centred_kernel, x.nx),
    "cka_debiased": lambda x, y: _debiased_cka(x._kept(x.gram), y._kept(y.gram), x.nx),
    "procrustes": lambda x, y: x.nx.sqrt(x.nx.clip(2 - 2 * _procrustes_overlap(x, y), 0.0, None)),
    "procrustes_angular": lambda x, y: x.nx.arccos(x.nx.clip(_procrustes_overlap(x, y), -1.0, 1.0)),
    "mutual_knn": lambda x, y: x.nx.sum(x.neighbour_mask * y.neighbour_mask) / (x.n * x.settings.k),
    "cknna": _cknna,
}
