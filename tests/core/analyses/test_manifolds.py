"""Known answers for the sub-manifold geometry, uniformity and view alignment (docs/science.md §6)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from core.analyses.manifolds import (analyse_manifolds, clamp_loss, clamp_normalise, clamp_packing_loss,
                                     class_distance_matrix, compare_manifolds, manifold_summary,
                                     pair_histogram_values, sub_manifolds, uniformity, view_alignment)
from core.data.selections import per_class_subset
from core.data.transforms import AugmentationPipeline, augmentation_views
from core.encoders.registry import describe
from core.features.extract import view_features

RNG = np.random.default_rng(0)


def wang_isola_uniformity(x: torch.Tensor, t: float = 2.0) -> float:
    """Wang & Isola (2020), verbatim: sq_pdist.mul(-t).exp().mean().log()."""
    return float(torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log())


def wang_isola_alignment(x: torch.Tensor, y: torch.Tensor, alpha: float = 2.0) -> float:
    return float((x - y).norm(p=2, dim=1).pow(alpha).mean())


def test_uniformity_and_alignment_equal_wang_and_isola() -> None:
    views = RNG.normal(size=(50, 2, 8))
    unit = torch.nn.functional.normalize(torch.tensor(views), dim=-1)
    assert uniformity(views[:, 0]) == pytest.approx(-wang_isola_uniformity(unit[:, 0]), rel=1e-10)
    assert uniformity(views[:, 0], chunk_rows=7) == pytest.approx(uniformity(views[:, 0]), rel=1e-12)
    assert view_alignment(views) == pytest.approx(wang_isola_alignment(unit[:, 0], unit[:, 1]), rel=1e-10)
    four = RNG.normal(size=(20, 4, 8))  # every pair of views of an image is a positive pair
    unit = torch.nn.functional.normalize(torch.tensor(four), dim=-1)
    pairs = [(a, b) for a in range(4) for b in range(a + 1, 4)]
    expected = np.mean([wang_isola_alignment(unit[:, a], unit[:, b]) for a, b in pairs])
    assert view_alignment(four) == pytest.approx(expected, rel=1e-10)


def direct_clamp_loss(centroids: np.ndarray, radii: np.ndarray) -> float:
    energy = 0.0
    for i in range(len(centroids)):
        for j in range(i + 1, len(centroids)):
            distance = np.linalg.norm(centroids[i] - centroids[j])
            sigma = min(radii[i] + radii[j], 1.5)
            if 1e-3 < distance < sigma:
                energy += (1 - distance / sigma) ** 2
    return float(np.log(energy + 1e-6))


def test_clamp_loss_equals_the_formula() -> None:
    centroids, radii = RNG.normal(size=(40, 6)) * 0.3, RNG.uniform(0.1, 0.6, size=40)
    assert clamp_loss(centroids, radii) == pytest.approx(direct_clamp_loss(centroids, radii), rel=1e-12)
    far = np.array([[0.0, 0.0], [5.0, 0.0]])
    assert clamp_loss(far, np.array([0.5, 0.5])) == pytest.approx(np.log(1e-6))  # out of range: contributes 0
    # Nearly identical centroids (just past the 1e-3 cut) contribute the maximum, (1 - 0)² ≈ 1.
    close = np.array([[0.0, 0.0], [0.0011, 0.0]])
    assert clamp_loss(close, np.array([0.75, 0.75])) == pytest.approx(np.log((1 - 0.0011 / 1.5) ** 2 + 1e-6))


def test_radii_vanish_when_all_views_are_identical() -> None:
    images = RNG.normal(size=(30, 1, 16))
    manifolds = sub_manifolds(np.repeat(images, 8, axis=1))
    np.testing.assert_allclose(manifolds.radii, 0, atol=1e-12)
    assert (manifolds.neighbour_counts == 0).all() and (manifolds.view_accuracy == 1).all()


def test_radius_follows_the_clamp_formula() -> None:
    views = RNG.normal(size=(10, 16, 32))
    manifolds = sub_manifolds(views, radius_scale=7.0)
    z = clamp_normalise(views)
    trace = np.sum((z[3] - z[3].mean(axis=0)) ** 2) / 15
    assert manifolds.radii[3] == pytest.approx(7.0 * np.sqrt(trace / 16))
    np.testing.assert_allclose(np.linalg.norm(manifolds.principal_axes, axis=1), 1)


def test_pair_histograms_and_class_distances_split_by_category() -> None:
    categories = np.repeat(["a", "b"], 10)
    views = np.concatenate([RNG.normal(0, 1, (10, 4, 5)), RNG.normal(6, 1, (10, 4, 5))])
    pairs = pair_histogram_values(sub_manifolds(views), categories)
    assert len(pairs["centroid_distance"]["intra"]) == 2 * 45 and len(pairs["orientation_cos2"]["inter"]) == 100
    assert pairs["centroid_distance"]["intra"].mean() < pairs["centroid_distance"]["inter"].mean()
    features = views.reshape(-1, 5)
    names, distances = class_distance_matrix(features, np.repeat(categories, 4))
    brute = np.mean([np.sum((x - y) ** 2) for x in features[:40] for y in features[40:]])
    assert names == ["a", "b"] and distances[0, 1] == pytest.approx(brute)
    assert distances[0, 0] == pytest.approx(np.mean([np.sum((x - y) ** 2) for x in features[:40] for y in features[:40]]))


def test_augmented_views_are_deterministic_per_seed_and_row(isolated_cache) -> None:
    from core.data.datasets import demo
    image_set = demo(isolated_cache).subset([0, 1])
    views, input_transform = augmentation_views(image_set, 3, AugmentationPipeline(size=64), seed=7)
    assert len(views) == 6 and views.paths[2] == image_set.paths[0] and views.paths[3] == image_set.paths[1]
    image = Image.open(image_set.paths[0]).convert("RGB")
    first, again, other = input_transform.apply(image, 0), input_transform.apply(image, 0), input_transform.apply(image, 1)
    assert first.size == (64, 64) and np.array_equal(np.asarray(first), np.asarray(again))
    assert not np.array_equal(np.asarray(first), np.asarray(other))
    _, reseeded = augmentation_views(image_set, 3, AugmentationPipeline(size=64), seed=8)
    assert reseeded.name != input_transform.name and not np.array_equal(np.asarray(reseeded.apply(image, 0)), np.asarray(first))


def test_view_features_are_extracted_once_per_pipeline_and_seed(isolated_cache) -> None:
    from core.data.datasets import demo
    from core.features.store import FeatureStore
    image_set = demo(isolated_cache)
    rows = per_class_subset(image_set, 2, seed=0)
    assert len(rows) == 2 * len(image_set.categories)
    subset, store = image_set.subset(rows), FeatureStore(isolated_cache / "features")
    kwargs = dict(m=3, pipeline=AugmentationPipeline(size=32), seed=0)
    views = view_features(subset, describe("pixels:8"), "final", store, **kwargs)
    assert views.shape == (len(rows), 3, 192)
    assert not np.allclose(views[:, 0], views[:, 1])  # different views of one image
    calls = []
    again = view_features(subset, describe("pixels:8"), "final", store, progress=calls.append, **kwargs)
    assert calls == [] and np.array_equal(again, views)  # cached: no forward pass


def test_summary_of_tight_clusters_has_small_radii_and_perfect_view_accuracy() -> None:
    centres = RNG.normal(size=(24, 1, 64))
    tight, loose = centres + 0.01 * RNG.normal(size=(24, 8, 64)), centres + 1.0 * RNG.normal(size=(24, 8, 64))
    categories = np.repeat(["a", "b", "c"], 8)
    tight_summary, loose_summary = manifold_summary(tight, categories), manifold_summary(loose, categories)
    assert tight_summary.view_accuracy == 1.0 and tight_summary.mean_radius < 0.1 * loose_summary.mean_radius
    assert tight_summary.view_alignment < loose_summary.view_alignment
    assert set(tight_summary.row()) >= {"clamp_loss", "uniformity", "classwise_uniformity", "alpha",
                                        "effective_dimensionality", "mean_neighbours"}


def test_clamp_loss_is_the_same_number_in_numpy_and_torch() -> None:
    views = RNG.normal(size=(10, 4, 6))
    loss = clamp_packing_loss(torch.tensor(views), 7.0)
    assert isinstance(loss, torch.Tensor) and isinstance(clamp_packing_loss(views, 7.0), float)
    assert loss.item() == pytest.approx(clamp_packing_loss(views, 7.0), rel=1e-12)


def test_compare_manifolds_stacks_every_encoders_tables() -> None:
    categories, ids = np.repeat(["a", "b"], 8), np.array([f"img{index}" for index in range(16)])
    analyses = {name: analyse_manifolds(RNG.normal(size=(16, 3, 20)), categories, ids, map_parameter=5)
                for name in ("x · final", "y · final")}
    comparison = compare_manifolds(analyses)
    assert comparison.metrics["encoder"].tolist() == list(analyses)
    assert list(comparison.metrics.columns[1:]) == list(analyses["x · final"].summary.row())
    assert "view_alignment" in comparison.metrics.columns and "alignment" not in comparison.metrics.columns
    assert len(comparison.per_image) == 32 and set(comparison.per_image["encoder"]) == set(analyses)
    assert comparison.fits["alpha"].tolist() == [result.spectrum.alpha for result in analyses.values()]
    assert len(comparison.spectra) == sum(len(result.spectrum.eigenvalues) for result in analyses.values())
    assert comparison.pairs["y · final"] is analyses["y · final"].pairs
