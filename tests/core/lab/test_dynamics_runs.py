"""Learning dynamics of real Objective lab runs: every objective records epochs 0..2, the last epoch is what the
Manifolds page measures on the saved backbone, the probe set is never trained on, a resumed run has no gap."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.analyses.manifolds import class_distance_matrix, classwise_uniformity, manifold_summary, sub_manifolds
from core.data.datasets import demo
from core.data.transforms import AugmentationPipeline
from core.encoders.registry import describe
from core.features.extract import view_features
from core.lab.dynamics import MEASURES, probe_rows, probe_set, read_dynamics
from core.lab.runs import OBJECTIVES, TrainConfig, lab_spec
from core.lab.train import train, training_images
from core.progress import Progress
from core.stores import Stores

TINY = dict(epochs=2, max_images=32, batch_size=16, image_size=32, probe_per_class=4, probe_views=2)  # 16 probes


@pytest.fixture(scope="module")
def runs(isolated_cache: Path) -> dict[str, Path]:
    """One finished tiny run per objective (shared by the tests below)."""
    demo(isolated_cache)
    return {objective: train(TrainConfig(objective, **TINY), isolated_cache) for objective in OBJECTIVES}


@pytest.mark.slow  # the fixture trains one tiny run per objective (2.5 min on two busy shared cores)
def test_every_objective_records_epochs_0_to_2_for_every_measure(runs: dict[str, Path]) -> None:
    for objective, run in runs.items():
        series = read_dynamics(run)
        spaces = ["backbone", "embedding"] if objective != "supervised" else ["backbone"]
        assert [(g.epoch, g.space) for g in series] == [(e, s) for e in range(3) for s in spaces], objective
        for geometry in series:
            assert all(math.isfinite(geometry.measures[key]) for key, _, _ in MEASURES), (objective, geometry)
            assert geometry.centroids.shape[0] == len(geometry.radii) == len(geometry.item_classes) == 16
            assert geometry.class_distance.shape == (4, 4) and len(geometry.uniformity_by_class) == 4
            assert geometry.seconds > 0
        # Training moves the geometry: the backbone's measures differ between epoch 0 and epoch 2.
        assert series[0].measures["uniformity"] != series[-len(spaces)].measures["uniformity"]


@pytest.mark.slow
def test_last_epoch_equals_the_manifolds_page_on_the_saved_backbone(runs: dict[str, Path], isolated_cache: Path,
                                                                    monkeypatch) -> None:
    monkeypatch.setenv("REPSCOPE_CACHE", str(isolated_cache))
    config = TrainConfig("simclr", **TINY)
    image_set = demo(isolated_cache)
    subset = image_set.subset(probe_rows(image_set, config))
    # The Manifolds page's path: the finished run as the encoder lab:<run id>, views of the probe images.
    views = view_features(subset, describe(lab_spec(config.run_id)), "final", Stores.at(isolated_cache).features,
                          m=config.probe_views, pipeline=AugmentationPipeline(size=config.image_size), seed=config.seed)
    categories = subset.metadata["category"].astype(str).to_numpy()
    page = manifold_summary(views, categories, config.radius_scale)
    last = read_dynamics(runs["simclr"])[-2]
    assert (last.epoch, last.space) == (2, "backbone") and last.item_classes == tuple(categories)
    expected = {"radius_mean": page.mean_radius, "neighbours_mean": page.mean_neighbours,
                "uniformity": page.uniformity, "classwise_uniformity_mean": page.classwise_uniformity,
                "alignment": page.view_alignment, "effective_dim": page.effective_dimensionality, "alpha": page.alpha,
                "clamp_loss": page.clamp_loss, "view_accuracy": page.view_accuracy}
    for key, value in expected.items():
        assert last.measures[key] == pytest.approx(value, rel=1e-6, abs=1e-6), key
    flat, view_classes = views.reshape(len(subset) * config.probe_views, -1), np.repeat(categories, config.probe_views)
    names, distances = class_distance_matrix(flat, view_classes)
    assert last.classes == tuple(names)
    np.testing.assert_allclose(last.class_distance, distances, rtol=1e-6)
    assert last.uniformity_by_class == pytest.approx(classwise_uniformity(flat, view_classes), rel=1e-6)
    np.testing.assert_allclose(last.radii, sub_manifolds(views, config.radius_scale).radii, rtol=1e-6, atol=1e-9)


def test_the_probe_set_is_never_trained_on(isolated_cache: Path) -> None:
    image_set = demo(isolated_cache)
    config = TrainConfig("supervised", **TINY)
    probe = probe_set(image_set, config)
    training = training_images(config, isolated_cache)
    assert len(probe.rows) == 16 and probe.views.shape == (32, 3, 32, 32)
    assert sorted(probe.item_classes) == sorted(np.repeat(["Blob", "Grating", "Landscape", "Star"], 4))
    assert not set(probe.image_ids) & set(training.metadata["image_id"].astype(str))
    everything = training_images(TrainConfig("supervised", probe_per_class=12), isolated_cache)
    assert len(everything) == 384 - 48  # the whole demo less 12 probe images per category
    # The same views every time (a resumed run measures what it measured before).
    assert probe_set(image_set, config).views.equal(probe.views)


@pytest.mark.slow
def test_a_resumed_run_continues_the_series_without_gap_or_duplicate(runs: dict[str, Path], isolated_cache: Path,
                                                                     tmp_path: Path) -> None:
    config = TrainConfig("clamp", **TINY)
    cache = tmp_path / "cache"
    shutil.copytree(isolated_cache / "demo", cache / "demo")

    def stop_at(prefix: str):
        def report(progress: Progress) -> None:
            if progress.message.startswith(prefix):
                raise KeyboardInterrupt(progress.message)
        return report

    # Killed after epoch 1's checkpoint, before its geometry was measured ...
    with pytest.raises(KeyboardInterrupt):
        train(config, cache, progress=stop_at("measuring geometry at epoch 1/2"))
    run = cache / "lab" / config.run_id
    assert sorted({g.epoch for g in read_dynamics(run)}) == [0] and (run / "checkpoint.pt").is_file()
    # ... then killed again in the middle of epoch 2: the resumed run measured epoch 1 from its checkpoint first.
    with pytest.raises(KeyboardInterrupt):
        train(config, cache, progress=stop_at("epoch 2/2 · loss"))
    assert sorted({g.epoch for g in read_dynamics(run)}) == [0, 1]
    reports: list[Progress] = []
    train(config, cache, progress=reports.append)
    measuring = [report.message for report in reports if report.message.startswith("measuring")]
    assert measuring == ["measuring geometry at epoch 2/2"]  # epoch 1 was measured before the second kill
    resumed, reference = read_dynamics(run), read_dynamics(runs["clamp"])
    assert [(g.epoch, g.space) for g in resumed] == [(e, s) for e in range(3) for s in ("backbone", "embedding")]
    for ours, theirs in zip(resumed, reference):  # the same numbers as the uninterrupted run
        assert ours.measures == pytest.approx(theirs.measures, rel=1e-9, nan_ok=True)
