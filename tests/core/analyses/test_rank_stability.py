"""Rank stability, paired differences and agreement of measures: hand-computed answers, scipy's Friedman statistic
and Spearman ρ, identical models ranked alike, a clearly best model 1st in every resample."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import friedmanchisquare, spearmanr

from core.analyses.rank_stability import kendalls_w, measure_agreement, paired_difference, rank_stability


def test_hand_computed_ranks() -> None:
    samples = np.array([[0.9, 0.5, 0.1, 0.3],
                        [0.2, 0.8, 0.1, 0.3],
                        [0.9, 0.5, 0.6, 0.7],
                        [0.4, 0.4, 0.1, 0.3]])  # last resample: a and b tie for 1st
    result = rank_stability(samples, ["a", "b", "c", "d"])
    np.testing.assert_array_equal(result.ranks, [[1, 2, 4, 3], [3, 1, 4, 2], [1, 4, 3, 2], [1, 1, 4, 3]])
    np.testing.assert_allclose(result.share_first, [0.75, 0.5, 0, 0])
    np.testing.assert_allclose(result.share_top3, [1, 0.75, 0.25, 1])
    np.testing.assert_allclose(result.median_rank, [1, 1.5, 4, 2.5])
    np.testing.assert_array_equal(result.rank_low, [1, 1, 3, 2])
    np.testing.assert_array_equal(result.rank_high, [3, 4, 4, 3])
    assert list(result.table().index) == ["a", "b", "c", "d"]


def test_identical_models_share_their_rank_interval_and_a_clear_winner_is_always_first() -> None:
    rng = np.random.default_rng(0)
    common = rng.normal(size=(1000, 1)) * 0.05  # the resample's shared shift: paired samples
    twin = rng.normal(size=1000) * 0.1
    samples = common + np.column_stack([1.0 + 0.1 * rng.normal(size=1000), twin, twin,
                                        0.1 * rng.normal(size=1000), 0.1 * rng.normal(size=1000)])
    result = rank_stability(samples, ["best", "twin1", "twin2", "other1", "other2"])
    assert result.share_first[0] == 1.0 and result.rank_low[0] == result.rank_high[0] == 1
    assert (result.rank_low[1], result.rank_high[1]) == (result.rank_low[2], result.rank_high[2])
    assert result.rank_low[1] < result.rank_high[1]  # not a degenerate interval: they do move
    assert result.share_top3[1] == result.share_top3[2] and result.median_rank[1] == result.median_rank[2]


def test_resamples_with_a_missing_score_are_dropped() -> None:
    samples = np.array([[1.0, 0.0], [np.nan, 1.0], [0.0, 1.0]])
    result = rank_stability(samples, ["a", "b"])
    assert result.n_dropped == 1 and result.ranks.shape == (2, 2)
    with pytest.raises(ValueError, match="n_models = 3"):
        rank_stability(samples, ["a", "b", "c"])


def test_paired_difference() -> None:
    result = paired_difference(np.array([1.0, 3.0, 4.0, 5.0]), np.array([2.0, 2.0, 2.0, 2.0]), 3.5, 2.0)
    assert result.difference == 1.5 and result.n_bootstrap == 4
    assert result.p_value == 0.5  # differences −1, 1, 2, 3: share <= 0 is 1/4
    np.testing.assert_allclose([result.ci_low, result.ci_high], [-0.85, 2.925], atol=1e-12)  # linear percentiles
    rng = np.random.default_rng(3)
    noise = rng.normal(size=500)
    assert paired_difference(noise + 1, noise, 1, 0).p_value == 0.0
    same = paired_difference(noise, noise[::-1], 0, 0)
    assert same.p_value > 0.5 and same.ci_low < 0 < same.ci_high


def test_kendalls_w_known_answers() -> None:
    # Hand computation: rank sums 6, 8, 7, 9 -> S = 5; W = 12 S / (m² (n³ − n)) = 60 / 540.
    scores = np.array([[1, 1, 4], [2, 3, 3], [3, 2, 2], [4, 4, 1]], dtype=float)
    assert kendalls_w(scores) == pytest.approx(1 / 9, abs=1e-12)
    # Ties in the third measure (ranks 1.5, 1.5, 3.5, 3.5): S = 34, T = 12, W = 408 / (540 − 36) = 17/21.
    tied = np.array([[1, 1, 1], [2, 3, 1], [3, 2, 2], [4, 4, 2]], dtype=float)
    assert kendalls_w(tied) == pytest.approx(17 / 21, abs=1e-12)
    assert kendalls_w(np.column_stack([np.arange(6.0)] * 3)) == pytest.approx(1.0)


def test_kendalls_w_equals_friedmans_statistic() -> None:
    """W = χ²_Friedman / (m (n − 1)), with scipy's tie correction; models missing a measure are left out."""
    rng = np.random.default_rng(4)
    scores = np.round(rng.normal(size=(9, 5)) + np.arange(9)[:, None] * 0.3, 1)
    chi2 = friedmanchisquare(*scores).statistic
    assert kendalls_w(scores) == pytest.approx(chi2 / (5 * 8), abs=1e-12)
    with_missing = np.vstack([scores, [np.nan, 1, 2, 3, 4]])
    assert kendalls_w(with_missing) == kendalls_w(scores)


def test_measure_agreement_is_pairwise_spearman_over_the_models_with_both() -> None:
    rng = np.random.default_rng(5)
    scores = rng.normal(size=(12, 3))
    scores[2, 0] = scores[7, 1] = np.nan
    table = measure_agreement(scores, ["top1", "rsa", "cka"])
    both = np.isfinite(scores[:, 0]) & np.isfinite(scores[:, 1])
    assert table.loc["top1", "rsa"] == pytest.approx(spearmanr(scores[both, 0], scores[both, 1]).statistic, abs=1e-12)
    assert table.loc["rsa", "cka"] == pytest.approx(spearmanr(scores[[i for i in range(12) if i != 7], 1],
                                                              scores[[i for i in range(12) if i != 7], 2]).statistic)
    assert table.loc["cka", "cka"] == 1.0 and list(table.columns) == ["top1", "rsa", "cka"]
    sparse = measure_agreement(np.array([[1.0, 2.0], [2.0, np.nan], [3.0, 1.0], [4.0, np.nan]]), ["a", "b"])
    assert np.isnan(sparse.loc["a", "b"])  # 2 models with both: too few
