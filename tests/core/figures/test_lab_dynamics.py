"""The learning-dynamics figures on synthetic epochs with known answers: the numbers drawn are the ones stored, the
map's frames share the last epoch's PCA, and a collapsed start is drawn collapsed."""
from __future__ import annotations

import numpy as np
import pytest

from core.figures.lab import OBJECTIVE_COLORS, run_label
from core.figures.lab_dynamics import (centroid_map, centroid_map_figure, class_distances_figure, dynamics_table,
                                       measure_figure)
from core.lab.dynamics import EpochGeometry

CLASSES = ("animal", "object", "scene")


def epochs(n_epochs: int, *, spread: float = 1.0, seed: int = 0) -> list[EpochGeometry]:
    """Epoch e: 4 probe images per class whose centroids grow from a near-point (e = 0) to class clusters."""
    rng = np.random.default_rng(seed)
    item_classes = tuple(np.repeat(CLASSES, 4))
    centres = rng.normal(size=(3, 16)) * 3
    noise = rng.normal(size=(12, 16))
    found = []
    for epoch in range(n_epochs + 1):
        grown = spread * epoch / n_epochs
        centroids = np.repeat(centres, 4, axis=0) * grown + noise * (0.01 + 0.3 * grown)
        found.append(EpochGeometry(
            epoch, "backbone", {"uniformity": 0.5 * epoch, "radius_mean": 1.0 / (epoch + 1)}, CLASSES,
            {name: 0.1 * epoch * (index + 1) for index, name in enumerate(CLASSES)},
            np.full((3, 3), 2.0 * epoch) + np.eye(3) * epoch, centroids, np.full(12, 0.05 + 0.1 * epoch),
            item_classes, 0.01))
    return found


def test_each_run_is_one_thick_line_over_its_thin_class_lines() -> None:
    runs = {run_label("clamp", "clamp-resnet18-aaaa"): epochs(3), run_label("supervised", "sup-b"): epochs(3, seed=1)}
    table = dynamics_table(runs)
    assert set(table["objective"]) == {"clamp", "supervised"} and sorted(table["epoch"].unique()) == [0, 1, 2, 3]
    # 2 runs x 4 epochs x (2 measures + 3 class uniformities)
    assert len(table) == 2 * 4 * 5
    fig = measure_figure(table, "uniformity", "uniformity")
    assert len(fig.data) == 2 * (3 + 1)
    overall = [trace for trace in fig.data if trace.showlegend is not False]
    assert [trace.name for trace in overall] == list(runs)
    assert list(overall[0].y) == [0.0, 0.5, 1.0, 1.5] and overall[0].line.color == OBJECTIVE_COLORS["clamp"]
    thin = [trace for trace in fig.data if trace.showlegend is False and trace.legendgroup == overall[1].name]
    assert len(thin) == 3 and all(trace.line.width < overall[1].line.width for trace in thin)
    assert list(thin[2].y) == pytest.approx([0.0, 0.3, 0.6, 0.9])  # scene, class index 2: 0.1 · epoch · 3
    assert thin[0].line.color == OBJECTIVE_COLORS["supervised"]
    radius = measure_figure(table, "radius_mean", "radius")
    assert len(radius.data) == 2 and "each class" not in radius.layout.title.text


def test_the_map_projects_every_epoch_on_the_last_epochs_pca_and_starts_collapsed() -> None:
    stored = epochs(4)
    points, scale = centroid_map(stored)
    assert len(points) == 5 * 12 and scale > 0
    spans = points.groupby("epoch")["x"].agg(np.ptp)
    assert spans[0] < 0.1 * spans[4]  # the collapsed start is drawn collapsed, in the same axes
    # The last epoch's map is its own PCA: centred, the first axis carrying the most variance.
    last = points[points["epoch"] == 4]
    assert abs(last["x"].mean()) < 1e-9 and last["x"].var() >= last["y"].var()
    # Distances in the map never exceed those in feature space (an orthogonal projection).
    first = points[points["epoch"] == 0][["x", "y"]].to_numpy()
    assert np.linalg.norm(first[0] - first[1]) <= np.linalg.norm(stored[0].centroids[0] - stored[0].centroids[1])
    fig = centroid_map_figure(points, scale, "clamp · x", "backbone")
    assert [frame.name for frame in fig.frames] == ["0", "1", "2", "3", "4"]
    assert [step.label for step in fig.layout.sliders[0].steps] == ["0", "1", "2", "3", "4"]
    assert fig.layout.sliders[0].active == 4 and fig.layout.updatemenus[0].buttons[0].method == "animate"
    markers = [trace for trace in fig.frames[0].data if trace.mode == "markers"]
    animals = points[(points["epoch"] == 0) & (points["class"] == "animal")]
    assert len(markers) == 3 and list(markers[0].x) == pytest.approx(list(animals["x"]))
    # Each circle is drawn at radius × scale around its centroid.
    circle = next(trace for trace in fig.frames[4].data if trace.mode == "lines")
    xs = np.array([x for x in circle.x[:25]], dtype=float)
    assert (xs.max() - xs.min()) / 2 == pytest.approx((0.05 + 0.4) * scale, rel=1e-6)
    # Fixed axes cover every epoch, so frames do not rescale.
    assert fig.layout.xaxis.range[0] <= points["x"].min() and fig.layout.xaxis.range[1] >= points["x"].max()


def test_the_class_distance_heatmap_shows_the_stored_matrix() -> None:
    geometry = epochs(2)[1]
    fig = class_distances_figure(geometry, "clamp · x")
    assert np.asarray(fig.data[0].z).tolist() == geometry.class_distance.tolist()
    assert list(fig.data[0].x) == list(CLASSES) and "epoch 1" in fig.layout.title.text
