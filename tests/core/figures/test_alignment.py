"""Alignment figures: the plan leads to the items at item resolution; THINGS-sized matrices name only the categories
with room on the axes and every category in their strips and legend; ε in powers of ten; the category confusion."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from core.figures.alignment import (AXIS_PX, LABEL_GAP_PX, MAX_PIXELS, category_confusion_figure, category_order,
                                    epsilon_search_figure, rdm_pair_figure, transport_plan_figure)

# THINGS-like: 1854 items in 28 categories, 14 of 1 to 9 items and 14 of 24 to 199 (the strips and legend must name
# the small ones, the axes must not try to).
THINGS_SIZES = (8, 6, 5, 3, 4, 1, 1, 1, 2, 8, 6, 9, 5, 6, 199, 156, 138, 122, 125, 193, 74, 171, 145, 24, 95, 179,
                124, 44)
THINGS_NAMES = ("animal", "bird", "body part", "clothing", "clothing accessory", "container", "dessert", "drink",
                "electronic device", "food", "fruit", "furniture", "home decor", "insect", "kitchen appliance",
                "kitchen tool", "medical equipment", "musical instrument", "office supply", "part of car", "plant",
                "sports equipment", "tool", "toy", "vegetable", "vehicle", "weapon", "uncategorised")


def things_categories(seed: int = 0) -> np.ndarray:
    """(1854,) category per item, shuffled (the figures order them)."""
    categories = np.repeat(THINGS_NAMES, THINGS_SIZES)
    np.random.default_rng(seed).shuffle(categories)
    return categories


def strips(figure: go.Figure) -> list:
    return [trace for trace in figure.data if trace.name in ("categories (rows)", "categories (columns)")]


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
    heatmap, points = figure.data[0], next(trace for trace in figure.data if trace.customdata is not None)
    order, _ = category_order(categories)
    custom = np.asarray(points.customdata).astype(int)
    assert np.array_equal(custom[:, 0], order)  # one point per source item, drawn on its row of the ordered heatmap
    assert np.array_equal(custom[:, 1], plan.argmax(axis=1)[order])
    assert np.array_equal(np.asarray(points.y), np.arange(8))
    assert np.array_equal(order[np.asarray(points.x).astype(int)], custom[:, 1])  # at the top target's column
    assert list(points.text) == [items[row] for row in order]
    # A block-averaged plan has no item to click.
    big = np.full((MAX_PIXELS + 1, MAX_PIXELS + 1), 1.0 / (MAX_PIXELS + 1) ** 2)
    assert all(trace.customdata is None for trace in transport_plan_figure(big, ["a"] * (MAX_PIXELS + 1)).data)


@pytest.mark.parametrize("draw, panels", [
    (lambda categories: rdm_pair_figure(np.eye(len(categories)), np.eye(len(categories)), categories, ("a", "b")), 2),
    (lambda categories: transport_plan_figure(np.eye(len(categories)) / len(categories), categories), 1),
], ids=["rdms", "plan"])
def test_1854_items_in_28_categories_name_on_the_axes_only_those_with_room(draw, panels: int) -> None:
    """The RDM pair (2 panels) also has the legend; the plan, in a narrower column, only the strips."""
    categories = things_categories()
    figure = draw(categories)
    gap = LABEL_GAP_PX / AXIS_PX * len(categories)  # 164 items
    _, blocks = category_order(categories)
    centres = {name: (start + stop - 1) / 2 for start, stop, name in blocks}
    for axis in (figure.layout.xaxis, figure.layout.yaxis):
        ticks = np.asarray(axis.tickvals)
        assert len(ticks) < 28 and np.all(np.diff(ticks) >= gap), np.diff(ticks)  # no two names overlap
        assert [centres[name] for name in axis.ticktext] == list(ticks)  # each name at its own block's centre
        # The names cover most items (measured: 7 names, 57 %), and no other name would fit between them.
        named = dict(zip(THINGS_NAMES, THINGS_SIZES))
        assert sum(named[name] for name in axis.ticktext) > 0.5 * len(categories)
        assert "kitchen appliance" in axis.ticktext  # the largest category
        assert all(np.min(np.abs(ticks - centre)) < gap for name, centre in centres.items()
                   if name not in axis.ticktext)
    # The strips name every category with its size, once each, each in its own colour; so does the legend.
    for strip in strips(figure):
        hover = np.ravel(strip.text).tolist()
        assert hover == [f"{name} ({size} items)" for name, size in sorted(zip(THINGS_NAMES, THINGS_SIZES))]
        colours = [colour for _, colour in strip.colorscale[::2]]
        assert len(set(colours)) == 28 and strip.zmin == -0.5 and strip.zmax == 27.5
    legend = [trace for trace in figure.data if trace.showlegend is not False and trace.type == "scatter"
              and trace.customdata is None]
    assert [trace.name for trace in legend] == (sorted(THINGS_NAMES) if panels == 2 else [])
    assert len({trace.marker.color for trace in legend}) == (28 if panels == 2 else 0)
    assert len(strips(figure)) == 2 * panels  # rows and columns of each matrix


def test_four_demo_categories_are_all_named() -> None:
    categories = np.repeat(["circle", "square", "star", "triangle"], 96)
    figure = transport_plan_figure(np.eye(384) / 384, categories)
    assert list(figure.layout.xaxis.ticktext) == ["circle", "square", "star", "triangle"]


def test_epsilon_ticks_are_powers_of_ten() -> None:
    trials = pd.DataFrame({"epsilon": np.logspace(-4, -1, 4), "init_seed": 0, "gw_distance": [0.4, 0.2, 0.3, 0.5],
                           "top1": [0.1, 0.6, 0.3, 0.2], "valid": True, "iterations": 10, "seconds": 1.0, "note": ""})
    figure = epsilon_search_figure(trials, selected=1)
    for axis in (figure.layout.xaxis, figure.layout.xaxis2):
        assert (axis.type, axis.exponentformat, axis.showexponent) == ("log", "power", "all")
