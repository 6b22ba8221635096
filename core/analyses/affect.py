"""Cross-validated valence/arousal regression from frozen features (docs/science.md §2).

Per outer fold a StandardScaler + RidgeCV pipeline is fit on the training rows only;
RidgeCV picks alpha per target by its efficient leave-one-out CV inside those rows, so
nothing from a held-out image touches scaling or alpha.

Deviation from the brief (docs/science.md §2), on by default (`clip_sd=10`): standardised features are
clipped to ±10 training SDs. Post-ReLU channels that are nearly silent in the training
rows (SD ~1e-5) but fire in a held-out theme otherwise reach |z| in the tens of
thousands and the predictions explode (demo, EfficientNet-Lite0, LOTO: valence R² −8.0
without the clip, 0.35 with it). Clipping is fixed, not fitted, so it cannot leak. The outer
folds come from a `core.analyses.cv.CrossValidation` (LOTO, LOCO, K-fold or grouped K-fold).

Reliability ceiling (docs/science.md §2.1): where a dataset ships each image's rater SD and N
(OASIS: `Valence_SD`, `Valence_N`, ...), 1 − mean(SD²/N) / var(mean rating) bounds the R² any
probe can reach on average, because SD²/N of an image is noise in its mean rating.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from core.analyses.cv import CrossValidation
from core.progress import Progress, Report

RIDGE_ALPHAS = np.logspace(-2, 5, 15)
CLIP_SD = 10.0
TARGETS = ("valence", "arousal")


@dataclass(frozen=True, eq=False)
class CVPredictions:
    """Out-of-fold predictions of every image; arrays are (N, T) unless noted."""

    scheme: str
    targets: np.ndarray
    predictions: np.ndarray
    fold: np.ndarray  # (N,) index of the fold that held the image out
    held_out_group: np.ndarray  # (N,) theme group / category / "fold k" held out with the image
    alphas: np.ndarray  # (n_folds, T) ridge alpha chosen inside each training fold
    train_means: np.ndarray  # training-fold mean of the targets, per image's fold (the "centre")
    target_names: tuple[str, ...]


def cross_validated_predictions(features: np.ndarray, targets: np.ndarray, groups: np.ndarray,
                                cv: CrossValidation, *, alphas: np.ndarray = RIDGE_ALPHAS,
                                clip_sd: float | None = CLIP_SD, target_names: Sequence[str] = TARGETS,
                                progress: Report | None = None) -> CVPredictions:
    """Out-of-fold ridge predictions: features (N, D), targets (N, T), groups (N,) -> CVPredictions.

    `progress` counts the folds: 0 before the first, then after every one.
    """
    features, targets, groups = _checked(features, targets, groups)
    splits = cv.split(groups)
    if progress is not None:
        progress(Progress(0, len(splits)))
    fits = []
    for index in range(len(splits)):
        fits += fit_folds(features, targets, splits, [index], alphas=alphas, clip_sd=clip_sd)
        if progress is not None:
            progress(Progress(index + 1, len(splits)))
    return assemble_predictions(fits, targets, groups, cv, target_names)


@dataclass(frozen=True, eq=False)
class FoldFit:
    """One outer fold's held-out rows (n,), their (n, T) predictions, the training mean (T,) and chosen alphas (T,)."""

    index: int
    test: np.ndarray
    predictions: np.ndarray
    train_mean: np.ndarray
    alphas: np.ndarray


