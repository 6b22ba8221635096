"""Every similarity measure against its definition (docs/science.md §8): identity, invariances, hand-computed
values, independent transcriptions of Kornblith's CKA and platonic-rep's CKNNA, scipy for RSA."""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.distance import pdist
from scipy.stats import ortho_group, pearsonr, spearmanr

from core.analyses.similarity.measures import (MEASURES, PreparedRepresentation, SimilaritySettings, kendall_tau_a,
                                               prepare, similarity, validate_features)

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 12))
Y = X @ RNG.normal(size=(12, 9)) + 0.5 * RNG.normal(size=(40, 9))
ALL = tuple(MEASURES)


def value(first: np.ndarray, second: np.ndarray, measure: str, **settings) -> float:
    config = SimilaritySettings(**settings)
    return similarity(prepare(first, config), prepare(second, config), measure)


@pytest.mark.parametrize("measure", ALL)
def test_every_measure_gives_its_identity_value_for_a_representation_against_itself(measure: str) -> None:
    assert value(X, X, measure) == pytest.approx(MEASURES[measure].identity, abs=1e-7)


@pytest.mark.parametrize("measure", ["cka_linear", "cka_rbf", "cka_debiased", "procrustes", "procrustes_angular",
                                     "mutual_knn", "cknna", "rsa_spearman", "rsa_pearson"])
def test_rotation_and_isotropic_scaling_change_nothing(measure: str) -> None:
    rotation = ortho_group.rvs(12, random_state=1)
    assert value(3.7 * X @ rotation, Y, measure) == pytest.approx(value(X, Y, measure), abs=1e-9)


def test_linear_cka_is_not_invariant_to_an_invertible_linear_map() -> None:
    stretch = np.diag(np.geomspace(0.05, 20, 12))
    assert abs(value(X @ stretch, Y, "cka_linear") - value(X, Y, "cka_linear")) > 0.05


def test_a_hand_computed_case() -> None:
    # Two items at ±1 and one at 0 on a line, against the same points on the other axis of a plane: identical up to
    # rotation. Against x² (0, 1, 1 after centring: [-2/3, 1/3, 1/3]): centred Grams are rank one, so linear CKA is
    # cos²(angle between the centred vectors) = (a·b)² / (|a|²|b|²) with a = (-1, 0, 1), b = (1/3, -2/3, 1/3) → 0.
    line = np.array([[-1.0], [0.0], [1.0]])
    plane = np.array([[0.0, -1.0], [0.0, 0.0], [0.0, 1.0]])
    assert value(line, plane, "cka_linear") == pytest.approx(1.0)
    assert value(line, plane, "procrustes") == pytest.approx(0.0, abs=1e-7)
    assert value(line, line ** 2, "cka_linear") == pytest.approx(0.0, abs=1e-12)
    # Four points: a = (0, 1, 2, 4), b = (0, 1, 3, 2). Centred: a = (-7, -3, 1, 9)/4, b = (-6, -2, 6, 2)/4;
    # a·b = (42 + 6 + 6 + 18)/16 = 72/16, |a|² = 140/16, |b|² = 80/16 → CKA = 72² / (140 · 80) = 0.462857…
    a, b = np.array([[0.0], [1], [2], [4]]), np.array([[0.0], [1], [3], [2]])
    assert value(a, b, "cka_linear") == pytest.approx(72 ** 2 / (140 * 80))
    # Procrustes between unit-norm centred columns is sqrt(2 − 2|cos|): cos = 72 / sqrt(140 · 80).
    assert value(a, b, "procrustes") == pytest.approx(np.sqrt(2 - 2 * 72 / np.sqrt(140 * 80)))


