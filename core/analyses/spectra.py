"""Covariance spectra of feature sets: effective dimensionality and the power-law decay (docs/science.md §3, §6).

`effective_dimensionality` is the participation ratio (Σλ)² / Σλ² of the covariance eigenvalues
(used for the Affect page's errors and features and the Manifolds page's centroids);
`eigenspectrum` and `power_law_alpha` follow Stringer et al. (2019): the eigenvalues in
descending order and the weighted least-squares slope α of log λ_n on −log n.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

POWER_LAW_RANKS = (11, 500)  # Stringer et al.: fit ranks 11 .. min(500, N - 2)


def effective_dimensionality(samples: np.ndarray) -> float:
    """Participation ratio (Σλ)² / Σλ² of the covariance eigenvalues of (N, D) samples."""
    centred = np.asarray(samples, float) - np.mean(samples, axis=0)
    # The Gram matrix has the same non-zero spectrum as the covariance: use the smaller one.
    gram = centred @ centred.T if len(centred) < centred.shape[1] else centred.T @ centred
    eigenvalues = np.clip(np.linalg.eigvalsh(gram), 0, None)
    return float(eigenvalues.sum() ** 2 / (eigenvalues ** 2).sum()) if eigenvalues.any() else 0.0


def eigenspectrum(features: np.ndarray) -> np.ndarray:
    """(N, D) features -> (min(N − 1, D),) covariance eigenvalues, descending (centring removes one rank)."""
    centred = np.asarray(features, dtype=np.float64) - np.mean(features, axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)[:max(min(len(centred) - 1, centred.shape[1]), 1)]
    return singular ** 2 / max(len(centred) - 1, 1)


def power_law_alpha(eigenvalues: np.ndarray, ranks: tuple[int, int] = POWER_LAW_RANKS) -> tuple[float, float]:
    """(alpha, intercept): weighted least squares of log λ_n on −log n, weights 1/n, n in ranks[0] .. min(ranks[1], N−2).

    λ_n ≈ exp(intercept) · n^(−alpha). NaN when fewer than 3 ranks are usable.
    """
    eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
    last = min(ranks[1], len(eigenvalues) - 2)
    n = np.arange(ranks[0], last + 1)
    values = eigenvalues[n - 1]
    keep = values > 0
    if keep.sum() < 3:
        return float("nan"), float("nan")
    n, values = n[keep], values[keep]
    weights = 1.0 / n
    design = np.column_stack([-np.log(n), np.ones(len(n))])
    root = np.sqrt(weights)[:, None]
    (alpha, intercept), *_ = np.linalg.lstsq(design * root, np.log(values) * root[:, 0], rcond=None)
    return float(alpha), float(intercept)


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Covariance eigenvalues of one feature set and their power-law fit λ_n ≈ exp(intercept) · n^(−alpha)."""
    eigenvalues: np.ndarray  # (min(N − 1, D),) descending
    alpha: float
    intercept: float


def spectrum(features: np.ndarray) -> Spectrum:
    """(N, D) features -> their eigenspectrum and its power-law fit over POWER_LAW_RANKS."""
    eigenvalues = eigenspectrum(features)
    return Spectrum(eigenvalues, *power_law_alpha(eigenvalues))


def spectrum_tables(spectra: Mapping[str, Spectrum]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long tables of named spectra: (name, rank, eigenvalue) per eigenvalue and (name, alpha, intercept) per fit.

    The name column is called `encoder`, as in every other per-encoder table of the pages.
    """
    eigenvalues = pd.concat([pd.DataFrame({"encoder": name, "rank": np.arange(1, len(result.eigenvalues) + 1),
                                           "eigenvalue": result.eigenvalues})
                             for name, result in spectra.items()])
    fits = pd.DataFrame([{"encoder": name, "alpha": result.alpha, "intercept": result.intercept}
                         for name, result in spectra.items()])
    return eigenvalues, fits
