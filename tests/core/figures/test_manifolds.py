"""Manifold figures: the centroid map leads to the items (customdata[0] is the item's row)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.figures.manifolds import centroid_map_figure


def test_centroid_map_points_carry_their_row_first_and_keep_the_hover() -> None:
    rng = np.random.default_rng(0)
    points = pd.DataFrame({"x": rng.normal(size=9), "y": rng.normal(size=9), "image_id": [f"i{k}" for k in range(9)],
                           "category": ["b", "a", "c"] * 3, "radius": rng.uniform(0.1, 1, 9),
                           "neighbours": np.arange(9)})
    figure = centroid_map_figure(points, 0.5, "PCA")
    assert [trace.name for trace in figure.data] == ["a", "b", "c"]
    for trace in figure.data:
        custom = np.asarray(trace.customdata, dtype=object)
        rows = custom[:, 0].astype(int)
        assert np.array_equal(np.asarray(trace.x), points["x"].to_numpy()[rows])
        assert list(custom[:, 1]) == list(points["image_id"].iloc[rows])
        assert (points["category"].iloc[rows] == trace.name).all()
        assert trace.hovertemplate.startswith("%{customdata[1]}<br>radius %{customdata[2]:.3f}")
    assert len(figure.layout.shapes) == 9
