"""Figures as plotly.js draws them in headless Chromium (no app): HTML that loads a shared plotly.js by a relative
path with the network off."""
from __future__ import annotations

import plotly.graph_objects as go

from core.export import PLOTLYJS_FILE, figure_to_bytes, plotlyjs_bytes
from tests.browser.server import browser_page


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
