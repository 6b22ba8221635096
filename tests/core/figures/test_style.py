"""The house palette: THINGS' 28 categories get 28 colours that an eye tells apart, then colour + symbol pairs."""
from __future__ import annotations

from itertools import combinations

import numpy as np

from core.figures.style import CATEGORICAL, EXTENDED, SYMBOLS, category_colors, category_styles


def cielab(colour: str) -> np.ndarray:
    """'#RRGGBB' (sRGB, D65) -> (L*, a*, b*)."""
    rgb = np.array([int(colour[index:index + 2], 16) for index in (1, 3, 5)]) / 255
    linear = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    f = np.cbrt(np.maximum(xyz / np.array([0.95047, 1.0, 1.08883]), 0.008856))
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_28_colours_all_distinct_to_the_eye() -> None:
    assert len(CATEGORICAL) == 28 and CATEGORICAL[:len(EXTENDED)] == EXTENDED  # pages with <= 16 keep their colours
    distances = {(a, b): float(np.linalg.norm(cielab(a) - cielab(b))) for a, b in combinations(CATEGORICAL, 2)}
    # ΔE*ab 16 is the closest pair of the old 16 (#F0E442 yellow vs #BCBD22 olive); a repeated colour is 0.
    assert min(distances.values()) > 16, min(distances, key=distances.get)
    assert all(cielab(colour)[0] < 90 for colour in CATEGORICAL)  # none vanishes on the white background


def test_category_styles_are_stable_and_distinct_past_the_palette() -> None:
    names = [f"category {index:03d}" for index in range(len(CATEGORICAL) * len(SYMBOLS))]
    styles = category_styles(reversed(names))  # sorted names take the palette in order, whatever the input order
    assert len(set(styles.values())) == len(names)
    assert styles["category 000"] == (CATEGORICAL[0], "circle") and styles["category 028"] == (CATEGORICAL[0], "square")
    assert category_colors(names[:28]) == dict(zip(names[:28], CATEGORICAL))
