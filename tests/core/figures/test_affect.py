"""Affect figures draw exactly the numbers of their tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.analyses.error_geometry import endpoint_occupancy, error_field, trajectory_occupancy
from core.figures import affect as figures

RNG = np.random.default_rng(2)


@pytest.fixture
def panel() -> figures.ErrorPanel:
    y_true = RNG.uniform(1, 7, (60, 2))
    y_pred = 0.5 * y_true + 2 + RNG.normal(0, 0.4, (60, 2))
    errors = y_pred - y_true
    return figures.ErrorPanel("model [final]", np.array([f"i{k}" for k in range(60)]),
                              np.repeat(["Animal", "Object"], 30), y_true, y_pred, errors,
                              error_field(y_true, errors), 0.3)


def test_r2_bars_carry_the_values_and_the_loto_loco_drop() -> None:
    metrics = pd.DataFrame({"model": ["a", "a", "a", "a"], "scheme": ["loto", "loco"] * 2,
                            "target": ["valence", "valence", "arousal", "arousal"], "r": [0.6, 0.4, 0.5, 0.3],
                            "r2": [0.36, 0.10, 0.25, -0.05], "r2_lo": [0.3, 0.0, 0.2, -0.1],
                            "r2_hi": [0.4, 0.2, 0.3, 0.0]})
    figure = figures.r2_summary_figure(metrics)
    bars = [trace for trace in figure.data if trace.type == "bar"]
    assert sorted(float(value) for trace in bars for value in trace.y) == sorted(metrics["r2"])
    assert {note.text for note in figure.layout.annotations if note.text.startswith("Δ")} == {"Δ +0.26", "Δ +0.30"}


def test_ceiling_dash_sits_at_each_targets_ceiling_and_only_where_there_is_one() -> None:
    metrics = pd.DataFrame({"model": ["a", "b"] * 2, "scheme": "loto", "target": ["valence"] * 2 + ["arousal"] * 2,
                            "r": 0.5, "r2": [0.3, 0.4, 0.2, 0.1], "r2_lo": 0.05, "r2_hi": 0.45,
                            "ceiling": [0.93] * 2 + [np.nan] * 2, "ceiling_lo": [0.91] * 2 + [np.nan] * 2,
                            "ceiling_hi": [0.95] * 2 + [np.nan] * 2})
    figure = figures.r2_summary_figure(metrics)
    dashes = [trace for trace in figure.data if trace.name == "reliability ceiling"]
    assert len(dashes) == 1 and list(dashes[0].x) == ["a", "b"] and list(dashes[0].y) == [0.93, 0.93]
    assert dashes[0].xaxis == "x" and dashes[0].showlegend  # valence panel only: arousal has no SD/N
    assert "reliability ceiling %{y:.3f}" in dashes[0].hovertemplate
    assert figure.layout.yaxis.range[1] >= 0.93 + 0.05  # the axis reaches the dash even when the bars stay low
    without = figures.r2_summary_figure(metrics.drop(columns=["ceiling", "ceiling_lo", "ceiling_hi"]))
    assert not [trace for trace in without.data if trace.type == "scatter"]
    assert without.layout.yaxis.range[1] == pytest.approx(0.45 + 0.15)


def test_rose_weights_sum_to_the_error_magnitudes(panel) -> None:
    table = figures.error_rose_table([panel])
    assert len(table) == figures.ROSE_BINS
    assert table["weight"].sum() == pytest.approx(np.linalg.norm(panel.errors, axis=1).sum())
    assert figures.error_rose_figure([panel]).data[0].type == "barpolar"


def test_occupancy_probabilities_sum_to_one_per_heatmap(panel) -> None:
    pair = (trajectory_occupancy(panel.y_true, panel.y_pred, bins=10), endpoint_occupancy(panel.y_pred, bins=10))
    table = figures.occupancy_table({panel.label: pair})
    assert table.groupby("kind")["probability"].sum().to_dict() == pytest.approx({"trajectory": 1, "endpoint": 1})
    assert len(figures.occupancy_figure({panel.label: pair}).data) == 2


def test_error_field_table_holds_every_image_and_arrows_match_the_field(panel) -> None:
    table = figures.error_field_table([panel])
    assert len(table) == 60 and np.allclose(table["valence_pred"] - table["valence_true"], table["error_valence"])
    figure = figures.error_field_figure([panel])
    assert len(figure.layout.annotations) == len(panel.field.x) + 1  # one arrow per occupied cell + subplot title


def test_error_field_dots_carry_each_items_row_first(panel) -> None:
    # Interleave the categories so a trace's rows are not a contiguous range.
    categories = np.tile(["Animal", "Object"], 30)
    mixed = figures.ErrorPanel(panel.label, panel.image_ids, categories, panel.y_true, panel.y_pred, panel.errors,
                               panel.field, panel.plv)
    dots = [trace for trace in figures.error_field_figure([mixed]).data if trace.mode == "markers"]
    assert len(dots) == 2
    for trace in dots:
        rows = np.asarray(trace.customdata)[:, 0].astype(int)
        assert np.array_equal(np.asarray(trace.x), mixed.y_pred[rows, 0])
        assert list(trace.text) == list(mixed.image_ids[rows])
        assert set(categories[rows]) == {trace.legendgroup}
    assert sorted(np.concatenate([np.asarray(trace.customdata)[:, 0] for trace in dots]).astype(int)) == list(range(60))
