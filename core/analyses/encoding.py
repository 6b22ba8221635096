"""Encoding models (docs/science.md §11): cross-validated ridge from a layer's features to every recorded unit.

For response patterns of one subject, (N, U) or repetitions (R, N, U) averaged over R, each unit is predicted from
(N, D) features under shuffled K-fold cross-validation over items (`core.analyses.cv.CrossValidation("kfold")`).
Per outer fold, on the training items only: the probes' `StandardScaler` + fixed ±clip_sd clip
(`core.analyses.affect.standardise_and_clip`), then ridge with an unpenalised intercept whose alpha is chosen per
unit (or one for all units) by the exact efficient leave-one-out error of the training items, as scikit-learn's
`RidgeCV(alpha_per_target=True)`. The numbers equal RidgeCV's (tests, 1e-8); the solve is our own because RidgeCV
forms a (D, U) coefficient matrix for every alpha (8-23 s for D = 20,000, N = 92, U = 500 against 0.35-0.75 s here).

One decomposition per fold serves every alpha and every unit: the eigendecomposition of the (n, n) Gram matrix of
the centred training features when D > n (the dual / kernel form), their thin SVD otherwise (the primal form).
Both give left singular vectors Q (n, r), squared singular values λ (r,) and the held-out items' projections
T = X_test Xᵀ Q (m, r); then for each alpha the fitted values, the hat matrix's diagonal (leave-one-out residuals
e = residual / (1 − h), both written without cancellation: `ridge_fold`) and the held-out predictions
T (Qᵀy / (λ + α)) are products of small matrices.

Scores per unit over all N out-of-fold predictions pooled: Pearson r and R² (as `affect.metrics_table`). Ceiling
per unit: split-half reliability of the repetitions with the Spearman-Brown correction, the reliability of the mean
of R repetitions the model is scored against. Summary: the median r over units whose reliability exceeds a
threshold, raw and as r / sqrt(reliability) (docs/science.md §11).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd
from scipy.linalg import helmert
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_limits

from core.analyses.affect import CLIP_SD, _scores, standardise_and_clip
from core.analyses.cv import CrossValidation
from core.analyses.probes import normalised_depth
from core.progress import Progress, Report

ENCODING_ALPHAS = np.logspace(-2, 8, 21)
N_SPLIT_HALVES = 100
MIN_RELIABILITY = 0.1


@dataclass(frozen=True, eq=False)
class EncodingScores:
    """Cross-validated encoding model of U units; arrays are (U,) unless noted."""

    r: np.ndarray  # Pearson r of the out-of-fold predictions with the (repetition-averaged) responses
    r2: np.ndarray  # 1 − SSres / SStot over all N items (SStot about the mean of all N)
    reliability: np.ndarray  # Spearman-Brown corrected split-half reliability; NaN without repetitions
    reliable: np.ndarray  # bool: reliability > min_reliability (every unit without repetitions)
    min_reliability: float
    median_r: float  # median r over the reliable units
    median_r_normalised: float  # median of r / sqrt(reliability) over the reliable units; NaN without repetitions
    median_r2: float  # median R² over the reliable units
    alphas: np.ndarray  # (n_folds, U) ridge alpha chosen inside each training fold
    predictions: np.ndarray  # (N, U) out-of-fold predictions
    responses: np.ndarray  # (N, U) what was predicted: the mean over repetitions
    fold: np.ndarray  # (N,) index of the fold that held each item out
    form: str  # "dual" (Gram matrix, D > training items) or "primal" (SVD of the features)

    @property
    def n_reliable(self) -> int:
        return int(np.sum(self.reliable))


def split_half_reliability(repetitions: np.ndarray, *, n_splits: int = N_SPLIT_HALVES, seed: int = 0) -> np.ndarray:
    """(U,) Spearman-Brown corrected split-half reliability of (R, N, U) repetitions, R >= 2.

    Each of `n_splits` seeded random splits puts floor(R/2) repetitions in each half (one left out when R is odd);
    r_half is the Pearson r across the N items between the two half-means, averaged over the splits, and the
    corrected value k r / (1 + (k − 1) r) with k = R / floor(R/2) is the reliability of the mean of all R
    repetitions: 2 r / (1 + r) for even R.
    """
    repetitions = np.asarray(repetitions, dtype=np.float64)
    if repetitions.ndim != 3 or repetitions.shape[0] < 2:
        raise ValueError(f"Need repetitions of shape (R, N, U) with R >= 2; got {repetitions.shape}.")
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1; got {n_splits}.")
    n_reps, half = repetitions.shape[0], repetitions.shape[0] // 2
    rng = np.random.default_rng(seed)
    total = np.zeros(repetitions.shape[2])
    for _ in range(n_splits):
        order = rng.permutation(n_reps)
        first, second = repetitions[order[:half]].mean(axis=0), repetitions[order[half:2 * half]].mean(axis=0)
        total += _column_r(first, second)
    r_half, k = total / n_splits, n_reps / half
    with np.errstate(divide="ignore", invalid="ignore"):
        return k * r_half / (1 + (k - 1) * r_half)


def encoding_scores(features: np.ndarray, responses: np.ndarray, *, alphas: np.ndarray = ENCODING_ALPHAS,
                    alpha_per_unit: bool = True, n_splits: int = 5, seed: int = 0,
                    min_reliability: float = MIN_RELIABILITY, n_split_halves: int = N_SPLIT_HALVES,
                    clip_sd: float | None = CLIP_SD, progress: Report | None = None) -> EncodingScores:
    """Encoding model of (N, D) features for (N, U) responses or (R, N, U) repetitions -> EncodingScores.

    K-fold (`n_splits`, shuffled with `seed`) over items; alpha from `alphas` per unit (or shared) by leave-one-out
    inside each training fold; the split-half reliability uses `n_split_halves` splits seeded with `seed`.
    `progress` counts the folds: 0 before the first, then after every one.
    """
    features, repetitions, mean_responses, alphas = _checked(features, responses, alphas, n_splits, min_reliability)
    reliability = (np.full(mean_responses.shape[1], np.nan) if repetitions is None
                   else split_half_reliability(repetitions, n_splits=n_split_halves, seed=seed))
    return _scored(features, mean_responses, reliability, alphas=alphas, alpha_per_unit=alpha_per_unit,
                   n_splits=n_splits, seed=seed, min_reliability=min_reliability, clip_sd=clip_sd, progress=progress)


def layer_curve(features_by_layer: Mapping[str, np.ndarray], responses: np.ndarray, *,
                alphas: np.ndarray = ENCODING_ALPHAS, alpha_per_unit: bool = True, n_splits: int = 5, seed: int = 0,
                min_reliability: float = MIN_RELIABILITY, n_split_halves: int = N_SPLIT_HALVES,
                clip_sd: float | None = CLIP_SD, progress: Report | None = None) -> pd.DataFrame:
    """One row per layer (given in depth order) of `encoding_scores` on the same folds and reliabilities.

    Columns: layer, layer_index, n_layers, depth, median_r, median_r_normalised, median_r2, n_reliable, n_units,
    form. `progress` counts the folds of all layers, its message "layer · fold k/K". The best layer of this curve
    is an optimistic pick (docs/science.md §9, layer choice without optimism).
    """
    if not features_by_layer:
        raise ValueError("Need features of at least one layer.")
    checked = {layer: _checked(features, responses, alphas, n_splits, min_reliability)
               for layer, features in features_by_layer.items()}
    _, repetitions, mean_responses, alphas = next(iter(checked.values()))
    reliability = (np.full(mean_responses.shape[1], np.nan) if repetitions is None
                   else split_half_reliability(repetitions, n_splits=n_split_halves, seed=seed))
    depth, rows = normalised_depth(len(checked)), []
    if progress is not None:
        progress(Progress(0, n_splits * len(checked)))
    for index, (layer, (features, *_)) in enumerate(checked.items()):
        def fold_done(folds: Progress, index=index, layer=layer) -> None:
            if folds.done:  # a layer's "0 folds done" is the previous layer's last report
                progress(Progress(index * n_splits + folds.done, n_splits * len(checked),
                                  f"{layer} · fold {folds.done}/{folds.total}"))

        scores = _scored(features, mean_responses, reliability, alphas=alphas, alpha_per_unit=alpha_per_unit,
                         n_splits=n_splits, seed=seed, min_reliability=min_reliability, clip_sd=clip_sd,
                         progress=None if progress is None else fold_done)
        rows.append({"layer": layer, "layer_index": index, "n_layers": len(checked), "depth": float(depth[index]),
                     "median_r": scores.median_r, "median_r_normalised": scores.median_r_normalised,
                     "median_r2": scores.median_r2, "n_reliable": scores.n_reliable,
                     "n_units": len(scores.r), "form": scores.form})
    return pd.DataFrame(rows)


def ridge_fold(train_features: np.ndarray, train_responses: np.ndarray, test_features: np.ndarray,
               alphas: np.ndarray, *, alpha_per_unit: bool = True) -> tuple[np.ndarray, np.ndarray, str]:
    """Ridge with intercept fitted on (n, D), (n, U); alpha by efficient leave-one-out -> ((m, U) predictions of
    (m, D) test features, (U,) chosen alphas, "dual" | "primal"). Features are used as given (no scaling).

    The leave-one-out residual of item i is [(I − H) y]_i / (I − H)_ii with H the hat matrix (intercept included).
    Both are written as sums over directions Q_k of the α / (λ_k + α) the penalty leaves, never as 1 − h or y − ŷ:
    near interpolation (D ≫ n, small α) those differences cancel to a few digits (LOO errors wrong by 5e-5
    relative at D = 20,000, n = 73, against 1e-9 this way, as RidgeCV's; checked in long double).
    """
    x_mean, y_mean = train_features.mean(axis=0), train_responses.mean(axis=0)
    centred, targets = train_features - x_mean, train_responses - y_mean
    test, n = test_features - x_mean, len(targets)
    if centred.shape[1] > n:  # dual: eigendecomposition of the Gram matrix on the (n − 1)-d space orthogonal to 1
        form = "dual"
        orthogonal = helmert(n).T  # (n, n − 1) orthonormal columns orthogonal to the intercept's direction
        gram = centred @ centred.T
        eigenvalues, rotation = np.linalg.eigh(orthogonal.T @ gram @ orthogonal)
        eigenvalues, basis = np.clip(eigenvalues, 0.0, None), orthogonal @ rotation
        projections = (test @ centred.T) @ basis
        along = basis.T @ targets  # (r, U); the centred targets lie in the basis's span
        outside, rest = 0.0, 0.0
    else:  # primal: thin SVD of the (n, D) features
        form = "primal"
        basis, singular, right = np.linalg.svd(centred, full_matrices=False)
        eigenvalues = singular ** 2
        projections = test @ (right.T * singular)
        along = basis.T @ targets
        outside = targets - basis @ along  # what no weights can fit: the same for every alpha
        rest = np.clip(1.0 - 1.0 / n - np.sum(basis ** 2, axis=1), 0.0, None)  # (I − H)_ii outside the basis
    squared = basis ** 2
    loo_mse = np.empty((len(alphas), targets.shape[1]))
    for index, alpha in enumerate(alphas):
        kept = alpha / (eigenvalues + alpha)  # share of each direction the penalty leaves in the residual
        residual = outside + basis @ (kept[:, None] * along)
        loo_mse[index] = np.mean((residual / (rest + squared @ kept)[:, None]) ** 2, axis=0)
    # first minimum in grid order, as RidgeCV (it replaces a best alpha only by a strictly better one)
    best = np.argmin(loo_mse, axis=0) if alpha_per_unit else np.full(targets.shape[1], np.argmin(loo_mse.mean(axis=1)))
    chosen = np.asarray(alphas)[best]
    predictions = projections @ (along / (eigenvalues[:, None] + chosen[None, :])) + y_mean
    return predictions, chosen, form


def _scored(features: np.ndarray, responses: np.ndarray, reliability: np.ndarray, *, alphas: np.ndarray,
            alpha_per_unit: bool, n_splits: int, seed: int, min_reliability: float, clip_sd: float | None,
            progress: Report | None) -> EncodingScores:
    """EncodingScores of checked (N, D) features and (N, U) responses given the units' (U,) reliability."""
    splits = CrossValidation("kfold", n_splits, seed).split(np.zeros(len(features)))
    predictions, fold = np.empty_like(responses), np.empty(len(features), dtype=int)
    chosen = np.empty((len(splits), responses.shape[1]))
    if progress is not None:
        progress(Progress(0, len(splits)))
    # One BLAS thread, as the probes (core.analyses.affect.fit_folds): small products, two busy cores.
    with threadpool_limits(limits=1, user_api="blas"):
        for index, (train, test) in enumerate(splits):
            scaling = make_pipeline(*standardise_and_clip(clip_sd))
            train_features = scaling.fit_transform(features[train])
            predictions[test], chosen[index], form = ridge_fold(
                train_features, responses[train], scaling.transform(features[test]), alphas,
                alpha_per_unit=alpha_per_unit)
            fold[test] = index
            if progress is not None:
                progress(Progress(index + 1, len(splits)))
    r, r2, _ = _scores(responses.T, predictions.T)
    no_ceiling = np.isnan(reliability).all()
    with np.errstate(invalid="ignore"):
        reliable = np.ones(len(r), bool) if no_ceiling else reliability > min_reliability
        normalised = r / np.sqrt(reliability)
    return EncodingScores(r, r2, reliability, reliable, float(min_reliability), _median(r, reliable),
                          np.nan if no_ceiling else _median(normalised, reliable), _median(r2, reliable), chosen,
                          predictions, responses, fold, form)


def _median(values: np.ndarray, reliable: np.ndarray) -> float:
    """Median of the finite values of the reliable units (NaN if there are none)."""
    kept = values[reliable & np.isfinite(values)]
    return float(np.median(kept)) if len(kept) else float("nan")


def _column_r(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(U,) Pearson r between the columns of two (N, U) arrays (NaN for a constant column)."""
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (a * b).sum(axis=0) / np.sqrt((a ** 2).sum(axis=0) * (b ** 2).sum(axis=0))


def _checked(features: np.ndarray, responses: np.ndarray, alphas: np.ndarray, n_splits: int,
             min_reliability: float) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """(features (N, D), repetitions (R, N, U) or None, mean responses (N, U), alphas (A,)), checked once."""
    features, responses = np.asarray(features, dtype=np.float64), np.asarray(responses, dtype=np.float64)
    alphas = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if features.ndim != 2 or responses.ndim not in (2, 3) or responses.shape[-2] != len(features):
        raise ValueError(f"Need features (N, D) and responses (N, U) or repetitions (R, N, U) of the same N items; "
                         f"got {features.shape} and {responses.shape}.")
    if responses.ndim == 3 and responses.shape[0] < 2:
        raise ValueError(f"Repetitions (R, N, U) need R >= 2 for a split-half reliability; got R = "
                         f"{responses.shape[0]} (pass the (N, U) responses instead).")
    if not (np.isfinite(features).all() and np.isfinite(responses).all()):
        raise ValueError("The features or the responses contain NaN or infinite values.")
    if alphas.ndim != 1 or not (alphas > 0).all():
        raise ValueError(f"alphas must be a 1-D grid of positive numbers; got {alphas}.")
    if not 2 <= n_splits <= len(features) // 2:
        raise ValueError(f"K-fold over {len(features)} items needs 2 <= K <= {len(features) // 2} "
                         f"(two items or more per fold); got K = {n_splits}.")
    if not np.isfinite(min_reliability):
        raise ValueError(f"min_reliability must be a number; got {min_reliability}.")
    repetitions = responses if responses.ndim == 3 else None
    return features, repetitions, responses.mean(axis=0) if repetitions is not None else responses, alphas