def fit_folds(features: np.ndarray, targets: np.ndarray, splits: Sequence[tuple[np.ndarray, np.ndarray]],
              indices: Sequence[int], *, alphas: np.ndarray = RIDGE_ALPHAS,
              clip_sd: float | None = CLIP_SD) -> list[FoldFit]:
    """Fit folds `indices` of `splits` on (N, D) features and (N, T) targets (a chunk a study can run anywhere)."""
    features = np.asarray(features, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64).reshape(len(targets), -1)
    fits = []
    # One BLAS thread: LOTO on OASIS is 248 small ridge refits, and two BLAS threads on two busy cores made each
    # fold's eigh 4-8x slower (0.5-0.9 s against 0.12 s); the same numbers either way (as the category probe).
    with threadpool_limits(limits=1, user_api="blas"):
        for index in indices:
            train, test = splits[index]
            model = _ridge_pipeline(alphas, clip_sd)
            model.fit(features[train], targets[train])
            fits.append(FoldFit(index, test, model.predict(features[test]).reshape(len(test), -1),
                                targets[train].mean(axis=0),
                                np.broadcast_to(model[-1].alpha_, (targets.shape[1],)).copy()))
    return fits


def assemble_predictions(fits: Sequence[FoldFit], targets: np.ndarray, groups: np.ndarray, cv: CrossValidation,
                         target_names: Sequence[str] = TARGETS) -> CVPredictions:
    """CVPredictions from the fits of every fold of `cv` over (N, T) targets and (N,) groups."""
    targets = np.asarray(targets, dtype=np.float64).reshape(len(targets), -1)
    groups = np.asarray(groups).astype(str)
    predictions, train_means = np.empty_like(targets), np.empty_like(targets)
    fold = np.empty(len(targets), dtype=int)
    held_out = np.empty(len(targets), dtype=object)
    chosen = np.empty((len(fits), targets.shape[1]))
    for fit in sorted(fits, key=lambda fit: fit.index):
        predictions[fit.test], train_means[fit.test], fold[fit.test] = fit.predictions, fit.train_mean, fit.index
        held_out[fit.test] = f"fold {fit.index + 1}" if cv.definition.k_fold else groups[fit.test[0]]
        chosen[fit.index] = fit.alphas
    return CVPredictions(cv.scheme, targets, predictions, fold, held_out.astype(str), chosen, train_means,
                         tuple(target_names))


def _checked(features: np.ndarray, targets: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, ...]:
    features = np.asarray(features, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64).reshape(len(targets), -1)
    groups = np.asarray(groups).astype(str)
    _validate(features, targets, groups)
    return features, targets, groups


@dataclass(frozen=True)
class TargetMetrics:
    target: str
    r: float
    r2: float
    rmse: float
    r_ci: tuple[float, float]
    r2_ci: tuple[float, float]
    rmse_ci: tuple[float, float]


def target_metrics(y_true: np.ndarray, y_pred: np.ndarray, target: str, *, n_boot: int = 1000,
                   seed: int = 0) -> TargetMetrics:
    """Pearson r, R² and RMSE of (N,) predictions with percentile 95% CIs over bootstrapped images."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    point = _scores(y_true[None], y_pred[None])
    rows = _resample_rows(len(y_true), n_boot, seed)
    resampled = _scores(y_true[rows], y_pred[rows])
    low, high = np.nanpercentile(resampled, [2.5, 97.5], axis=1)
    return TargetMetrics(target, *(float(value[0]) for value in point),
                         *((float(low[k]), float(high[k])) for k in range(3)))


def metrics_table(cv: CVPredictions, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per target: target, scheme, r, r_lo, r_hi, r2, r2_lo, r2_hi, rmse, rmse_lo, rmse_hi, n."""
    rows = []
    for column, target in enumerate(cv.target_names):
        metrics = target_metrics(cv.targets[:, column], cv.predictions[:, column], target, n_boot=n_boot, seed=seed)
        rows.append({"target": target, "scheme": cv.scheme,
                     "r": metrics.r, "r_lo": metrics.r_ci[0], "r_hi": metrics.r_ci[1],
                     "r2": metrics.r2, "r2_lo": metrics.r2_ci[0], "r2_hi": metrics.r2_ci[1],
                     "rmse": metrics.rmse, "rmse_lo": metrics.rmse_ci[0], "rmse_hi": metrics.rmse_ci[1],
                     "n": len(cv.targets)})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class ReliabilityCeiling:
    target: str
    ceiling: float
    ci: tuple[float, float]


