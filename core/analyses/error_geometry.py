"""Geometry of prediction errors in the valence-arousal plane (docs/science.md §3).

e_i = yhat_i − y_i, w_i = ||e_i||, theta_i = atan2(e_arousal, e_valence). With
`zscore=True` each error axis is divided by the SD of that rating before angles, PLV,
centre-ward pull, error ED and field arrows are computed; occupancy grids and attractors
always stay in rating units over [1, 7]², and points outside that square are counted in
the border cells (clipped).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd
from scipy.ndimage import maximum_filter
from scipy.stats import gaussian_kde

from core.analyses.spectra import effective_dimensionality

RATING_EXTENT = (1.0, 7.0)


def error_vectors(y_true: np.ndarray, y_pred: np.ndarray, *, zscore: bool = False) -> np.ndarray:
    """(N, 2) true and predicted ratings -> (N, 2) errors yhat − y, optionally per-axis z-scored."""
    errors = np.asarray(y_pred, float) - np.asarray(y_true, float)
    return errors / np.asarray(y_true, float).std(axis=0) if zscore else errors


def weighted_plv(angles: np.ndarray, weights: np.ndarray) -> float:
    """|Σ w exp(iθ)| / Σ w of (N,) angles and weights, in [0, 1]; 0 when all weights are 0."""
    total = float(np.sum(weights))
    return 0.0 if total == 0 else float(np.abs(np.sum(weights * np.exp(1j * np.asarray(angles)))) / total)


def error_plv(errors: np.ndarray) -> float:
    """Magnitude-weighted PLV of (N, 2) error vectors."""
    return weighted_plv(np.arctan2(errors[:, 1], errors[:, 0]), np.linalg.norm(errors, axis=1))


def plv_by_group(errors: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Weighted PLV of the (N, 2) errors of each label."""
    labels = np.asarray(labels).astype(str)
    return {label: error_plv(errors[labels == label]) for label in np.unique(labels)}


@dataclass(frozen=True)
class CentrewardPull:
    index: float  # Σ w cos φ / Σ w in [-1, 1]; > 0 = errors point to the centre
    plv: float  # weighted PLV of φ
    slopes: tuple[float, float]  # slope of yhat on y per axis; < 1 = shrinkage toward the mean


def centreward_pull(y_true: np.ndarray, y_pred: np.ndarray, centres: np.ndarray, *,
                    zscore: bool = False) -> CentrewardPull:
    """φ_i = angle between e_i and (c_i − y_i) for (N, 2) ratings, predictions and training-fold centres.

    Images whose error is zero or whose rating equals the centre have no angle and are left out.
    """
    y_true, y_pred, centres = (np.asarray(values, float) for values in (y_true, y_pred, centres))
    scale = y_true.std(axis=0) if zscore else np.ones(2)
    errors, to_centre = (y_pred - y_true) / scale, (centres - y_true) / scale
    weights, reach = np.linalg.norm(errors, axis=1), np.linalg.norm(to_centre, axis=1)
    usable = (weights > 0) & (reach > 0)
    cosine = np.einsum("ij,ij->i", errors[usable], to_centre[usable]) / (weights[usable] * reach[usable])
    phi = np.arccos(np.clip(cosine, -1, 1))
    index = float(np.sum(weights[usable] * cosine) / weights[usable].sum()) if usable.any() else 0.0
    slopes = tuple(float(np.polyfit(y_true[:, axis], y_pred[:, axis], 1)[0]) for axis in range(2))
    return CentrewardPull(index, weighted_plv(phi, weights[usable]), slopes)


@dataclass(frozen=True)
class Occupancy:
    counts: np.ndarray  # (B, B): rows = arousal bins (low to high), columns = valence bins
    normalized_entropy: float
    bins: int
    extent: tuple[float, float]


def occupancy_entropy(counts: np.ndarray) -> float:
    """Shannon entropy of a (B, B) count grid over log(B²): 1 = uniform, 0 = one cell."""
    probabilities = np.asarray(counts, float).ravel()
    probabilities = probabilities[probabilities > 0] / probabilities.sum()
    return float(-(probabilities * np.log(probabilities)).sum() / np.log(np.asarray(counts).size))


def trajectory_occupancy(y_true: np.ndarray, y_pred: np.ndarray, *, bins: int = 20, samples_per_segment: int = 20,
                         extent: tuple[float, float] = RATING_EXTENT) -> Occupancy:
    """K points evenly on every segment y_i -> yhat_i (both ends included), binned on a B x B grid."""
    steps = np.linspace(0.0, 1.0, samples_per_segment)[None, :, None]
    points = np.asarray(y_true, float)[:, None, :] + steps * (np.asarray(y_pred, float) - y_true)[:, None, :]
    return _occupancy(points.reshape(-1, 2), bins, extent)


def endpoint_occupancy(y_pred: np.ndarray, *, bins: int = 20,
                       extent: tuple[float, float] = RATING_EXTENT) -> Occupancy:
    """Occupancy of the (N, 2) predicted points alone."""
    return _occupancy(np.asarray(y_pred, float), bins, extent)


def _occupancy(points: np.ndarray, bins: int, extent: tuple[float, float]) -> Occupancy:
    low, high = extent
    inside = np.clip(points, low, np.nextafter(high, low))  # outside points count in the border cells
    counts, _, _ = np.histogram2d(inside[:, 1], inside[:, 0], bins=bins, range=[extent, extent])
    return Occupancy(counts, occupancy_entropy(counts), bins, extent)


