"""Geometry of augmentation sub-manifolds, uniformity and view alignment, and the eigenspectrum (docs/science.md §6).

Inputs are view features `views` of shape (N, m, D): m augmented views of each of N images
(`core.data.transforms.augmentation_views`). Formulas follow the official CLAMP code (normalisation,
radius, loss, neighbour count) and Wang & Isola's alignment/uniformity code (`view_alignment`,
not to be confused with the Alignment page's GWOT); the eigenspectrum and its power-law fit are
`core.analyses.spectra`'s. Each function says which. The CLAMP loss works in numpy or torch
through POT's backend (`ot.backend.get_backend`): the Objective lab trains with it.
`MANIFOLD_PRESETS` holds the page's two settings (the bench reads the same ones): "quick", about
a minute on the demo with two CPU cores, and "full", CLAMP's 16 views of 25 images per class.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

import numpy as np
import ot
import pandas as pd
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist
from threadpoolctl import threadpool_limits

from core.analyses.spectra import Spectrum, effective_dimensionality, spectrum, spectrum_tables

IMAGENET_RADIUS_SCALE = 8.5  # r_s (CLAMP: 7 for CIFAR, 8.5 for ImageNet)


@dataclass(frozen=True)
class ViewPreset:
    """A Manifolds page setting: images per category and augmented views per image."""
    per_class: int
    m: int


MANIFOLD_PRESETS = {"quick": ViewPreset(per_class=12, m=8), "full": ViewPreset(per_class=25, m=16)}


@dataclass(frozen=True, eq=False)
class SubManifolds:
    """Per-image statistics of N sub-manifolds of m views in D dimensions (CLAMP-normalised space)."""
    centroids: np.ndarray  # (N, D) mean of the normalised views
    traces: np.ndarray  # (N,) Σ_k ||z_k − c||² / (m − 1)
    radii: np.ndarray  # (N,) r_s · sqrt(T / min(D, m))
    neighbour_counts: np.ndarray  # (N,) other images j with d_ij < 0.99 · r_s · (ρ_i + ρ_j)
    principal_axes: np.ndarray  # (N, D) unit principal eigenvector of each image's view covariance (raw features)
    view_accuracy: np.ndarray  # (N,) fraction of the image's views whose nearest centroid is its own


def clamp_normalise(views: np.ndarray) -> np.ndarray:
    """(N, m, D) -> (N, m, D): subtract the mean over all views and images, then L2-normalise each view."""
    centred = np.asarray(views, dtype=np.float64) - np.mean(views, axis=(0, 1), dtype=np.float64)
    norms = np.linalg.norm(centred, axis=-1, keepdims=True)
    return centred / np.where(norms > 0, norms, 1.0)


def sub_manifolds(views: np.ndarray, radius_scale: float = IMAGENET_RADIUS_SCALE) -> SubManifolds:
    """CLAMP statistics of (N, m, D) view features (see `SubManifolds`)."""
    views = np.asarray(views, dtype=np.float64)
    n, m, width = views.shape
    if m < 2:
        raise ValueError(f"Sub-manifolds need at least 2 views per image; got {m}.")
    z = clamp_normalise(views)
    centroids = z.mean(axis=1)
    squared = np.sum((z - centroids[:, None]) ** 2, axis=(1, 2))
    traces = squared / (m - 1)
    radii = radius_scale * np.sqrt(traces / min(width, m))
    # The neighbour count's radius has no r_s and divides the covariance by m (CLAMP's analysis code).
    analysis_radii = np.sqrt(squared / m / min(width, m))
    distances = cdist(centroids, centroids)
    neighbours = distances < 0.99 * radius_scale * (analysis_radii[:, None] + analysis_radii[None, :])
    np.fill_diagonal(neighbours, False)
    return SubManifolds(centroids, traces, radii, neighbours.sum(axis=1), principal_axes(views),
                        view_accuracy(z, centroids))


def clamp_loss(centroids, radii):
    """log(E + 1e-6), E = Σ_{i<j} (1 − d_ij/σ_ij)² over pairs with 1e-3 < d_ij < σ_ij = min(r_i + r_j, 1.5).

    (N, D) centroids and (N,) radii as numpy arrays (returns a float) or torch tensors (returns a
    differentiable 0-d tensor: the Objective lab trains with this very function).
    """
    nx = ot.backend.get_backend(centroids, radii)
    squared_norms = (centroids ** 2).sum(axis=1)
    squared = nx.clip(squared_norms[:, None] + squared_norms[None, :] - 2 * centroids @ centroids.T, 0, None)
    sigma = nx.clip(radii[:, None] + radii[None, :], None, 1.5)
    index = nx.arange(len(centroids), type_as=centroids)
    in_range = (index[:, None] < index[None, :]) & (squared > 1e-6) & (squared < sigma ** 2)
    distances = nx.sqrt(nx.where(in_range, squared, 1.0))  # no sqrt(0) on the diagonal: its gradient is inf
    energy = nx.where(in_range, (1 - distances / sigma) ** 2, 0.0).sum()
    loss = nx.log(energy + 1e-6)
    return float(loss) if nx.__name__ == "numpy" else loss


def clamp_packing_loss(views, radius_scale: float = IMAGENET_RADIUS_SCALE):
    """CLAMP's loss of (N, m, D) view features (numpy or torch): normalise, centroids, radii, then `clamp_loss`."""
    nx = ot.backend.get_backend(views)
    n, m, width = views.shape
    centred = views - views.mean(axis=(0, 1), keepdims=True)
    z = centred / nx.clip(nx.norm(centred, axis=-1, keepdims=True), 1e-12, None)
    centroids = z.mean(axis=1)
    traces = ((z - centroids[:, None]) ** 2).sum(axis=(1, 2)) / (m - 1)
    return clamp_loss(centroids, radius_scale * nx.sqrt(traces / min(width, m)))


