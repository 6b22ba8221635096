"""Alignment figures: the plan leads to the items at item resolution; ε in powers of ten; the category
confusion heatmap."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.figures.alignment import (MAX_PIXELS, category_confusion_figure, category_order, epsilon_search_figure,
                                    transport_plan_figure)


def test_category_confusion_figure_draws_the_shares_with_their_labels() -> None:
    shares = np.array([[0.9, 0.1, 0.0], [0.2, 0.5, 0.3]])
    figure = category_confusion_figure(["animal", "object"], ["animal", "object", "scene"], shares)
    (heatmap,) = figure.data
    assert np.allclose(np.asarray(heatmap.z), shares)
    assert list(heatmap.y) == ["animal", "object"] and list(heatmap.x) == ["animal", "object", "scene"]
    assert (heatmap.zmin, heatmap.zmax) == (0, 1)
    assert figure.layout.xaxis.title.text == "target category" and figure.layout.yaxis.title.text == "source category"


def test_plan_click_points_name_the_source_row_and_its_top_target() -> None:
    rng = np.random.default_rng(1)
    categories = np.array(["b", "a", "c", "a", "b", "c", "a", "b"])
    plan = rng.uniform(size=(8, 8))
    plan /= plan.sum() * 1.0
    items = [f"i{k}" for k in range(8)]
    figure = transport_plan_figure(plan, categories, items=items)
    heatmap, points = figure.data
    order, _ = category_order(categories)
    custom = np.asarray(points.customdata).astype(int)
    assert np.array_equal(custom[:, 0], order)  # one point per source item, drawn on its row of the ordered heatmap
    assert np.array_equal(custom[:, 1], plan.argmax(axis=1)[order])
    assert np.array_equal(np.asarray(points.y), np.arange(8))
    assert np.array_equal(order[np.asarray(points.x).astype(int)], custom[:, 1])  # at the top target's column
    assert list(points.text) == [items[row] for row in order]
    # A block-averaged plan has no item to click.
    big = np.full((MAX_PIXELS + 1, MAX_PIXELS + 1), 1.0 / (MAX_PIXELS + 1) ** 2)
    assert len(transport_plan_figure(big, ["a"] * (MAX_PIXELS + 1)).data) == 1


def test_epsilon_ticks_are_powers_of_ten() -> None:
    trials = pd.DataFrame({"epsilon": np.logspace(-4, -1, 4), "init_seed": 0, "gw_distance": [0.4, 0.2, 0.3, 0.5],
                           "top1": [0.1, 0.6, 0.3, 0.2], "valid": True, "iterations": 10, "seconds": 1.0, "note": ""})
    figure = epsilon_search_figure(trials, selected=1)
    for axis in (figure.layout.xaxis, figure.layout.xaxis2):
        assert (axis.type, axis.exponentformat, axis.showexponent) == ("log", "power", "all")
