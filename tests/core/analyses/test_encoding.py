"""Encoding models (docs/science.md §11): equality with scikit-learn's Ridge and RidgeCV, known answers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline

from core.analyses.affect import standardise_and_clip
from core.analyses.encoding import (ENCODING_ALPHAS, EncodingScores, encoding_scores, layer_curve,
                                    split_half_reliability)
from core.progress import Progress


def _planted(rng: np.random.Generator, n_items: int, n_features: int, noise_sd: np.ndarray,
             n_reps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features X (N, D) ~ N(0, I) and responses Y = X W + noise with unit signal variance per unit (|w| = 1):
    (N, U), or (R, N, U) with independent noise of SD `noise_sd` (U,) in every repetition."""
    features = rng.standard_normal((n_items, n_features))
    weights = rng.standard_normal((n_features, len(noise_sd)))
    signal = features @ (weights / np.linalg.norm(weights, axis=0))
    shape = (n_items, len(noise_sd)) if n_reps is None else (n_reps, n_items, len(noise_sd))
    return features, signal + rng.standard_normal(shape) * noise_sd


def _sklearn_predictions(features, responses, estimator, n_splits=5, seed=0):
    """Out-of-fold predictions and (n_folds, U) alphas of the probes' scaling + `estimator` refitted per fold."""
    predictions, alphas = np.empty_like(responses), []
    for train, test in KFold(n_splits, shuffle=True, random_state=seed).split(features):
        model = make_pipeline(*standardise_and_clip(10.0), estimator).fit(features[train], responses[train])
        predictions[test] = model.predict(features[test])
        alphas.append(np.broadcast_to(getattr(model[-1], "alpha_", getattr(model[-1], "alpha", None)),
                                      (responses.shape[1],)))
    return predictions, np.array(alphas, dtype=float)


@pytest.mark.parametrize("n_items, n_features, form", [(60, 10, "primal"), (40, 300, "dual")])
def test_a_fixed_alpha_gives_sklearn_ridges_out_of_fold_predictions(n_items, n_features, form) -> None:
    rng = np.random.default_rng(0)
    features, responses = _planted(rng, n_items, n_features, np.full(7, 1.0))
    scores = encoding_scores(features, responses, alphas=[3.0])
    expected, _ = _sklearn_predictions(features, responses, Ridge(alpha=3.0))
    assert scores.form == form
    np.testing.assert_allclose(scores.predictions, expected, rtol=0, atol=1e-8)
    assert (scores.alphas == 3.0).all()


@pytest.mark.parametrize("n_items, n_features", [(60, 10), (40, 300)])
@pytest.mark.parametrize("alpha_per_unit", [True, False])
def test_alpha_by_leave_one_out_equals_ridgecv(n_items, n_features, alpha_per_unit) -> None:
    rng = np.random.default_rng(1)
    features, responses = _planted(rng, n_items, n_features, np.array([0.1, 0.5, 1.0, 2.0, 5.0, 20.0]))
    scores = encoding_scores(features, responses, alpha_per_unit=alpha_per_unit)
    expected, alphas = _sklearn_predictions(features, responses,
                                            RidgeCV(alphas=ENCODING_ALPHAS, alpha_per_target=alpha_per_unit))
    np.testing.assert_array_equal(scores.alphas, alphas)
    np.testing.assert_allclose(scores.predictions, expected, rtol=0, atol=1e-8)
    if alpha_per_unit:  # the units differ in noise, so their alphas do too
        assert len(np.unique(scores.alphas)) > 1


def test_near_interpolation_the_leave_one_out_errors_keep_ridgecvs_precision() -> None:
    # D ≫ n and small alphas: the hat matrix is nearly I, so 1 − h and y − ŷ cancel to a few digits. Written as
    # sums of α / (λ + α) the leave-one-out errors stay as precise as RidgeCV's, and every alpha agrees (the form
    # with 1 − h chose another alpha for 20% of (fold, unit) at D = 20,000, N = 92).
    rng = np.random.default_rng(10)
    features = rng.standard_normal((50, 4000))
    responses = features @ rng.standard_normal((4000, 200)) / np.sqrt(4000) + rng.standard_normal((50, 200))
    scores = encoding_scores(features, responses)
    expected, alphas = _sklearn_predictions(features, responses, RidgeCV(alphas=ENCODING_ALPHAS, alpha_per_target=True))
    assert scores.form == "dual" and (scores.alphas == ENCODING_ALPHAS[0]).any()
    np.testing.assert_array_equal(scores.alphas, alphas)
    np.testing.assert_allclose(scores.predictions, expected, rtol=0, atol=1e-8)