def principal_axes(views: np.ndarray) -> np.ndarray:
    """(N, m, D) raw view features -> (N, D) unit principal eigenvector of each image's view covariance."""
    centred = views - views.mean(axis=1, keepdims=True)
    # The top right singular vector of the centred (m, D) views is the covariance's top eigenvector.
    return np.stack([np.linalg.svd(block, full_matrices=False)[2][0] for block in centred])


def view_accuracy(normalised_views: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(N,) fraction of each image's (m, D) views whose nearest (N, D) centroid is the image's own."""
    n, m, _ = normalised_views.shape
    nearest = np.argmin(cdist(normalised_views.reshape(n * m, -1), centroids), axis=1)
    return (nearest.reshape(n, m) == np.arange(n)[:, None]).mean(axis=1)


def pair_histogram_values(manifolds: SubManifolds, categories: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Centroid distance, centroid cosine and orientation cos² of every pair i < j, split intra/inter class."""
    categories = np.asarray(categories).astype(str)
    centroids = manifolds.centroids
    unit = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    measures = {"centroid_distance": cdist(centroids, centroids), "centroid_cosine": unit @ unit.T,
                "orientation_cos2": (manifolds.principal_axes @ manifolds.principal_axes.T) ** 2}
    rows, columns = np.triu_indices(len(centroids), k=1)
    same = categories[rows] == categories[columns]
    return {name: {"intra": values[rows, columns][same], "inter": values[rows, columns][~same]}
            for name, values in measures.items()}


def uniformity(features: np.ndarray, t: float = 2.0, chunk_rows: int = 2048) -> float:
    """Wang & Isola's uniformity, reported positive: −log mean_{i<j} exp(−t ||x_i − x_j||²), x L2-normalised.

    (N, D) features; Gram-matrix blocks of `chunk_rows` rows keep memory at O(chunk_rows · N).
    """
    x = _l2_normalise(features)
    n = len(x)
    if n < 2:
        raise ValueError("Uniformity needs at least two feature vectors.")
    total = 0.0
    for start in range(0, n, chunk_rows):
        block = x[start:start + chunk_rows] @ x.T
        kernel = np.exp(-t * np.maximum(2 - 2 * block, 0))
        rows = np.arange(start, start + len(block))[:, None]
        total += float(np.sum(kernel[np.arange(n)[None, :] > rows]))  # pairs i < j only
    return float(-np.log(total / (n * (n - 1) / 2)))


def classwise_uniformity(features: np.ndarray, categories: np.ndarray, t: float = 2.0) -> dict[str, float]:
    """Uniformity within each category (categories with one item are skipped)."""
    categories = np.asarray(categories).astype(str)
    return {category: uniformity(features[categories == category], t)
            for category in sorted(set(categories)) if np.sum(categories == category) > 1}


def view_alignment(views: np.ndarray, alpha: float = 2.0) -> float:
    """Wang & Isola's alignment: mean ||x − x⁺||^alpha over all pairs of L2-normalised views of one image."""
    x = _l2_normalise(views)
    first, second = np.triu_indices(x.shape[1], k=1)
    return float(np.mean(np.linalg.norm(x[:, first] - x[:, second], axis=-1) ** alpha))


def class_distance_matrix(features: np.ndarray, categories: np.ndarray) -> tuple[list[str], np.ndarray]:
    """(C,) categories and (C, C) E||f(x0) − f(x1)||² for x0 in class i, x1 in class j (independent draws)."""
    categories = np.asarray(categories).astype(str)
    names = sorted(set(categories))
    features = np.asarray(features, dtype=np.float64)
    means = np.stack([features[categories == name].mean(axis=0) for name in names])
    second_moments = np.array([np.mean(np.sum(features[categories == name] ** 2, axis=1)) for name in names])
    return names, second_moments[:, None] + second_moments[None, :] - 2 * means @ means.T


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class ManifoldSummary:
    """Set-level numbers of N images' sub-manifolds: one row of the Manifolds page's metrics table."""
    clamp_loss: float
    mean_radius: float
    mean_neighbours: float
    view_accuracy: float
    uniformity: float
    classwise_uniformity: float  # mean over categories
    view_alignment: float  # Wang & Isola's alignment
    alpha: float  # power-law exponent of the centroids' eigenspectrum
    effective_dimensionality: float  # of the centroids

    def row(self) -> dict[str, float]:
        """The numbers by name, in table-column order."""
        return asdict(self)


def manifold_summary(views: np.ndarray, categories: np.ndarray, radius_scale: float = IMAGENET_RADIUS_SCALE,
                     manifolds: SubManifolds | None = None) -> ManifoldSummary:
    """Set-level numbers for (N, m, D) view features of N images with (N,) categories.

    Pass `manifolds` when `sub_manifolds(views, radius_scale)` is already at hand.
    """
    manifolds = sub_manifolds(views, radius_scale) if manifolds is None else manifolds
    n, m, _ = views.shape
    flat_views, view_categories = views.reshape(n * m, -1), np.repeat(np.asarray(categories).astype(str), m)
    return ManifoldSummary(
        clamp_loss=clamp_loss(manifolds.centroids, manifolds.radii),
        mean_radius=float(manifolds.radii.mean()),
        mean_neighbours=float(manifolds.neighbour_counts.mean()),
        view_accuracy=float(manifolds.view_accuracy.mean()),
        uniformity=uniformity(flat_views),
        classwise_uniformity=float(np.mean(list(classwise_uniformity(flat_views, view_categories).values()))),
        view_alignment=view_alignment(views),
        alpha=spectrum(views.mean(axis=1)).alpha,
        effective_dimensionality=effective_dimensionality(views.mean(axis=1)))


MAP_METHODS = ("t-SNE", "UMAP")


@dataclass(frozen=True, eq=False)
class ManifoldAnalysis:
    """Everything the Manifolds page draws for one encoder layer."""
    summary: ManifoldSummary
    per_image: pd.DataFrame  # image_id, category, radius, neighbours, view_accuracy, x, y (map)
    pairs: dict[str, dict[str, np.ndarray]]  # pair_histogram_values: measure -> intra/inter -> values
    class_names: list[str]
    class_distances: np.ndarray  # (C, C)
    spectrum: Spectrum  # of the (N, D) centroids of the raw views
    map_scale: float  # map units per feature-space unit for the radius circles


def analyse_manifolds(views: np.ndarray, categories: np.ndarray, image_ids: np.ndarray, *,
                      radius_scale: float = IMAGENET_RADIUS_SCALE, map_method: str = "t-SNE",
                      map_parameter: float = 30, seed: int = 0) -> ManifoldAnalysis:
    """(N, m, D) view features of N images -> ManifoldAnalysis (2-D map of the CLAMP centroids included)."""
    # One thread: on busy cores (an extraction job, the server) OpenMP's t-SNE ran ~40x slower
    # threaded than single-threaded on 48 points, and these problems are too small to gain from threads.
    with threadpool_limits(limits=1):
        categories = np.asarray(categories).astype(str)
        manifolds = sub_manifolds(views, radius_scale)
        map_xy = embed_2d(manifolds.centroids, map_method, map_parameter, seed)
        per_image = pd.DataFrame({"image_id": np.asarray(image_ids).astype(str), "category": categories,
                                  "radius": manifolds.radii, "neighbours": manifolds.neighbour_counts,
                                  "view_accuracy": manifolds.view_accuracy, "x": map_xy[:, 0], "y": map_xy[:, 1]})
        pairs = pair_histogram_values(manifolds, categories)
        n, m, _ = views.shape
        names, distances = class_distance_matrix(views.reshape(n * m, -1), np.repeat(categories, m))
        summary = manifold_summary(views, categories, radius_scale, manifolds)
        return ManifoldAnalysis(summary, per_image, pairs, names, distances, spectrum(views.mean(axis=1)),
                                map_radius_scale(map_xy, manifolds.centroids))


@dataclass(frozen=True, eq=False)
class ManifoldComparison:
    """The Manifolds page's shared tables for several named encoder layers (column `encoder`)."""
    metrics: pd.DataFrame  # a row per encoder layer: encoder, then ManifoldSummary's fields
    per_image: pd.DataFrame  # every ManifoldAnalysis.per_image with an encoder column
    pairs: dict[str, dict[str, dict[str, np.ndarray]]]  # encoder -> pair_histogram_values
    spectra: pd.DataFrame  # encoder, rank, eigenvalue
    fits: pd.DataFrame  # encoder, alpha, intercept


def compare_manifolds(analyses: Mapping[str, ManifoldAnalysis]) -> ManifoldComparison:
    """Tables across encoder layers from their analyses, keyed by the name the page shows."""
    spectra, fits = spectrum_tables({name: result.spectrum for name, result in analyses.items()})
    return ManifoldComparison(
        metrics=pd.DataFrame([{"encoder": name, **result.summary.row()} for name, result in analyses.items()]),
        per_image=pd.concat([result.per_image.assign(encoder=name) for name, result in analyses.items()],
                            ignore_index=True),
        pairs={name: result.pairs for name, result in analyses.items()},
        spectra=spectra, fits=fits)


def embed_2d(points: np.ndarray, method: str = "t-SNE", parameter: float = 30, seed: int = 0) -> np.ndarray:
    """(N, D) -> (N, 2) by t-SNE (parameter = perplexity) or UMAP (parameter = n_neighbors)."""
    n = len(points)
    if method == "t-SNE":
        from sklearn.manifold import TSNE
        return TSNE(perplexity=min(parameter, (n - 1) / 3), random_state=seed, init="pca").fit_transform(points)
    if method == "UMAP":
        import umap  # first call JIT-compiles (cached on disk by numba); the page caches results
        return umap.UMAP(n_neighbors=int(min(parameter, n - 1)), random_state=seed).fit_transform(points)
    raise ValueError(f"Unknown map method {method!r}; choose one of {', '.join(MAP_METHODS)}.")


def map_radius_scale(map_xy: np.ndarray, centroids: np.ndarray) -> float:
    """Map units per feature-space unit: median 2-D distance / median feature distance over each point's map neighbour."""
    _, nearest = cKDTree(map_xy).query(map_xy, k=2)
    pairs = nearest[:, 1]
    map_distance = np.linalg.norm(map_xy - map_xy[pairs], axis=1)
    feature_distance = np.linalg.norm(centroids - centroids[pairs], axis=1)
    return float(np.median(map_distance) / max(np.median(feature_distance), 1e-12))