# Kornblith et al. (2019)'s reference code (google-research/representation_similarity), transcribed independently.
def kornblith_gram_rbf(x: np.ndarray, threshold: float) -> np.ndarray:
    dot_products = x @ x.T
    sq_norms = np.diag(dot_products)
    sq_distances = -2 * dot_products + sq_norms[:, None] + sq_norms[None, :]
    return np.exp(-sq_distances / (2 * threshold ** 2 * np.median(sq_distances)))


def kornblith_center_gram(gram: np.ndarray, unbiased: bool) -> np.ndarray:
    gram = gram.copy()
    if unbiased:
        n = gram.shape[0]
        np.fill_diagonal(gram, 0)
        means = np.sum(gram, 0) / (n - 2)
        means -= np.sum(means) / (2 * (n - 1))
        gram -= means[:, None] + means[None, :]
        np.fill_diagonal(gram, 0)
        return gram
    means = np.mean(gram, 0)
    means -= np.mean(means) / 2
    return gram - means[:, None] - means[None, :]


def kornblith_cka(gram_x: np.ndarray, gram_y: np.ndarray, debiased: bool = False) -> float:
    gram_x, gram_y = kornblith_center_gram(gram_x, debiased), kornblith_center_gram(gram_y, debiased)
    return float(gram_x.ravel() @ gram_y.ravel() / (np.linalg.norm(gram_x) * np.linalg.norm(gram_y)))


def test_cka_equals_kornblith_reference_code() -> None:
    assert value(X, Y, "cka_linear") == pytest.approx(kornblith_cka(X @ X.T, Y @ Y.T), rel=1e-10)
    assert value(X, Y, "cka_debiased") == pytest.approx(kornblith_cka(X @ X.T, Y @ Y.T, debiased=True), rel=1e-10)
    for threshold in (0.5, 0.8, 2.0):
        assert value(X, Y, "cka_rbf", rbf_sigma=threshold) == pytest.approx(
            kornblith_cka(kornblith_gram_rbf(X, threshold), kornblith_gram_rbf(Y, threshold)), rel=1e-10)


def test_linear_cka_gram_form_equals_feature_form() -> None:
    centred_x, centred_y = X - X.mean(0), Y - Y.mean(0)
    feature_form = np.linalg.norm(centred_y.T @ centred_x) ** 2 / (
        np.linalg.norm(centred_x.T @ centred_x) * np.linalg.norm(centred_y.T @ centred_y))
    assert value(X, Y, "cka_linear") == pytest.approx(feature_form, rel=1e-12)
    wide = RNG.normal(size=(15, 300))  # N < p: the Gram form is the cheap one; both agree
    centred = wide - wide.mean(0)
    feature_form = np.linalg.norm(centred.T @ (wide[:, :20] - wide[:, :20].mean(0))) ** 2 / (
        np.linalg.norm(centred.T @ centred) * np.linalg.norm((wide[:, :20] - wide[:, :20].mean(0)).T
                                                             @ (wide[:, :20] - wide[:, :20].mean(0))))
    assert value(wide, wide[:, :20], "cka_linear") == pytest.approx(feature_form, rel=1e-10)


def test_debiased_cka_of_independent_gaussians_averages_zero_while_biased_cka_does_not() -> None:
    debiased, biased = [], []
    for seed in range(30):
        rng = np.random.default_rng(100 + seed)
        first, second = rng.normal(size=(50, 30)), rng.normal(size=(50, 30))
        debiased.append(value(first, second, "cka_debiased"))
        biased.append(value(first, second, "cka_linear"))
    assert abs(np.mean(debiased)) < 3 * np.std(debiased) / np.sqrt(30)
    assert np.mean(biased) > 0.3  # the bias debiasing removes: biased CKA of unrelated 30-d data on 50 items


