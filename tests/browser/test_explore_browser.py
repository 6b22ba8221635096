"""Explore in a real browser: a box drawn on map A lists exactly the items inside it, a click opens the item's card
with k neighbour thumbnails per representation. What AppTest cannot do: plotly's own selection events."""
from __future__ import annotations

import io
import zipfile

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.data.datasets import demo
from core.encoders.registry import describe
from tests.browser.server import browser_page, served

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
K = 10  # the page's default k neighbours
POINTS_JS = """(plot) => {
    const layout = plot._fullLayout, box = plot.getBoundingClientRect();
    const xaxis = layout.xaxis, yaxis = layout.yaxis, points = [];
    for (const trace of plot._fullData) {
        for (let i = 0; i < trace.x.length; i++) {
            points.push([trace.customdata[i][0], box.x + xaxis._offset + xaxis.l2p(trace.x[i]),
                         box.y + yaxis._offset + yaxis.l2p(trace.y[i])]);
        }
    }
    return points;
}"""


@dataclass(frozen=True)
class ServedApp:
    url: str
    cache: Path


@pytest.fixture(scope="module")
def explore_app(isolated_cache):
    """The app on the demo with the sidebar's default encoders' final layers extracted (as the other browser tests
    leave the shared cache): maps A and B are the two encoders, the demo's human embedding a third source."""
    from core.features.extract import extract
    from core.features.store import FeatureStore

    for spec in ("bundled:efficientnet_lite0", "pixels:32"):
        extract(demo(isolated_cache), describe(spec), ["final"], FeatureStore(isolated_cache / "features"))
    with served(isolated_cache) as url:
        yield ServedApp(url, isolated_cache)


def settle(page) -> None:
    page.wait_for_timeout(1500)  # a rerun starts a moment after the event
    page.wait_for_selector(IDLE, timeout=180_000)


def map_points(page) -> pd.DataFrame:
    """Every point drawn on map A: item row and its position on the page (pixels)."""
    plot = page.locator(".js-plotly-plot").first
    return pd.DataFrame(plot.evaluate(POINTS_JS), columns=["row", "px", "py"]).astype({"row": int})


def downloaded_table(data: bytes) -> pd.DataFrame:
    """A table download: a CSV, or (rows from several feature sets) a zip of the CSV and provenance.json."""
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            data = archive.read(next(name for name in archive.namelist() if name.endswith(".csv")))
    return pd.read_csv(io.BytesIO(data))


def clear_edge(positions: pd.Series, near: float, outward: int, margin: float = 1.0) -> int:
    """The first whole pixel from `near` in direction `outward` (±1) with no point within `margin` pixels."""
    for offset in range(200):
        candidate = round(near) + outward * offset
        if (positions - candidate).abs().min() >= margin:
            return candidate
    raise AssertionError(f"no clear edge near {near}")


@pytest.mark.slow
def test_a_box_lists_exactly_its_items_and_a_click_opens_the_card(explore_app, tmp_path) -> None:
    with browser_page(f"{explore_app.url}/explore", 2400, accept_downloads=True) as page:
        page.wait_for_selector("h1:has-text('Explore')", timeout=180_000)
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 2", timeout=120_000)
        settle(page)
        points = map_points(page).drop_duplicates("row")
        assert len(points) == 384

        # A box around the middle of the cloud, its edges on whole pixels at least 1 px from any point.
        left, right = (clear_edge(points["px"], value, outward)
                       for value, outward in zip(np.percentile(points["px"], [30, 70]), (-1, 1)))
        top, bottom = (clear_edge(points["py"], value, outward)
                       for value, outward in zip(np.percentile(points["py"], [30, 70]), (-1, 1)))
        inside = points[(points["px"] > left) & (points["px"] < right) & (points["py"] > top) &
                        (points["py"] < bottom)]
        assert 10 < len(inside) < 384
        plot = page.locator(".js-plotly-plot").first
        plot.hover()
        plot.locator("[data-title='Box Select']").click()
        page.mouse.move(left, top)
        page.mouse.down()
        page.mouse.move((left + right) / 2, (top + bottom) / 2, steps=5)
        page.mouse.move(right, bottom, steps=5)
        page.mouse.up()
        settle(page)
        with page.expect_download() as download:
            page.get_by_role("button", name="Selection (CSV)").click()
        table = downloaded_table(download.value.path().read_bytes())
        assert page.get_by_text(f"Selection: {len(inside)} item(s) from map A").count() == 1
        assert sorted(table["row"]) == sorted(inside["row"])

        # A click on an isolated point of map A (in pan mode: Streamlit turns click-to-select off in box mode):
        # its card, K neighbours in each of the two representations.
        plot.hover()
        plot.locator("[data-title='Pan']").click()
        points = map_points(page).drop_duplicates("row").reset_index(drop=True)
        xy = points[["px", "py"]].to_numpy()
        gaps = np.sort(np.linalg.norm(xy[:, None] - xy[None], axis=2), axis=1)[:, 1]
        clicked = points.iloc[int(np.argmax(gaps))]
        page.mouse.move(clicked["px"], clicked["py"])  # WebGL picks the point under the pointer on hover
        page.wait_for_timeout(500)
        page.mouse.click(clicked["px"], clicked["py"])
        settle(page)
        # The card's images: the item, then K neighbours per representation (table thumbnails are canvas cells).
        page.wait_for_function(f"document.querySelectorAll(\"[data-testid='stImage']\").length >= {1 + 2 * K}",
                               timeout=60_000)
        assert page.locator("[data-testid='stImage']").count() == 1 + 2 * K
        item_id = demo(explore_app.cache).metadata["image_id"].iloc[int(clicked["row"])]
        assert page.locator("[data-testid='stImage']").first.inner_text().strip() == item_id
        assert page.locator("[data-testid='stException']").count() == 0
        page.screenshot(path=str(tmp_path / "explore.png"))
