"""The Explore page's figures: WebGL maps whose every point carries its item row first, the highlight overlay, a
colour scale for numbers, 10,000 points, a colour + symbol and legend entry per category (THINGS' 28 and more),
axis titles naming the method (PCA: its variance), and the agreement histograms."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from core.analyses.explore import ItemMap
from core.figures.explore import MAX_CATEGORIES, agreement_histogram_figure, map_axis_titles, map_figure


def points(n: int, categories: int = 4, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = rng.permutation(n * 2)[:n]  # rows need not be 0..n-1 (a category filter drops some)
    return pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(size=n), "row": rows,
                         "image_id": [f"item {row}" for row in rows],
                         "category": [f"c{index % categories}" for index in range(n)],
                         "valence": rng.uniform(1, 7, size=n)})


def trace_rows(trace) -> list[int]:
    return [int(custom[0]) for custom in trace.customdata]


def test_a_categorical_map_has_a_webgl_trace_per_category_and_every_point_knows_its_row() -> None:
    table = points(200)
    fig = map_figure(table, "category", "A")
    assert [trace.type for trace in fig.data] == ["scattergl"] * 4
    assert [trace.name for trace in fig.data] == ["c0", "c1", "c2", "c3"]
    for trace in fig.data:
        part = table[table["category"] == trace.name]
        assert trace_rows(trace) == part["row"].tolist()
        assert list(trace.x) == part["x"].tolist()
        assert [custom[1] for custom in trace.customdata] == part["image_id"].tolist()
    assert sorted(row for trace in fig.data for row in trace_rows(trace)) == sorted(table["row"])


def test_the_overlay_holds_exactly_the_highlighted_rows_that_are_drawn() -> None:
    table = points(200)
    chosen = table["row"].iloc[[3, 50, 120]].tolist()
    fig = map_figure(table, "category", "A", highlighted_rows=chosen + [10_000])  # 10,000 is not drawn
    overlay = fig.data[-1]
    assert overlay.type == "scattergl" and overlay.name == "highlighted (3)"
    assert sorted(trace_rows(overlay)) == sorted(chosen)
    assert overlay.marker.line.color == "black"
    assert len(map_figure(table, "category", "A").data) == 4  # no overlay without highlights


def test_numbers_get_one_trace_with_a_colour_scale_and_many_labels_one_trace() -> None:
    table = points(300)
    numeric = map_figure(table, "valence", "A")
    assert len(numeric.data) == 1 and numeric.data[0].marker.colorscale is not None
    np.testing.assert_allclose(numeric.data[0].marker.color, table["valence"])
    assert trace_rows(numeric.data[0]) == table["row"].tolist()
    many = map_figure(table, "image_id", "A")
    assert table["image_id"].nunique() > MAX_CATEGORIES and len(many.data) == 1
    assert trace_rows(many.data[0]) == table["row"].tolist()


def test_a_map_of_ten_thousand_items_builds_quickly() -> None:
    table = points(10_000, categories=12)
    start = time.perf_counter()
    fig = map_figure(table, "category", "A", highlighted_rows=table["row"].iloc[:500])
    fig.to_json()
    assert time.perf_counter() - start < 5  # measured ~0.3 s
    assert sum(len(trace.x) for trace in fig.data[:-1]) == 10_000 and len(fig.data[-1].x) == 500


def test_agreement_histograms_count_every_item() -> None:
    agreement = pd.DataFrame({"rdm_row_spearman": [0.1, 0.5, np.nan, 0.9], "knn_overlap": [0.0, 0.5, 1.0, 1.0],
                              "disagreement_rank": [1, 2, 4, 3]})
    fig = agreement_histogram_figure(agreement)
    assert [trace.type for trace in fig.data] == ["histogram", "histogram"]
    assert len(fig.data[0].x) == 3 and len(fig.data[1].x) == 4  # NaN ρ (a constant row) left out


def test_28_categories_get_28_colours_and_a_legend_and_more_add_symbols() -> None:
    for n_categories, distinct_colours in ((28, 28), (40, 28)):
        table = points(1854, categories=n_categories)
        fig = map_figure(table, "category", "THINGS")
        styles = [(trace.marker.color, trace.marker.symbol) for trace in fig.data]
        assert len(fig.data) == n_categories == len(set(styles))  # every category its own colour + symbol
        assert len({colour for colour, _ in styles}) == distinct_colours
        assert all(trace.showlegend is not False for trace in fig.data)  # one legend entry per category
        assert sorted(trace.name for trace in fig.data) == sorted(f"c{index}" for index in range(n_categories))
        assert fig.layout.legend.title.text == "category"


def test_map_axes_name_the_method_and_pca_its_share_of_the_variance() -> None:
    table = points(50)
    fig = map_figure(table, "category", "A", axis_titles=map_axis_titles(ItemMap(np.zeros((50, 2)), "PCA",
                                                                                 (0.6, 4 / 15))))
    assert (fig.layout.xaxis.title.text, fig.layout.yaxis.title.text) == ("PC1 (60.0 % variance)",
                                                                          "PC2 (26.7 % variance)")
    assert map_axis_titles(ItemMap(np.zeros((50, 2)), "PCA")) == ("PC1", "PC2")
    assert map_axis_titles(ItemMap(np.zeros((50, 2)), "t-SNE")) == ("t-SNE 1", "t-SNE 2")
