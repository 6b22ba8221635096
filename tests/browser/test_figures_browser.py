"""Figures as plotly.js draws them in headless Chromium (no app): THINGS-sized matrices whose category names never
overlap, ε ticks in powers of ten, and HTML that loads a shared plotly.js by a relative path with the network off."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from core.export import PLOTLYJS_FILE, figure_to_bytes, plotlyjs_bytes
from core.figures.alignment import epsilon_search_figure, rdm_pair_figure, transport_plan_figure
from tests.browser.server import browser_page
from tests.core.figures.test_alignment import THINGS_NAMES, things_categories

# Each tick label's box in its own frame (getBBox), its corners taken to the page by getScreenCTM: a rotated label
# gives a rotated quadrilateral, not the bounding rectangle that two neighbouring slanted labels always share.
LABEL_QUADS_JS = """(selector) => Array.from(document.querySelectorAll(selector)).map((text) => {
    const box = text.getBBox(), matrix = text.getScreenCTM();
    return [[box.x, box.y], [box.x + box.width, box.y], [box.x + box.width, box.y + box.height],
            [box.x, box.y + box.height]].map(([x, y]) => {
        const point = new DOMPoint(x, y).matrixTransform(matrix);
        return [point.x, point.y];
    }).concat([[text.textContent]]);
})"""


def overlap(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether two convex quadrilaterals ((4, 2) corners in order) intersect: no edge normal separates them."""
    for quad in (first, second):
        for edge in np.diff(np.vstack([quad, quad[:1]]), axis=0):
            normal = np.array([-edge[1], edge[0]])
            a, b = first @ normal, second @ normal
            if a.max() <= b.min() or b.max() <= a.min():
                return False
    return True


@contextmanager
def drawn(fig: go.Figure, folder: Path, width: int, height: int) -> Iterator:
    """A headless Chromium tab `width` px wide showing `fig` as the HTML export writes it, once plotly has drawn."""
    path = folder / "figure.html"
    path.write_bytes(figure_to_bytes(fig, "html"))
    with browser_page("about:blank", height) as page:
        page.set_viewport_size({"width": width, "height": height})
        page.goto(path.as_uri())
        page.wait_for_selector(".main-svg")
        # plotly.js draws, then redraws once the tick labels have pushed the margins: wait until nothing moves.
        page.wait_for_function("""() => {
            const now = Array.from(document.querySelectorAll('text')).map((t) => t.getAttribute('transform')).join();
            const settled = now === window.lastLayout;
            window.lastLayout = now;
            return settled;
        }""", polling=300, timeout=20_000)
        yield page


@pytest.mark.parametrize("draw, width", [
    # The RDM pair spans the page (1500 px window less the sidebar: 1150 px; 1280 px: 880 px); the plan sits in a
    # 3/5 column (700 px; 520 px).
    *((lambda categories: rdm_pair_figure(np.eye(len(categories)), np.eye(len(categories)), categories, ("a", "b")),
       width) for width in (1150, 880)),
    *((lambda categories: transport_plan_figure(np.eye(len(categories)) / len(categories), categories), width)
      for width in (700, 520)),
], ids=["rdms", "rdms-narrow", "plan", "plan-narrow"])
def test_no_two_category_names_overlap_at_1854_items(draw, width: int, tmp_path) -> None:
    with drawn(draw(things_categories()), tmp_path, width, 900) as page:
        for axis in ("xtick", "ytick"):  # every x axis's labels are "xtick": both RDM panels are checked at once
            labels = page.evaluate(LABEL_QUADS_JS, f".{axis} text")
            quads = [np.array(label[:4]) for label in labels]
            names = [label[4][0] for label in labels]
            assert len(quads) >= 6, (axis, names)
            clashes = [(names[i], names[j]) for i in range(len(quads)) for j in range(i + 1, len(quads))
                       if overlap(quads[i], quads[j])]
            assert not clashes, (axis, clashes)
        if not page.locator(".legend").count():
            return  # the plan: no legend (the RDM pair above has it)
        # The RDM pair's legend names every category, the small ones too, none over another or cut off.
        labels = page.evaluate(LABEL_QUADS_JS, ".legend .traces .legendtext")
        assert sorted(label[4][0] for label in labels) == sorted(THINGS_NAMES)
        quads = [np.array(label[:4]) for label in labels]
        assert not any(overlap(quads[i], quads[j]) for i in range(len(quads)) for j in range(i + 1, len(quads)))
        height = page.evaluate("document.querySelector('.main-svg').getBoundingClientRect().height")
        assert max(quad[:, 1].max() for quad in quads) <= height


def test_epsilon_ticks_read_as_powers_of_ten(tmp_path) -> None:
    trials = pd.DataFrame({"epsilon": np.logspace(-4, -1, 4), "init_seed": 0, "gw_distance": [0.4, 0.2, 0.3, 0.5],
                           "top1": [0.1, 0.6, 0.3, 0.2], "valid": True, "iterations": 10, "seconds": 1.0, "note": ""})
    with drawn(epsilon_search_figure(trials, selected=1), tmp_path, 1150, 500) as page:
        ticks = page.evaluate("Array.from(document.querySelectorAll('.xtick text')).map((t) => t.textContent)")
    decades = [tick.replace("\u200b", "") for tick in ticks if tick.startswith("10")]
    assert decades == ["10−4", "10−3", "10−2", "10−1"], ticks  # 10 with a superscript exponent, not "100μ"
    assert not any("μ" in tick or "m" in tick for tick in ticks), ticks


def test_html_with_a_shared_plotly_js_draws_offline(tmp_path) -> None:
    """As `study export` lays it out: <step folder>/<figure>.html loading ../plotly.min.js, no network."""
    (tmp_path / PLOTLYJS_FILE).write_bytes(plotlyjs_bytes())
    folder = tmp_path / "01_alignment_demo"
    folder.mkdir()
    fig = go.Figure(go.Bar(x=["shared", "inlined"], y=[1, 2]))
    for html, where in ((dict(plotlyjs=f"../{PLOTLYJS_FILE}"), folder), ({}, tmp_path)):  # and a standalone file
        path = where / "figure.html"
        path.write_bytes(figure_to_bytes(fig, "html", **html))
        with browser_page("about:blank", 600) as page:
            page.route("http*://**", lambda route: route.abort())  # offline: only file:// loads
            page.goto(path.as_uri())
            page.wait_for_selector(".main-svg .bars path", timeout=20_000)
            assert page.locator(".xtick text").all_text_contents() == ["shared", "inlined"]
    assert len((folder / "figure.html").read_bytes()) < 20_000 < len((tmp_path / "figure.html").read_bytes())