@dataclass(frozen=True)
class Attractors:
    maxima: np.ndarray  # (k, 2) valence, arousal of the KDE's local maxima
    density: np.ndarray  # (G, G) KDE on the grid, rows = arousal
    grid: np.ndarray  # (G,) coordinates of the grid along each axis
    fraction_near: float  # share of predictions within `radius` of a maximum
    radius: float


def attractors(y_pred: np.ndarray, *, grid_size: int = 60, extent: tuple[float, float] = RATING_EXTENT,
               radius: float = 0.5, min_relative_density: float = 0.05) -> Attractors:
    """Local maxima of a Gaussian KDE (Scott bandwidth) of (N, 2) predictions on a grid.

    Maxima below min_relative_density x the highest peak are ignored (numerically tiny
    bumps in the tails), and maxima closer than `radius` to a higher one are merged into it
    (a ridge of the KDE is one attractor region, not several).
    """
    y_pred = np.asarray(y_pred, float)
    grid = np.linspace(*extent, grid_size)
    valence, arousal = np.meshgrid(grid, grid)
    density = gaussian_kde(y_pred.T, bw_method="scott")(np.vstack([valence.ravel(), arousal.ravel()]))
    density = density.reshape(grid_size, grid_size)
    peaks = (density == maximum_filter(density, size=3, mode="nearest")) & \
        (density >= min_relative_density * density.max())
    candidates = np.column_stack([valence[peaks], arousal[peaks]])[np.argsort(-density[peaks])]
    kept: list[np.ndarray] = []
    for candidate in candidates:
        if all(np.linalg.norm(candidate - other) > radius for other in kept):
            kept.append(candidate)
    maxima = np.array(kept).reshape(-1, 2)
    distances = np.linalg.norm(y_pred[:, None, :] - maxima[None, :, :], axis=2)
    fraction = float((distances.min(axis=1) <= radius).mean()) if len(maxima) else 0.0
    return Attractors(maxima, density, grid, fraction, radius)


@dataclass(frozen=True)
class ErrorField:
    """Mean error of images whose TRUE rating falls in each occupied cell of a coarse grid."""

    x: np.ndarray  # cell centres, valence
    y: np.ndarray  # cell centres, arousal
    u: np.ndarray  # mean error, valence
    v: np.ndarray  # mean error, arousal
    counts: np.ndarray


def error_field(y_true: np.ndarray, errors: np.ndarray, *, bins: int = 8,
                extent: tuple[float, float] = RATING_EXTENT) -> ErrorField:
    """Grid-averaged (N, 2) errors over a bins x bins grid of true ratings; empty cells omitted."""
    low, high = extent
    cell = np.clip(((np.asarray(y_true, float) - low) / (high - low) * bins).astype(int), 0, bins - 1)
    flat = cell[:, 1] * bins + cell[:, 0]
    counts = np.bincount(flat, minlength=bins * bins)
    sums = np.stack([np.bincount(flat, weights=errors[:, axis], minlength=bins * bins) for axis in range(2)], 1)
    occupied = np.flatnonzero(counts)
    centres = low + (np.arange(bins) + 0.5) * (high - low) / bins
    means = sums[occupied] / counts[occupied, None]
    return ErrorField(centres[occupied % bins], centres[occupied // bins], means[:, 0], means[:, 1],
                      counts[occupied])


@dataclass(frozen=True, eq=False)
class ErrorGeometry:
    plv: float
    plv_by_category: dict[str, float]
    pull: CentrewardPull
    trajectory: Occupancy
    endpoint: Occupancy
    attractors: Attractors
    error_ed: float  # of the 2 x 2 error covariance, in [1, 2]
    mean_error_magnitude: float


def error_geometry(y_true: np.ndarray, y_pred: np.ndarray, centres: np.ndarray, categories: np.ndarray, *,
                   zscore: bool = False, bins: int = 20, samples_per_segment: int = 20,
                   extent: tuple[float, float] = RATING_EXTENT) -> ErrorGeometry:
    """Every §3 measure of one model's (N, 2) out-of-fold predictions."""
    errors = error_vectors(y_true, y_pred, zscore=zscore)
    return ErrorGeometry(
        plv=error_plv(errors), plv_by_category=plv_by_group(errors, categories),
        pull=centreward_pull(y_true, y_pred, centres, zscore=zscore),
        trajectory=trajectory_occupancy(y_true, y_pred, bins=bins, samples_per_segment=samples_per_segment,
                                        extent=extent),
        endpoint=endpoint_occupancy(y_pred, bins=bins, extent=extent),
        attractors=attractors(y_pred, extent=extent),
        error_ed=effective_dimensionality(errors),
        mean_error_magnitude=float(np.linalg.norm(errors, axis=1).mean()),
    )


def geometry_table(geometries: Mapping[str, ErrorGeometry]) -> pd.DataFrame:
    """One row per model label with every scalar measure."""
    return pd.DataFrame([{
        "model": label, "plv": geometry.plv, "pull_index": geometry.pull.index, "pull_plv": geometry.pull.plv,
        "slope_valence": geometry.pull.slopes[0], "slope_arousal": geometry.pull.slopes[1],
        "trajectory_entropy": geometry.trajectory.normalized_entropy,
        "endpoint_entropy": geometry.endpoint.normalized_entropy,
        "n_attractors": len(geometry.attractors.maxima),
        "fraction_near_attractor": geometry.attractors.fraction_near,
        "error_ed": geometry.error_ed, "mean_error_magnitude": geometry.mean_error_magnitude,
    } for label, geometry in geometries.items()])