def test_rsa_equals_scipy_on_the_upper_triangles() -> None:
    for metric in ("cosine", "correlation", "euclidean"):
        a, b = pdist(X, metric), pdist(Y, metric)
        assert value(X, Y, "rsa_spearman", rdm_metric=metric) == pytest.approx(spearmanr(a, b).statistic, rel=1e-10)
        assert value(X, Y, "rsa_pearson", rdm_metric=metric) == pytest.approx(pearsonr(a, b).statistic, rel=1e-10)
        assert value(X, Y, "rsa_cosine", rdm_metric=metric) == pytest.approx(a @ b / np.linalg.norm(a) /
                                                                             np.linalg.norm(b), rel=1e-10)


def brute_force_tau_a(a: np.ndarray, b: np.ndarray) -> float:
    signs = [np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i, j in combinations(range(len(a)), 2)]
    return float(np.sum(signs) / len(signs))


def test_kendall_tau_a_equals_its_definition_also_with_ties() -> None:
    a, b = RNG.integers(0, 5, 60).astype(float), RNG.integers(0, 4, 60).astype(float)
    assert kendall_tau_a(a, b) == pytest.approx(brute_force_tau_a(a, b), abs=1e-12)
    small = RNG.normal(size=(9, 3))
    assert value(small, small ** 3, "rsa_tau_a", rdm_metric="euclidean") == pytest.approx(
        brute_force_tau_a(pdist(small), pdist(small ** 3)), abs=1e-12)


def test_procrustes_equals_the_fitted_rotation_residual() -> None:
    def unit(matrix: np.ndarray) -> np.ndarray:
        centred = matrix - matrix.mean(0)
        return centred / np.linalg.norm(centred)
    padded = np.hstack([unit(Y), np.zeros((40, 3))])  # zero-pad the narrower one to 12 columns
    rotation, _ = orthogonal_procrustes(unit(X), padded)
    residual = np.linalg.norm(unit(X) @ rotation - padded)
    assert value(X, Y, "procrustes") == pytest.approx(residual, rel=1e-9)
    assert value(X, Y, "procrustes_angular") == pytest.approx(np.arccos(1 - residual ** 2 / 2), rel=1e-9)
    wide = RNG.normal(size=(10, 50))  # N < p: the Gram's square root stands in for the features
    rotation, _ = orthogonal_procrustes(unit(wide), unit(wide[:, ::-1] + 0.3 * RNG.normal(size=(10, 50))))
    assert value(wide, wide[:, ::-1] + 0.3 * np.random.default_rng(7).normal(size=(10, 50)), "procrustes") < 1.0


def brute_force_neighbours(features: np.ndarray, k: int) -> list[set[int]]:
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    similarity_matrix = unit @ unit.T
    np.fill_diagonal(similarity_matrix, -np.inf)
    return [set(np.argsort(-row)[:k]) for row in similarity_matrix]


def test_mutual_knn_equals_the_neighbour_overlap_and_its_chance_is_k_over_n_minus_1() -> None:
    first, second = brute_force_neighbours(X, 5), brute_force_neighbours(Y, 5)
    expected = np.mean([len(a & b) / 5 for a, b in zip(first, second)])
    assert value(X, Y, "mutual_knn", k=5) == pytest.approx(expected)
    shuffled = [value(X, X[np.random.default_rng(seed).permutation(40)], "mutual_knn", k=5) for seed in range(40)]
    assert np.mean(shuffled) == pytest.approx(5 / 39, abs=0.02)


