"""The Scoreboard page in a real browser on a small study of the demo (run here first): the link opens the study's
table, a click on a column header draws that column's grouped bar chart, and a click on a cell opens its step on its
analysis page."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.browser.server import browser_page, served
from tests.studies import run_scoreboard_study

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
HEADERS_JS = "() => [...document.querySelectorAll('[data-testid=stDataFrame] th')].map((th) => th.textContent)"
BARS_TITLE_JS = "() => document.querySelectorAll('.js-plotly-plot')[0].layout.title.text.replace(/<[^>]+>/g, '')"


def settle(page) -> None:
    page.wait_for_timeout(800)
    page.wait_for_selector(IDLE, timeout=120_000)


@pytest.mark.slow
def test_open_the_scoreboard_click_a_column_then_a_cell(isolated_cache: Path, tmp_path: Path) -> None:
    folder = isolated_cache / "studies"
    folder.mkdir(exist_ok=True)
    path = run_scoreboard_study(folder, isolated_cache)
    query = urlencode({"scoreboard.study": str(path)})
    with served(isolated_cache) as url, browser_page(f"{url}/scoreboard?{query}", 2000) as page:
        page.wait_for_selector("h1:has-text('Scoreboard')", timeout=180_000)
        page.wait_for_selector(IDLE, timeout=180_000)
        page.wait_for_selector(".js-plotly-plot", timeout=120_000)
        # the table's grid fills its header cells a moment after it mounts (later still on a busy machine)
        page.wait_for_function(f"() => ({HEADERS_JS})().length > 2", timeout=120_000)
        headers = page.evaluate(HEADERS_JS)[:20]
        first_title = page.evaluate(BARS_TITLE_JS)
        assert headers[:2] == ["model", "paradigm"] and first_title == headers[2].rstrip(" ↑↓")
        box = page.locator("[data-testid='stDataFrame']").first.bounding_box()
        # the rightmost visible column (a measure, not the first): its header, then its first row's cell
        x, header_y, cell_y = box["x"] + box["width"] - 60, box["y"] + 18, box["y"] + 18 + 35
        page.mouse.click(x, header_y)
        settle(page)
        title = page.evaluate(BARS_TITLE_JS)
        assert title != first_title and (f"{title} ↑" in headers or f"{title} ↓" in headers), (title, headers)
        assert page.locator("[data-testid='stException']").count() == 0
        page.mouse.click(x, cell_y)
        settle(page)
        opener = page.get_by_role("button", name="Open step", exact=False)
        assert opener.count() == 1
        step = opener.inner_text()
        page.screenshot(path=str(tmp_path / "scoreboard.png"), full_page=True)
        opener.click()
        settle(page)
        analysis = step.split(". ")[1].split(" · ")[0]  # "Open step 1. affect · demo on its page"
        heading = {"affect": "Affect", "similarity": "Similarity", "alignment": "Alignment",
                   "manifolds": "Manifolds"}[analysis]
        page.wait_for_selector(f"h1:has-text('{heading}')", timeout=120_000)
        assert page.locator("[data-testid='stException']").count() == 0
