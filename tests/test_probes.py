"""Layer-probe curves: summaries with known answers, category probe, equality with the Affect probe."""
from __future__ import annotations

import numpy as np
import pytest

from core.affect import cross_validated_predictions, metrics_table
from core.probes import category_probe, curve_summary, layer_probe_table, normalised_depth, summary_table

RNG = np.random.default_rng(3)


def test_flat_curve_has_its_centre_of_mass_in_the_middle() -> None:
    summary = curve_summary(normalised_depth(13), np.full(13, 0.4))
    assert summary.centre_of_mass == pytest.approx(0.5) and summary.late_fraction == pytest.approx(1 / 3, abs=0.01)


def test_step_at_the_end_puts_everything_late() -> None:
    score = np.zeros(13)
    score[-1] = 0.6
    summary = curve_summary(normalised_depth(13), score)
    assert summary.late_fraction == pytest.approx(1.0) and summary.peak_depth == 1.0
    assert summary.centre_of_mass == pytest.approx(1.0)


def test_negative_scores_count_as_no_information() -> None:
    summary = curve_summary(normalised_depth(5), np.array([-0.5, 0.2, 0.2, -0.1, -3.0]))
    assert summary.peak_depth == pytest.approx(0.25) and summary.centre_of_mass == pytest.approx(0.375)
    assert np.isnan(curve_summary(normalised_depth(3), np.array([-1.0, -2.0, 0.0])).centre_of_mass)


def grouped_data(n_categories: int = 3, groups_per_category: int = 5, per_group: int = 6):
    categories = np.repeat([f"c{i}" for i in range(n_categories)], groups_per_category * per_group)
    groups = np.array([f"{c}-{i // per_group}" for i, c in enumerate(categories)])
    return categories, groups


def test_category_probe_finds_a_category_signal_and_refuses_loco() -> None:
    categories, groups = grouped_data()
    informative = (categories[:, None] == np.unique(categories)).astype(float) + RNG.normal(0, 0.3, (90, 3))
    noise = RNG.normal(size=(90, 3))
    assert category_probe(informative, categories, groups, "loto").balanced_accuracy > 0.9
    assert category_probe(noise, categories, groups, "loto").balanced_accuracy < 0.6
    with pytest.raises(ValueError, match="meaningless"):
        category_probe(informative, categories, groups, "loco")


def test_final_layer_numbers_equal_the_affect_probe() -> None:
    categories, groups = grouped_data()
    layers = {"blocks.0": RNG.normal(size=(90, 8)), "final": RNG.normal(size=(90, 8))}
    targets = layers["final"][:, :2] @ np.array([[1.0, 0.2], [0.3, 1.0]]) + RNG.normal(0, 0.2, (90, 2))
    curves = layer_probe_table(layers, targets, groups, "loto", categories=categories)
    affect = metrics_table(cross_validated_predictions(layers["final"], targets, groups, "loto")).set_index("target")
    final = curves[curves["layer"] == "final"].set_index("probe")
    for target in ("valence", "arousal"):
        assert final.loc[target, "score"] == affect.loc[target, "r2"]
        assert (final.loc[target, "low"], final.loc[target, "high"]) == (affect.loc[target, "r2_lo"],
                                                                        affect.loc[target, "r2_hi"])
    assert list(curves["depth"].unique()) == [0.0, 1.0] and set(curves["probe"]) == {"valence", "arousal", "category"}
    summaries = summary_table(curves)
    assert summaries.set_index("probe").loc["valence", "peak_layer"] == "final"