def platonic_cknna(feats_a: np.ndarray, feats_b: np.ndarray, topk: int) -> float:
    """platonic-rep's metrics.cknna (unbiased=True) in numpy, on L2-normalised features as its compute_score does."""
    feats_a = feats_a / np.linalg.norm(feats_a, axis=1, keepdims=True)
    feats_b = feats_b / np.linalg.norm(feats_b, axis=1, keepdims=True)
    n = len(feats_a)

    def hsic_unbiased(k_matrix, l_matrix):
        k_tilde, l_tilde = k_matrix.copy(), l_matrix.copy()
        np.fill_diagonal(k_tilde, 0)
        np.fill_diagonal(l_tilde, 0)
        return ((np.sum(k_tilde * l_tilde.T) + np.sum(k_tilde) * np.sum(l_tilde) / ((n - 1) * (n - 2))
                 - 2 * np.sum(k_tilde @ l_tilde) / (n - 2)) / (n * (n - 3)))

    def masked(k_matrix, l_matrix):
        k_hat, l_hat = k_matrix.copy(), l_matrix.copy()
        np.fill_diagonal(k_hat, -np.inf)
        np.fill_diagonal(l_hat, -np.inf)
        mask_k, mask_l = np.zeros((n, n)), np.zeros((n, n))
        np.put_along_axis(mask_k, np.argsort(-k_hat, axis=1)[:, :topk], 1, axis=1)
        np.put_along_axis(mask_l, np.argsort(-l_hat, axis=1)[:, :topk], 1, axis=1)
        mask = mask_k * mask_l
        return hsic_unbiased(mask * k_matrix, mask * l_matrix)

    k_matrix, l_matrix = feats_a @ feats_a.T, feats_b @ feats_b.T
    return masked(k_matrix, l_matrix) / np.sqrt(masked(k_matrix, k_matrix) * masked(l_matrix, l_matrix))


def test_cknna_equals_platonic_rep_code() -> None:
    for k in (3, 10):
        assert value(X, Y, "cknna", k=k) == pytest.approx(platonic_cknna(X, Y, k), rel=1e-9)


def test_torch_backend_gives_the_numpy_numbers() -> None:
    config = SimilaritySettings(k=5)
    for measure in ALL:
        numpy_value = similarity(prepare(X, config), prepare(Y, config), measure)
        torch_value = similarity(prepare(X, config, backend="torch"), prepare(Y, config, backend="torch"), measure)
        assert torch_value == pytest.approx(numpy_value, abs=1e-5), measure


def test_a_weighted_resample_equals_the_materialised_one() -> None:
    config = SimilaritySettings(k=4)
    sample = np.random.default_rng(3).integers(0, 40, 40)
    first, second = prepare(X, config), prepare(Y, config)
    for measure in ALL:
        weighted = similarity(first.resample(sample), second.resample(sample), measure)
        materialised = similarity(PreparedRepresentation(X[sample], config, copies=sample),
                                  PreparedRepresentation(Y[sample], config, copies=sample), measure)
        assert weighted == pytest.approx(materialised, abs=1e-10), measure
    # A copy pair is no RDM pair: the materialised RDM matches rsatoolbox's bootstrap_sample_rdm (NaN, dropped).
    assert len(first.resample(sample).rdm_ranks) == 40 * 39 // 2


def test_bad_input_gets_a_clear_message() -> None:
    with pytest.raises(ValueError, match=r"expected an \(N, d\) matrix"):
        validate_features(np.zeros(5))
    with pytest.raises(ValueError, match="rows 2 contain NaN"):
        validate_features(np.vstack([X[:2], [np.nan] * 12, X[3:6]]))
    with pytest.raises(ValueError, match="different numbers of items"):
        similarity(prepare(X), prepare(Y[:30]), "cka_linear")
    with pytest.raises(ValueError, match="Unknown measure"):
        similarity(prepare(X), prepare(Y), "cka_magic")
    assert validate_features(X[None]).shape == (40, 12)  # GWTune's (1, N, d)


def test_zero_padding_changes_no_measure_also_in_a_resample() -> None:
    # p > N takes the Gram's square root for Procrustes; a resample must give the same draws as the narrow form.
    narrow = X[:, :5]
    wide = np.hstack([narrow, np.zeros((40, 60))])
    sample = np.random.default_rng(1).integers(0, 40, 40)
    for measure in ALL:
        assert similarity(prepare(wide).resample(sample), prepare(Y).resample(sample), measure) == pytest.approx(
            similarity(prepare(narrow).resample(sample), prepare(Y).resample(sample), measure), abs=1e-9), measure