def test_r_and_r2_are_those_of_the_pooled_out_of_fold_predictions() -> None:
    rng = np.random.default_rng(2)
    features, responses = _planted(rng, 80, 6, np.array([0.5, 1.0, 3.0]))
    scores = encoding_scores(features, responses)
    for unit in range(3):
        truth, guess = responses[:, unit], scores.predictions[:, unit]
        assert scores.r[unit] == pytest.approx(np.corrcoef(truth, guess)[0, 1], abs=1e-12)
        assert scores.r2[unit] == pytest.approx(1 - np.sum((truth - guess) ** 2) / np.sum((truth - truth.mean()) ** 2),
                                                abs=1e-12)
    assert sorted(np.bincount(scores.fold)) == [16] * 5


def test_planted_linear_map_reaches_its_theoretical_r_and_r2() -> None:
    # y = x·w + e, x ~ N(0, I_D), |w| = 1, e ~ N(0, σ²): the ideal predictor has r = ρ = 1 / sqrt(1 + σ²). Near-OLS
    # weights fitted on n items add prediction noise of variance δ² = σ² (D / (n − D − 1) + 1 / n) (weights and
    # intercept), independent of the held-out noise, so r = ρ / sqrt(1 + δ²) and R² = 1 − (σ² + δ²) / (1 + σ²).
    rng = np.random.default_rng(4)
    n_items, n_features, per_level = 2000, 5, 8
    rho = np.repeat([0.3, 0.6, 0.8, 0.95], per_level)
    noise_var = 1 / rho ** 2 - 1
    features, responses = _planted(rng, n_items, n_features, np.sqrt(noise_var))
    scores = encoding_scores(features, responses, alphas=[1e-6])
    n_train = n_items * 4 / 5
    excess = noise_var * (n_features / (n_train - n_features - 1) + 1 / n_train)
    r_theory, r2_theory = rho / np.sqrt(1 + excess), 1 - (noise_var + excess) / (1 + noise_var)
    r_level, r2_level = (values.reshape(4, per_level).mean(axis=1) for values in (scores.r, scores.r2))
    # sampling SD of r over N items is about (1 − ρ²) / sqrt(N), of R² about 2ρ(1 − ρ²) / sqrt(N); means of 8 units
    se_r = (1 - rho[::per_level] ** 2) / np.sqrt(n_items * per_level)
    np.testing.assert_array_less(np.abs(r_level - r_theory[::per_level]), 4 * se_r)
    np.testing.assert_array_less(np.abs(r2_level - r2_theory[::per_level]), 8 * rho[::per_level] * se_r)
    # the default alpha grid chooses its alpha by leave-one-out and stays as close (isotropic features: shrinkage
    # scales the predictions, which leaves r as it is)
    default = encoding_scores(features, responses).r.reshape(4, per_level).mean(axis=1)
    np.testing.assert_array_less(np.abs(default - r_theory[::per_level]), 4 * se_r)


@pytest.mark.parametrize("n_reps", [4, 3])
def test_split_half_reliability_is_the_reliability_of_the_mean_of_all_repetitions(n_reps) -> None:
    # R repetitions of signal (variance 1) + independent noise (variance σ²): the mean of R has reliability
    # 1 / (1 + σ² / R), which the Spearman-Brown corrected split-half r estimates.
    rng = np.random.default_rng(5)
    n_items, per_level = 2000, 10
    noise_var = np.repeat([0.5, 2.0, 8.0], per_level)
    signal = rng.standard_normal((n_items, len(noise_var)))
    repetitions = signal + rng.standard_normal((n_reps, n_items, len(noise_var))) * np.sqrt(noise_var)
    reliability = split_half_reliability(repetitions, n_splits=50, seed=0)
    theory = 1 / (1 + noise_var[::per_level] / n_reps)
    level = reliability.reshape(3, per_level).mean(axis=1)
    # sampling SD: r_half of two means of m = floor(R/2) repetitions, ρ_h = 1 / (1 + σ² / m), has SD about
    # (1 − ρ_h²) / sqrt(N); Spearman-Brown with k = R / m multiplies it by k / (1 + (k − 1) ρ_h)²; means of 10 units
    half, k = n_reps // 2, n_reps / (n_reps // 2)
    rho_half = 1 / (1 + noise_var[::per_level] / half)
    se = k / (1 + (k - 1) * rho_half) ** 2 * (1 - rho_half ** 2) / np.sqrt(n_items * per_level)
    np.testing.assert_array_less(np.abs(level - theory), 4 * se)


