"""Item-level exploration: neighbours, per-item agreement, maps and the transport plan drill-down."""
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.neighbors import NearestNeighbors

from core.analyses.explore import (MAP_KIND, category_confusion, confident_wrong_matches, embedding_map,
                                   item_agreement, nearest_neighbours, neighbour_overlap, rdm_row_spearman,
                                   stored_map, transport_targets)
from core.analyses.similarity import SimilaritySettings, compare, random_rotation
from core.features.results import ResultStore, result_key


def gaussian(n=300, d=20, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def test_neighbours_equal_a_brute_force_cosine_search():
    features = gaussian(700, 16)  # more rows than one block
    found = nearest_neighbours(features, k=7)
    reference = NearestNeighbors(n_neighbors=8, metric="cosine", algorithm="brute").fit(features)
    distances, indices = reference.kneighbors(features)
    assert np.array_equal(found.indices, indices[:, 1:])  # sklearn lists the item itself first
    np.testing.assert_allclose(found.distances, distances[:, 1:], atol=1e-9)
    some = nearest_neighbours(features, k=7, queries=[5, 600, 3])
    assert np.array_equal(some.indices, found.indices[[5, 600, 3]])


def test_neighbours_exclude_the_item_and_cap_k():
    features = gaussian(5, 3)
    found = nearest_neighbours(features, k=50)
    assert found.indices.shape == (5, 4)
    assert all(row not in neighbours for row, neighbours in enumerate(found.indices))


def test_a_rotated_copy_disagrees_on_no_item():
    features = gaussian(250, 12)
    agreement = item_agreement(features, random_rotation(features, seed=3), k=10)
    np.testing.assert_allclose(agreement["rdm_row_spearman"], 1.0, atol=1e-9)
    assert (agreement["knn_overlap"] == 1.0).all()
    assert sorted(agreement["disagreement_rank"]) == list(range(1, 251))


def test_the_mean_overlap_is_the_mutual_knn_measure():
    first, second = gaussian(200, 10, 1), gaussian(200, 10, 1) + 0.8 * gaussian(200, 10, 2)
    overlap = neighbour_overlap(nearest_neighbours(first, 10), nearest_neighbours(second, 10))
    matrix = compare({"a": first}, {"b": second}, measures=("mutual_knn",), settings=SimilaritySettings(k=10))
    assert overlap.mean() == pytest.approx(matrix.value("mutual_knn", "a", "b"), abs=1e-12)
    assert 0.05 < overlap.mean() < 0.9


@pytest.mark.parametrize("metric", ["cosine", "correlation", "euclidean"])
def test_rdm_row_spearman_is_spearman_of_the_rdm_rows(metric):
    from scipy.spatial.distance import cdist
    first, second = gaussian(600, 8, 4), gaussian(600, 8, 4) + gaussian(600, 8, 5)
    rho = rdm_row_spearman(first, second, metric)
    full_a, full_b = cdist(first, first, metric), cdist(second, second, metric)
    for item in (0, 511, 512, 599):
        others = np.arange(600) != item
        assert rho[item] == pytest.approx(spearmanr(full_a[item, others], full_b[item, others])[0], abs=1e-10)


def test_items_shuffled_in_one_representation_rank_first():
    features = gaussian(200, 10)
    shuffled = features.copy()
    moved = np.array([3, 50, 120, 199])
    shuffled[moved] = shuffled[np.roll(moved, 1)]
    agreement = item_agreement(features, shuffled, k=10)
    assert set(agreement.nsmallest(4, "disagreement_rank").index) == set(moved)


def test_category_confusion_of_a_permutation_within_categories_is_diagonal():
    categories = np.repeat(["bird", "car", "tree"], [5, 7, 4])
    rng = np.random.default_rng(0)
    permutation = np.concatenate([rng.permutation(np.flatnonzero(categories == name)) for name in ["bird", "car", "tree"]])
    plan = np.zeros((16, 16))
    plan[np.arange(16), permutation] = 1 / 16
    rows, columns, confusion = category_confusion(plan, categories)
    assert rows == columns == ["bird", "car", "tree"]
    np.testing.assert_allclose(confusion, np.eye(3))


def test_the_drill_down_finds_the_partner_and_the_confident_wrong_match():
    plan = np.eye(6) / 6
    plan[2] = [0, 0.05, 0.02, 0, 0, 0.10]
    plan[2] /= plan[2].sum() * 6
    targets = transport_targets(plan, 2, top=3)
    assert list(targets["target"]) == [5, 1, 2] and list(targets["correct"]) == [False, False, True]
    assert targets["mass"].iloc[0] == pytest.approx(0.10 / 0.17)
    wrong = confident_wrong_matches(plan, top=2)
    assert list(zip(wrong["source"], wrong["target"])) == [(2, 5), (2, 1)]
    assert wrong["own_mass"].iloc[0] == pytest.approx(0.02 / 0.17)


def test_a_pca_map_is_stored_once_and_read_back(tmp_path, monkeypatch):
    features = gaussian(100, 6)
    xy = embedding_map(features, "PCA")
    centred = features - features.mean(axis=0)
    expected = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
    np.testing.assert_allclose(np.abs(xy), np.abs(expected), atol=1e-4)
    store = ResultStore(tmp_path)
    first = stored_map(store, "abc", features, "PCA", 30)
    monkeypatch.setattr("core.analyses.explore.embedding_map", lambda *args: pytest.fail("recomputed"))
    again = stored_map(store, "abc", features, "PCA", 99)
    np.testing.assert_array_equal(again.xy, first.xy)
    assert again.explained == first.explained and len(store.entries(MAP_KIND)) == 1


def known_variance(n: int = 600, d: int = 64, seed: int = 0) -> np.ndarray:
    """(n, d) features whose principal axes carry variances 9, 4, 1, 1 (total 15), exactly, in a random rotation."""
    rng = np.random.default_rng(seed)
    draws = rng.normal(size=(n, 4))
    # Orthogonal columns of unit variance, centred: they span the centred draws' columns.
    white = np.linalg.qr(draws - draws.mean(axis=0))[0] * np.sqrt(n - 1)
    rotation = np.linalg.qr(rng.normal(size=(d, d)))[0][:4]
    return (white * np.sqrt([9.0, 4.0, 1.0, 1.0])) @ rotation + 5.0


def test_a_pca_map_knows_the_share_of_the_variance_on_each_axis(tmp_path):
    features = known_variance()
    total = features.var(axis=0, ddof=1).sum()
    assert total == pytest.approx(15.0)
    for dtype in (np.float64, np.float32):  # extracted features are float32
        found = stored_map(ResultStore(tmp_path / dtype.__name__), "abc", features.astype(dtype), "PCA", 0)
        assert found.method == "PCA" and found.explained == pytest.approx((9 / 15, 4 / 15), abs=1e-6)


def test_a_pca_map_stored_without_its_variance_gets_it_from_the_features(tmp_path, monkeypatch):
    features = known_variance()
    store = ResultStore(tmp_path)
    settings = {"method": "PCA", "parameter": 0.0, "seed": 0}
    # As maps were stored before the variance was: the same key, no explained_variance in the meta.
    store.put(MAP_KIND, result_key(MAP_KIND, settings, {"features": "abc"}),
              {"label": "PCA map", **settings, "features": "abc", "n_items": len(features)},
              arrays={"xy": embedding_map(features, "PCA")})
    monkeypatch.setattr("core.analyses.explore.embedding_map", lambda *args: pytest.fail("recomputed"))
    assert stored_map(store, "abc", features, "PCA", 0).explained == pytest.approx((9 / 15, 4 / 15), abs=1e-6)


def test_real_resnet_and_vgg_disagree_most_where_their_neighbours_differ(shared_data):
    folder = shared_data / "gwtune" / "DNN"
    resnet, vgg = (torch.load(folder / f"{name}_emb.pt", weights_only=True).numpy() for name in ("ResNet50", "VGG19"))
    agreement = item_agreement(resnet, vgg, k=10)
    matrix = compare({"resnet": resnet}, {"vgg": vgg}, measures=("mutual_knn",), settings=SimilaritySettings(k=10))
    assert agreement["knn_overlap"].mean() == pytest.approx(matrix.value("mutual_knn", "resnet", "vgg"), abs=1e-12)
    # Two ImageNet CNNs share most of their geometry, item by item (measured: median ρ 0.887, mean overlap 0.481),
    # far above shuffled items (ρ ≈ 0) and chance overlap k / (N − 1) = 0.010.
    assert agreement["rdm_row_spearman"].median() > 0.8 and agreement["knn_overlap"].mean() > 0.4
    worst, best = agreement.nsmallest(100, "disagreement_rank"), agreement.nlargest(100, "disagreement_rank")
    assert worst["knn_overlap"].mean() < best["knn_overlap"].mean()


def test_tied_dissimilarities_get_average_ranks_like_spearman():
    first = np.repeat(gaussian(30, 4, 6), 2, axis=0)  # every item has an exact copy: tied distances in each row
    second = first + 0.1 * gaussian(60, 4, 7)
    rho = rdm_row_spearman(first, second, "euclidean")
    from scipy.spatial.distance import cdist
    full_a, full_b = cdist(first, first), cdist(second, second)
    for item in (0, 31, 59):
        others = np.arange(60) != item
        assert rho[item] == pytest.approx(spearmanr(full_a[item, others], full_b[item, others])[0], abs=1e-10)


def test_tied_neighbours_are_the_lowest_rows():
    features = np.ones((2000, 3))  # every item is equally similar to every other
    features[7] = 0.0  # and an all-zero item: cosine 0 to everything
    found = nearest_neighbours(features, k=5, queries=[0, 7, 1999])
    assert found.indices.tolist() == [[1, 2, 3, 4, 5], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]