def reliability_ceiling(means: np.ndarray, sds: np.ndarray, counts: np.ndarray) -> float:
    """1 − mean(SD²/N) / var(mean rating) of (n_images,) arrays; var with ddof=0, as R²'s SStot / n."""
    return float(_ceilings(*(np.asarray(values, float)[None] for values in (means, sds, counts)))[0])


def target_ceiling(means: np.ndarray, sds: np.ndarray, counts: np.ndarray, target: str, *, n_boot: int = 1000,
                   seed: int = 0) -> ReliabilityCeiling:
    """Ceiling of (n_images,) ratings with a percentile 95% CI over the same image resamples as the metrics."""
    means, sds, counts = (np.asarray(values, float) for values in (means, sds, counts))
    rows = _resample_rows(len(means), n_boot, seed)
    low, high = np.nanpercentile(_ceilings(means[rows], sds[rows], counts[rows]), [2.5, 97.5])
    return ReliabilityCeiling(target, reliability_ceiling(means, sds, counts), (float(low), float(high)))


def rating_noise_columns(metadata: pd.DataFrame, target: str) -> tuple[str, str] | None:
    """The (SD column, N column) of a target, e.g. ("Valence_SD", "Valence_N") matched case-insensitively, or None."""
    by_name = {str(column).lower(): str(column) for column in metadata.columns}
    sd_column, n_column = by_name.get(f"{target}_sd"), by_name.get(f"{target}_n")
    return None if sd_column is None or n_column is None else (sd_column, n_column)


def ceiling_table(metadata: pd.DataFrame, targets: Sequence[str] = TARGETS, *, n_boot: int = 1000,
                  seed: int = 0) -> pd.DataFrame:
    """Rows target, ceiling, ceiling_lo, ceiling_hi, ceiling_from ("SD col / N col") of targets with both columns.

    A dataset without them gives an empty table; an SD that is missing or negative, or an N below 2, raises
    ValueError naming the column and images.
    """
    rows = []
    for target in targets:
        columns = rating_noise_columns(metadata, target)
        if columns is None:
            continue
        sds, counts = (pd.to_numeric(metadata[column], errors="coerce").to_numpy(float) for column in columns)
        for column, bad in ((columns[0], ~(sds >= 0)), (columns[1], ~(counts >= 2))):
            if bad.any():
                ids = metadata["image_id"].astype(str).to_numpy()[bad]
                raise ValueError(f"column {column} has {int(bad.sum())} unusable value(s) (images "
                                 f"{', '.join(ids[:3])}{', ...' if len(ids) > 3 else ''}): an SD must be a number "
                                 f">= 0 and N a count >= 2 raters; fix or remove the column to drop the ceiling.")
        ceiling = target_ceiling(metadata[target].to_numpy(float), sds, counts, target, n_boot=n_boot, seed=seed)
        rows.append({"target": target, "ceiling": ceiling.ceiling, "ceiling_lo": ceiling.ci[0],
                     "ceiling_hi": ceiling.ci[1], "ceiling_from": " / ".join(columns)})
    return pd.DataFrame(rows, columns=["target", "ceiling", "ceiling_lo", "ceiling_hi", "ceiling_from"])


def with_ceiling(metrics: pd.DataFrame, ceilings: pd.DataFrame) -> pd.DataFrame:
    """Metrics rows + ceiling, ceiling_lo, ceiling_hi and share_explainable = r2 / ceiling (NaN without a ceiling)."""
    merged = metrics.merge(ceilings.drop(columns="ceiling_from"), on="target", how="left")
    merged["share_explainable"] = merged["r2"] / merged["ceiling"]
    return merged


