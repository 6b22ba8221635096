"""Permutation nulls: equal to a naive loop over explicitly permuted RDMs / embeddings (scipy, the Similarity
page's own measures), p uniform for unrelated representations, tiny for a representation against itself, and the
width inflation of linear CKA visible in its null."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform
from scipy.stats import kendalltau, kstest, pearsonr, spearmanr

from core.analyses import permutation_null
from core.analyses.permutation_null import (embedding_null, null_summary, permutations, permuted_inner_products,
                                            rsa_null)
from core.analyses.rsa_inference import evaluate_rsa
from core.analyses.similarity import SimilaritySettings, compare, prepare, similarity

RNG = np.random.default_rng(7)
X = RNG.normal(size=(24, 6))
Y = X @ RNG.normal(size=(6, 9)) + RNG.normal(size=(24, 9))
RDM_X, RDM_Y = pdist(X), pdist(Y, "cosine")


def naive_rdm_null(a: np.ndarray, b: np.ndarray, compare_pair, n_perm: int, seed: int) -> np.ndarray:
    """(n_perm,) compare_pair(a, b with its items permuted), building each permuted square RDM explicitly."""
    square = squareform(b)
    return np.array([compare_pair(a, squareform(square[np.ix_(perm, perm)], checks=False))
                     for perm in permutations(len(square), n_perm, seed)])


@pytest.mark.parametrize("n_items", [1, 2, 7, 150])
def test_blocked_inner_products_equal_the_full_sum(n_items, monkeypatch) -> None:
    """Blocks of rows with the symmetric half-gather (blocks of 32 entries here: many blocks, a ragged last one)."""
    monkeypatch.setattr(permutation_null, "BLOCK_ELEMENTS", 32)
    rng = np.random.default_rng(n_items)
    a, b = (matrix + matrix.T for matrix in rng.normal(size=(2, n_items, n_items)))
    perms = permutations(n_items, 6, 0)
    expected = [np.sum(a * b[np.ix_(perm, perm)]) for perm in perms]
    np.testing.assert_allclose(permuted_inner_products(a, b, perms), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("method", "reference"), [
    ("spearman", lambda a, b: spearmanr(a, b).statistic),
    ("corr", lambda a, b: pearsonr(a, b).statistic),
    ("rho-a", lambda a, b: spearmanr(a, b).statistic),  # no ties: rho-a = Spearman
    ("cosine", lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)),
    ("tau-a", lambda a, b: kendalltau(a, b).statistic),  # no ties: tau-a = tau-b
])
def test_rsa_null_equals_a_loop_over_permuted_rdms(method, reference) -> None:
    result = rsa_null(RDM_X, RDM_Y, method=method, n_perm=40, seed=3)
    naive = naive_rdm_null(RDM_X, RDM_Y, reference, 40, 3)
    np.testing.assert_allclose(result.null, naive, rtol=0, atol=1e-10)
    assert result.observed == pytest.approx(reference(RDM_X, RDM_Y), abs=1e-12)
    assert result.p == (1 + np.sum(naive >= result.observed)) / 41
    assert result.z == pytest.approx((result.observed - naive.mean()) / naive.std(ddof=1), abs=1e-9)
    assert result.q95 == pytest.approx(np.percentile(naive, 95), abs=1e-10)


@pytest.mark.parametrize(("method", "reference"), [
    ("spearman", lambda a, b: spearmanr(a, b).statistic),
    ("cosine", lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)),
    ("tau-a", lambda a, b: kendalltau(a, b).statistic),
])
def test_a_null_against_subjects_is_the_mean_over_subjects_permuted_alike(method, reference) -> None:
    subjects = np.array([pdist(Y + RNG.normal(size=Y.shape), "cosine") for _ in range(4)])  # (S, M)
    result = rsa_null(RDM_X, subjects, method=method, n_perm=20, seed=6)
    squares = [squareform(subject) for subject in subjects]
    naive = [np.mean([reference(RDM_X, squareform(square[np.ix_(perm, perm)], checks=False)) for square in squares])
             for perm in permutations(24, 20, 6)]
    np.testing.assert_allclose(result.null, naive, atol=1e-10)
    evaluation = evaluate_rsa(RDM_X[None], subjects, method=method)  # the Brain page's number of a fixed model
    assert result.observed == pytest.approx(float(evaluation.mean[0]), abs=1e-12)


def test_rsa_null_with_tied_dissimilarities() -> None:
    tied = np.round(RDM_Y, 1)  # many ties: average ranks must be permuted, not recomputed differently
    assert len(np.unique(tied)) < len(tied) / 5
    result = rsa_null(RDM_X, tied, n_perm=30, seed=1)
    np.testing.assert_allclose(result.null, naive_rdm_null(RDM_X, tied, lambda a, b: spearmanr(a, b).statistic, 30, 1),
                               atol=1e-10)


@pytest.mark.parametrize("measure", ["cka_linear", "mutual_knn", "rsa_spearman", "rsa_pearson", "rsa_tau_a",
                                     "rsa_cosine", "cka_debiased", "procrustes"])
def test_embedding_null_equals_the_similarity_page_on_permuted_rows(measure) -> None:
    settings = SimilaritySettings(k=5)
    result = embedding_null(X, Y, measure, settings=settings, n_perm=25, seed=2)
    first = prepare(X, settings)
    naive = [similarity(first, prepare(Y[perm], settings), measure) for perm in permutations(len(X), 25, 2)]
    np.testing.assert_allclose(result.null, naive, rtol=0, atol=1e-10)
    assert result.observed == compare({"x": X}, {"y": Y}, (measure,), settings).value(measure, "x", "y")
    assert result.beats_null and result.p == 1 / 26  # Y is a noisy linear map of X: no permutation comes close


def test_a_distance_counts_the_null_below_the_observed() -> None:
    result = embedding_null(X, Y, "procrustes", n_perm=25, seed=2)
    assert result.observed < result.q95 == pytest.approx(np.percentile(result.null, 5))
    assert result.z < -3


def test_a_callable_measure_is_recomputed_on_permuted_rows() -> None:
    def top_correlation(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a[:, 0], b[:, 0])[0, 1])

    result = embedding_null(X, Y, top_correlation, n_perm=20, seed=4)
    expected = [top_correlation(X, Y[perm]) for perm in permutations(len(X), 20, 4)]
    np.testing.assert_allclose(result.null, expected, atol=1e-12)
    assert result.n_perm == 20 and result.seed == 4


def test_p_is_uniform_against_a_shuffled_copy_and_tiny_against_itself() -> None:
    rng = np.random.default_rng(11)
    features = rng.normal(size=(20, 5))
    p_values = []
    for seed in range(200):
        shuffled = features[np.random.default_rng(10_000 + seed).permutation(20)]
        p_values.append(embedding_null(features, shuffled, "cka_linear", n_perm=99, seed=seed).p)
    assert kstest(p_values, "uniform").pvalue > 0.05
    assert np.mean(p_values) == pytest.approx(0.5, abs=0.06)
    assert np.mean(np.array(p_values) < 0.05) < 0.1
    itself = embedding_null(features, features, "cka_linear", n_perm=199, seed=0)
    assert itself.observed == pytest.approx(1.0) and itself.p == 1 / 200 < 0.01 and itself.beats_null
    rdm = pdist(features)
    assert rsa_null(rdm, rdm, n_perm=199).p < 0.01


def test_wide_random_features_have_a_high_cka_null() -> None:
    """Width inflation (arXiv 2602.14486): unrelated 4,000-wide random features have linear CKA near 1 and so does
    every permutation; the null shows it, and the cell does not beat it."""
    rng = np.random.default_rng(5)
    wide_a, wide_b = rng.normal(size=(40, 4000)), rng.normal(size=(40, 4000))
    wide = embedding_null(wide_a, wide_b, "cka_linear", n_perm=200, seed=0)
    narrow = embedding_null(wide_a[:, :5], wide_b[:, :5], "cka_linear", n_perm=200, seed=0)
    assert wide.observed > 0.9 and np.mean(wide.null) > 0.9 and wide.q95 > 0.9
    assert np.mean(narrow.null) < 0.3
    assert not wide.beats_null and wide.p > 0.05


def test_summary_and_input_checks() -> None:
    summary = null_summary(0.5, np.array([0.1, 0.5, 0.9, np.nan]), seed=0)
    assert summary.p == 3 / 4 and summary.n_perm == 4 and not summary.beats_null  # NaN left out of p
    assert np.isnan(null_summary(1.0, np.zeros(5), seed=0).z)
    with pytest.raises(ValueError, match="same items"):
        rsa_null(RDM_X, RDM_X[:-1])
    with pytest.raises(ValueError, match="complete RDMs"):
        rsa_null(RDM_X, np.where(np.arange(len(RDM_X)) == 3, np.nan, RDM_X))
    with pytest.raises(ValueError, match="unknown RDM comparator"):
        rsa_null(RDM_X, RDM_Y, method="pearson")
    with pytest.raises(ValueError, match="24 and 23 items"):
        embedding_null(X, Y[:-1], "cka_linear")
    assert permutations(5, 3, 0).shape == (3, 5)
    assert (np.sort(permutations(5, 3, 0), axis=1) == np.arange(5)).all()
