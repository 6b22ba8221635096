"""Figures as plotly.js draws them in headless Chromium (no app): ε ticks in powers of ten, and HTML that loads a
shared plotly.js by a relative path with the network off."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.export import PLOTLYJS_FILE, figure_to_bytes, plotlyjs_bytes
from core.figures.alignment import epsilon_search_figure
from tests.browser.server import browser_page


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