def test_r_over_sqrt_reliability_is_one_for_a_linear_unit_and_noise_units_are_left_out() -> None:
    rng = np.random.default_rng(6)
    n_items, n_reps = 2000, 4
    features, repetitions = _planted(rng, n_items, 4, np.full(12, 1.5), n_reps=n_reps)
    noise = rng.standard_normal((n_reps, n_items, 4))  # four units with no signal at all
    # a noise unit's r_c has SD about 2 / sqrt(N) (r_half's 1 / sqrt(N), doubled by Spearman-Brown): 0.045 at
    # N = 2000, so the threshold is set at 4 SDs (0.18, rounded up) rather than the default 0.1 (2 SDs)
    scores = encoding_scores(features, np.concatenate([repetitions, noise], axis=2), alphas=[1e-6],
                             min_reliability=0.2)
    assert isinstance(scores, EncodingScores)
    # noise units: reliability ~ 0, excluded; r ~ 0 within sampling error (SD 1 / sqrt(N), plus the small negative
    # bias of out-of-fold predictions of noise)
    assert not scores.reliable[12:].any() and scores.reliable[:12].all() and scores.n_reliable == 12
    np.testing.assert_array_less(np.abs(scores.reliability[12:]), 4 * 2 / np.sqrt(n_items))
    np.testing.assert_array_less(np.abs(scores.r[12:]), 5 / np.sqrt(n_items))
    # linear units: r² ≈ reliability = 1 / (1 + σ² / R) (near-OLS, D ≪ N), so r / sqrt(reliability) ≈ 1
    assert scores.median_r == pytest.approx(np.sqrt(1 / (1 + 1.5 ** 2 / n_reps)), abs=0.02)
    assert scores.median_r_normalised == pytest.approx(1.0, abs=0.02)
    assert scores.median_r == pytest.approx(np.median(scores.r[:12]), abs=1e-15)
    assert scores.median_r2 == pytest.approx(np.median(scores.r2[:12]), abs=1e-15)


def test_a_unit_shrunk_to_the_training_mean_scores_minus_the_between_fold_share() -> None:
    # Predictions equal to each training fold's mean anticorrelate with the held-out responses: with K equal folds,
    # p_k − mean p = −(ȳ_k − ȳ) / (K − 1), so r = −sqrt(SS between folds / SS total) exactly, whose expectation for
    # noise is about −sqrt((K − 1) / (N − 1)) (−0.21 at N = 90, K = 5).
    rng = np.random.default_rng(7)
    features, responses = rng.standard_normal((90, 30)), rng.standard_normal((90, 200))
    scores = encoding_scores(features, responses, alphas=[1e14])
    fold_means = np.array([responses[scores.fold == k].mean(axis=0) for k in range(5)])
    between = np.sum([np.sum(scores.fold == k) * (fold_means[k] - responses.mean(axis=0)) ** 2 for k in range(5)],
                     axis=0)
    total = np.sum((responses - responses.mean(axis=0)) ** 2, axis=0)
    np.testing.assert_allclose(scores.r, -np.sqrt(between / total), atol=1e-6)
    assert scores.median_r == pytest.approx(-np.sqrt(4 / 89), abs=0.05)
    assert np.isnan(scores.reliability).all() and scores.reliable.all() and np.isnan(scores.median_r_normalised)


def test_layer_curve_rows_follow_the_layers_and_reuse_one_reliability() -> None:
    rng = np.random.default_rng(8)
    features, repetitions = _planted(rng, 300, 8, np.full(6, 1.0), n_reps=2)
    layers = {"block0": rng.standard_normal((300, 8)), "block1": features, "head": np.hstack([features, features])}
    reports: list[Progress] = []
    curve = layer_curve(layers, repetitions, progress=reports.append)
    assert list(curve["layer"]) == ["block0", "block1", "head"]
    np.testing.assert_allclose(curve["depth"], [0.0, 0.5, 1.0])
    assert curve.loc[0, "median_r"] < 0.2 < 0.6 < curve.loc[1, "median_r"]
    assert curve.loc[1, "median_r"] == pytest.approx(encoding_scores(features, repetitions).median_r, abs=1e-12)
    assert curve.loc[1, "median_r"] == pytest.approx(curve.loc[2, "median_r"], abs=0.01)  # duplicated columns
    assert (curve["n_reliable"] == 6).all() and (curve["n_units"] == 6).all()
    assert [report.done for report in reports] == list(range(16)) and reports[-1].total == 15
    assert reports[-1].message == "head · fold 5/5"
    assert isinstance(curve, pd.DataFrame)


def test_progress_counts_the_folds() -> None:
    rng = np.random.default_rng(9)
    features, responses = _planted(rng, 50, 4, np.ones(2))
    reports: list[Progress] = []
    encoding_scores(features, responses, n_splits=4, progress=reports.append)
    assert [(report.done, report.total) for report in reports] == [(k, 4) for k in range(5)]


@pytest.mark.parametrize("features, responses, kwargs, message", [
    (np.zeros((10, 3)), np.zeros((9, 2)), {}, "same N items"),
    (np.zeros((10, 3)), np.zeros((1, 10, 2)), {}, "R >= 2"),
    (np.zeros((10, 3)), np.zeros((10, 2)), {"alphas": [0.0, 1.0]}, "positive"),
    (np.zeros((10, 3)), np.zeros((10, 2)), {"n_splits": 6}, "2 <= K <= 5"),
    (np.full((10, 3), np.nan), np.zeros((10, 2)), {}, "NaN"),
])
def test_inputs_are_checked_once_with_a_message(features, responses, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        encoding_scores(features, responses, **kwargs)
