"""Dataset-overview figures plot exactly the numbers of their tables."""
from __future__ import annotations

import pandas as pd
import pytest

from core.figures import features as figures


@pytest.fixture
def metadata() -> pd.DataFrame:
    return pd.DataFrame({
        "image_id": [f"img{i}" for i in range(7)],
        "category": ["Animal", "Animal", "Object", "Person", "Person", "Person", "Scenery"],
        "group": ["cat", "cat", "cup", "face", "face", "crowd", "lake"],
        "valence": [5.0, 5.5, 4.0, 6.0, 2.0, 3.0, 6.5],
        "arousal": [3.0, 3.5, 2.0, 5.0, 6.0, 4.0, 2.5],
    })


def test_category_bars_are_the_counts(metadata) -> None:
    bars = figures.category_counts_figure(metadata).data[0]
    assert list(bars.x) == ["Animal", "Object", "Person", "Scenery"] and list(bars.y) == [2, 1, 3, 1]
    assert figures.category_counts_table(metadata)["images"].sum() == 7


def test_group_sizes_table_counts_images_per_group(metadata) -> None:
    table = figures.group_sizes_table(metadata).set_index("group")
    assert table.loc["face", "images"] == 2 and table.loc["crowd", "images"] == 1 and len(table) == 5
    assert sum(len(trace.x) for trace in figures.group_sizes_figure(metadata).data) == 5


def test_category_colours_are_stable_and_distinct() -> None:
    first = figures.category_colors(["Person", "Animal", "Object", "Scenery"])
    second = figures.category_colors(["Scenery", "Object", "Animal", "Person", "Animal"])
    assert first == second and len(set(first.values())) == 4


def test_ratings_figure_needs_ratings(metadata) -> None:
    figure = figures.target_histograms_figure(metadata)
    scatter = [trace for trace in figure.data if trace.type == "scatter"]
    assert sum(len(trace.x) for trace in scatter) == 7
    with pytest.raises(ValueError, match="valence"):
        figures.target_histograms_figure(metadata.drop(columns="valence"))
