"""Learning dynamics on synthetic views: known answers for every measure family, grouped probes, storage, run ids."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.special import hyp0f1

from core.lab.dynamics import (MEASURES, EpochGeometry, dynamics_dir, probe_accuracies, read_dynamics, space_geometry,
                               write_epoch)
from core.lab.runs import TrainConfig

CONFIG = TrainConfig("clamp")
CLASSES = ("a", "b")


def geometry_of(views: np.ndarray, space: str = "backbone", epoch: int = 0) -> EpochGeometry:
    classes = tuple(CLASSES[i % 2] for i in range(len(views)))
    return space_geometry(views, classes, CONFIG, epoch, space)


def test_every_measure_is_listed_once_with_a_label_and_help() -> None:
    keys = [key for key, _, _ in MEASURES]
    assert len(set(keys)) == len(keys) and all(label and text for _, label, text in MEASURES)
    assert {"radius_mean", "neighbours_mean", "uniformity", "alignment", "intra_class_variance_mean",
            "inter_class_distance_mean", "effective_dim", "alpha", "knn_accuracy",
            "linear_probe_accuracy"} <= set(keys)
    geometry = geometry_of(np.random.default_rng(0).normal(size=(16, 4, 8)))
    assert list(geometry.measures) == keys


def test_identical_views_have_zero_radius_and_no_neighbours() -> None:
    images = np.random.default_rng(1).normal(size=(12, 1, 16))
    geometry = geometry_of(np.repeat(images, 5, axis=1))  # no augmentation: 5 copies of each image's features
    np.testing.assert_allclose(geometry.radii, 0, atol=1e-12)  # rounding of the views' mean only
    assert geometry.measures["radius_mean"] < 1e-12 and geometry.measures["neighbours_mean"] == 0
    assert geometry.measures["alignment"] == pytest.approx(0, abs=1e-12)
    assert geometry.measures["view_accuracy"] == 1


def test_views_spread_over_every_other_sub_manifold_give_n_minus_1_neighbours() -> None:
    # Independent Gaussian views: after CLAMP's normalisation every view is on the unit sphere, so centroids lie
    # at most 2 apart, while each radius ρ ≈ sqrt(1/min(D, m)) = 0.35 gives 0.99 · 7 · (ρ_i + ρ_j) ≈ 4.9 > 2.
    n = 10
    geometry = geometry_of(np.random.default_rng(2).normal(size=(n, 8, 32)))
    distances = np.linalg.norm(geometry.centroids[:, None] - geometry.centroids[None], axis=-1)
    radii = geometry.radii / CONFIG.radius_scale * math.sqrt(7 / 8)  # analysis radius: covariance over m, no r_s
    assert np.all(distances < 0.99 * CONFIG.radius_scale * (radii[:, None] + radii[None]))  # the premise holds
    assert geometry.measures["neighbours_mean"] == n - 1


def sphere_uniformity(d: int) -> float:
    """Analytic uniformity (t = 2) of independent uniform points on S^(d−1): 4 − log E exp(4 x·y).

    E exp(κ x·y) = 0F1(; d/2; κ²/4): the moment generating function of x·y (d = 3: sinh κ / κ)."""
    return 4 - math.log(hyp0f1(d / 2, 4.0))


def test_uniformity_on_a_high_dimensional_sphere_approaches_its_analytic_limit_and_a_collapsed_set_gives_0() -> None:
    rng = np.random.default_rng(3)
    for d in (64, 512):
        geometry = geometry_of(rng.normal(size=(300, 2, d)))  # 600 independent points: uniform once normalised
        assert geometry.measures["uniformity"] == pytest.approx(sphere_uniformity(d), abs=0.01)
        assert all(value == pytest.approx(sphere_uniformity(d), abs=0.02)
                   for value in geometry.uniformity_by_class.values())
    assert sphere_uniformity(512) == pytest.approx(4 - 8 / 512, abs=1e-3) and sphere_uniformity(64) < 3.9
    collapsed = geometry_of(np.ones((10, 3, 16)))
    assert collapsed.measures["uniformity"] == 0 and collapsed.uniformity_by_class == {"a": 0.0, "b": 0.0}


def test_class_distances_are_the_expected_squared_distances_between_two_points_per_class() -> None:
    # Class a's images at (1, 0) and (−1, 0), class b's at (3, 0): d(a, a) = E||x0 − x1||² over
    # independent draws from {(±1, 0)} = 2, d(a, b) = E||x0 − (3, 0)||² = ((3 − 1)² + (3 + 1)²) / 2 = 10.
    views = np.zeros((4, 2, 2))
    views[0, :, 0], views[2, :, 0] = 1, -1  # images 0 and 2 are class a
    views[1, :, 0] = views[3, :, 0] = 3
    geometry = geometry_of(views)
    assert geometry.classes == CLASSES
    np.testing.assert_allclose(geometry.class_distance, [[2, 10], [10, 0]], atol=1e-12)
    assert geometry.measures["intra_class_variance_mean"] == pytest.approx(1)
    assert geometry.measures["inter_class_distance_mean"] == pytest.approx(10)


def test_probe_accuracies_hold_out_whole_images() -> None:
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(40), 6)
    labels = np.where(rng.random(40) < 0.5, "a", "b")[groups]
    separated = rng.normal(size=(240, 8)) + np.where(labels == "a", 10, -10)[:, None]
    assert probe_accuracies(separated, labels, groups, seed=0) == (1.0, 1.0)
    # Six identical views per image with random labels: a view's siblings would give it away; held out, chance.
    memorised = rng.normal(size=(40, 8))[groups]
    knn, linear = probe_accuracies(memorised, labels, groups, seed=0)
    assert knn < 0.8 and linear < 0.8
    assert all(math.isnan(value) for value in probe_accuracies(separated, np.full(240, "a"), groups, seed=0))


def test_an_epoch_written_reads_back_equal(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    written = [geometry_of(rng.normal(size=(8, 3, 6)), "backbone", 2), geometry_of(rng.normal(size=(8, 3, 4)),
                                                                                    "embedding", 2)]
    written[0].measures["alpha"] = math.nan  # 8 images: no power-law fit anyway
    write_epoch(tmp_path, written)
    json.loads((dynamics_dir(tmp_path) / "epoch_002.json").read_text())  # strict JSON: NaN stored as null
    assert "NaN" not in (dynamics_dir(tmp_path) / "epoch_002.json").read_text()
    read = read_dynamics(tmp_path)
    assert [(g.epoch, g.space) for g in read] == [(2, "backbone"), (2, "embedding")]
    for before, after in zip(written, read):
        assert after.measures.keys() == before.measures.keys()
        assert all(after.measures[k] == before.measures[k] or math.isnan(before.measures[k]) and math.isnan(
            after.measures[k]) for k in before.measures)
        np.testing.assert_array_equal(after.centroids, before.centroids)
        np.testing.assert_array_equal(after.radii, before.radii)
        np.testing.assert_array_equal(after.class_distance, before.class_distance)
        assert (after.classes, after.item_classes, after.uniformity_by_class, after.seconds) == (
            before.classes, before.item_classes, before.uniformity_by_class, before.seconds)


def test_a_partially_written_epoch_is_skipped(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    for epoch in range(4):
        write_epoch(tmp_path, [geometry_of(rng.normal(size=(8, 3, 6)), epoch=epoch)])
    folder = dynamics_dir(tmp_path)
    (folder / "epoch_001.npz").unlink()  # killed between its two files' writes ... or a stale pair:
    (folder / "epoch_002.npz").write_bytes((folder / "epoch_003.npz").read_bytes())
    (folder / "epoch_003.json").write_text('{"epoch": 3, "npz')  # a torn json (not written atomically)
    assert [geometry.epoch for geometry in read_dynamics(tmp_path)] == [0]
    assert read_dynamics(tmp_path / "no run") == []
    with pytest.raises(ValueError, match="one epoch"):
        write_epoch(tmp_path, [geometry_of(rng.normal(size=(8, 3, 6)), epoch=e) for e in (1, 2)])


def test_run_ids_of_configs_at_todays_defaults_are_unchanged() -> None:
    # Ids computed before the probe-set settings existed (runs on disk carry them).
    assert TrainConfig("simclr").run_id == "simclr-resnet18-23f67a9c"
    assert TrainConfig("supervised").run_id == "supervised-resnet18-3ab35d06"
    assert TrainConfig("clamp", epochs=2, max_images=64, batch_size=32, image_size=32).run_id == \
        "clamp-resnet18-6d72d38a"
    assert TrainConfig("simclr", probe_per_class=4).run_id != TrainConfig("simclr").run_id
    assert TrainConfig("simclr", probe_views=8).run_id != TrainConfig("simclr").run_id
    assert len({TrainConfig("simclr", probe_per_class=p).run_id for p in (0, 2, 4)}) == 3


def test_bad_probe_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 images per category"):
        TrainConfig("simclr", probe_per_class=1)
    with pytest.raises(ValueError, match="at least 2 views"):
        TrainConfig("simclr", probe_views=1)