def per_group_metrics(cv: CVPredictions) -> pd.DataFrame:
    """One row per held-out group x target: group, target, n, r (NaN if n < 3), r2 (NaN if n < 2), rmse."""
    rows = []
    for group in np.unique(cv.held_out_group):
        members = cv.held_out_group == group
        for column, target in enumerate(cv.target_names):
            truth, guess = cv.targets[members, column], cv.predictions[members, column]
            r, r2, rmse = (value[0] for value in _scores(truth[None], guess[None]))
            rows.append({"group": group, "target": target, "n": int(members.sum()),
                         "r": r if members.sum() >= 3 else np.nan, "r2": r2 if members.sum() >= 2 else np.nan,
                         "rmse": rmse})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class PairedDifference:
    target: str
    metric: str
    difference: float
    ci: tuple[float, float]
    p_value: float
    n_boot: int


def paired_difference(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, target: str, *,
                      metric: str = "r2", n_boot: int = 1000, seed: int = 0) -> PairedDifference:
    """metric(a) − metric(b) on the same (N,) images; bootstrap CI and two-sided p from shared resamples.

    p = 2 · min(share of resampled differences ≤ 0, share ≥ 0), clipped to [1/n_boot, 1].
    """
    index = {"r": 0, "r2": 1, "rmse": 2}[metric]
    y_true, pred_a, pred_b = (np.asarray(values, float) for values in (y_true, pred_a, pred_b))
    difference = _scores(y_true[None], pred_a[None])[index][0] - _scores(y_true[None], pred_b[None])[index][0]
    rows = _resample_rows(len(y_true), n_boot, seed)
    resampled = _scores(y_true[rows], pred_a[rows])[index] - _scores(y_true[rows], pred_b[rows])[index]
    low, high = np.nanpercentile(resampled, [2.5, 97.5])
    if np.allclose(resampled, 0):
        p_value = 1.0
    else:
        p_value = 2 * min(np.mean(resampled <= 0), np.mean(resampled >= 0))
    return PairedDifference(target, metric, float(difference), (float(low), float(high)),
                            float(np.clip(p_value, 1 / n_boot, 1.0)), n_boot)


def standardise_and_clip(clip_sd: float | None) -> list:
    """Pipeline steps every probe starts with: StandardScaler, then the fixed ±clip_sd clip (module docstring)."""
    steps = [StandardScaler()]
    if clip_sd is not None:
        steps.append(FunctionTransformer(np.clip, kw_args={"a_min": -clip_sd, "a_max": clip_sd}))
    return steps


def _ridge_pipeline(alphas: np.ndarray, clip_sd: float | None):
    return make_pipeline(*standardise_and_clip(clip_sd), RidgeCV(alphas=alphas, alpha_per_target=True))


def _validate(features: np.ndarray, targets: np.ndarray, groups: np.ndarray) -> None:
    if features.ndim != 2 or len(features) != len(targets) or len(groups) != len(features):
        raise ValueError(f"Need features (N, D), targets (N, T) and groups (N,) of one length; got "
                         f"{features.shape}, {targets.shape}, {groups.shape}.")
    if not np.isfinite(features).all():
        raise ValueError("The features contain NaN or infinite values; re-extract them (Features page).")
    if not np.isfinite(targets).all():
        raise ValueError("The ratings contain NaN values; every image needs valence and arousal.")


def _resample_rows(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _ceilings(means: np.ndarray, sds: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Row-wise ceiling of (B, n) arrays: SD²/N is the error variance of a mean of N ratings (SD with ddof=1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1 - (sds ** 2 / counts).mean(axis=1) / means.var(axis=1)


def _scores(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row-wise Pearson r, R² and RMSE of (B, N) arrays, vectorised over the B resamples."""
    residual = y_true - y_pred
    sum_squares = ((y_true - y_true.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1 - (residual ** 2).sum(axis=1) / sum_squares
        centred_true = y_true - y_true.mean(axis=1, keepdims=True)
        centred_pred = y_pred - y_pred.mean(axis=1, keepdims=True)
        r = (centred_true * centred_pred).sum(axis=1) / np.sqrt(
            (centred_true ** 2).sum(axis=1) * (centred_pred ** 2).sum(axis=1))
    rmse = np.sqrt((residual ** 2).mean(axis=1))
    return r, r2, rmse
