"""Known answers for the error-geometry measures of docs/science.md §3."""
from __future__ import annotations

import numpy as np
import pytest

from core.analyses.error_geometry import (attractors, centreward_pull, endpoint_occupancy, error_field,
                                          error_geometry, error_plv, error_vectors, occupancy_entropy,
                                          trajectory_occupancy, weighted_plv)

RNG = np.random.default_rng(0)


def test_plv_is_one_for_identical_angles_whatever_the_weights() -> None:
    assert weighted_plv(np.full(50, 0.7), RNG.uniform(0.1, 3, 50)) == pytest.approx(1.0)


def test_plv_vanishes_for_uniform_or_opposite_angles() -> None:
    assert weighted_plv(RNG.uniform(-np.pi, np.pi, 10_000), np.ones(10_000)) < 0.05
    assert weighted_plv(np.array([0.0, np.pi]), np.array([2.0, 2.0])) == pytest.approx(0.0, abs=1e-12)
    assert weighted_plv(np.array([0.3]), np.array([0.0])) == 0.0


def test_plv_weights_by_magnitude() -> None:
    errors = np.array([[3.0, 0.0], [-1.0, 0.0]])  # |3 − 1| / (3 + 1)
    assert error_plv(errors) == pytest.approx(0.5)


def test_pull_is_one_when_every_prediction_is_the_training_mean() -> None:
    y_true = RNG.uniform(1, 7, (200, 2))
    centres = np.tile(y_true.mean(axis=0), (200, 1)) + RNG.normal(0, 0.01, (200, 2))
    pull = centreward_pull(y_true, centres, centres)
    assert pull.index == pytest.approx(1.0) and pull.slopes[0] == pytest.approx(0.0, abs=0.05)


def test_pull_is_minus_one_when_predictions_flee_the_centre_and_slopes_are_one_for_perfect_predictions() -> None:
    y_true = RNG.uniform(1, 7, (100, 2))
    centres = np.full((100, 2), 4.0)
    assert centreward_pull(y_true, y_true + 0.5 * (y_true - centres), centres).index == pytest.approx(-1.0)
    perfect = centreward_pull(y_true, y_true + 1e-9 * RNG.normal(size=(100, 2)), centres)
    assert perfect.slopes == pytest.approx((1.0, 1.0), abs=1e-6)


def test_entropy_is_one_for_uniform_and_zero_for_one_cell() -> None:
    assert occupancy_entropy(np.ones((20, 20))) == pytest.approx(1.0)
    single = np.zeros((20, 20))
    single[3, 4] = 17
    assert occupancy_entropy(single) == pytest.approx(0.0)


def test_zero_length_trajectories_occupy_like_their_endpoints() -> None:
    points = RNG.uniform(1, 7, (300, 2))
    trajectory = trajectory_occupancy(points, points, bins=10)
    endpoint = endpoint_occupancy(points, bins=10)
    np.testing.assert_array_equal(trajectory.counts, 20 * endpoint.counts)
    assert trajectory.normalized_entropy == pytest.approx(endpoint.normalized_entropy)


def test_occupancy_rows_are_arousal_and_outside_points_fall_in_border_cells() -> None:
    grid = endpoint_occupancy(np.array([[1.2, 6.8], [9.0, 0.0]]), bins=6)
    assert grid.counts[5, 0] == 1  # valence low (column 0), arousal high (last row)
    assert grid.counts[0, 5] == 1  # clipped into the corner cell


def test_two_clusters_of_predictions_are_two_attractors() -> None:
    predictions = np.vstack([RNG.normal([2.5, 3.0], 0.15, (150, 2)), RNG.normal([5.5, 5.0], 0.15, (150, 2))])
    found = attractors(predictions)
    assert len(found.maxima) == 2 and found.fraction_near > 0.95
    centres = found.maxima[np.argsort(found.maxima[:, 0])]
    np.testing.assert_allclose(centres, [[2.5, 3.0], [5.5, 5.0]], atol=0.15)


def test_error_field_means_by_true_rating_cell() -> None:
    y_true = np.array([[1.1, 1.1], [1.2, 1.3], [6.9, 6.9]])
    errors = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0]])
    field = error_field(y_true, errors, bins=2)
    assert list(field.counts) == [2, 1]
    np.testing.assert_allclose(np.column_stack([field.x, field.y]), [[2.5, 2.5], [5.5, 5.5]])
    np.testing.assert_allclose(np.column_stack([field.u, field.v]), [[0.5, 1.0], [-1.0, -1.0]])


def test_error_geometry_combines_everything_in_range() -> None:
    y_true = RNG.uniform(1, 7, (400, 2))
    y_pred = 0.5 * y_true + 2 + RNG.normal(0, 0.3, (400, 2))  # shrinkage toward 4
    geometry = error_geometry(y_true, y_pred, np.full((400, 2), 4.0), np.repeat(["a", "b"], 200))
    assert 1.0 <= geometry.error_ed <= 2.0 and geometry.pull.index > 0.8
    assert geometry.pull.slopes == pytest.approx((0.5, 0.5), abs=0.05)
    assert set(geometry.plv_by_category) == {"a", "b"} and 0 <= geometry.plv <= 1
    scaled = error_geometry(y_true, y_pred, np.full((400, 2), 4.0), np.repeat(["a", "b"], 200), zscore=True)
    assert scaled.trajectory.normalized_entropy == geometry.trajectory.normalized_entropy  # grids stay in rating units
    np.testing.assert_allclose(error_vectors(y_true, y_pred, zscore=True) * y_true.std(axis=0), y_pred - y_true)
