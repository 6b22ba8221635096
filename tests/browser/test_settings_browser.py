"""Issue 30 item 4 in a real browser: a page's settings go into the URL as they change, so a reload, or the link
opened in another browser, draws the same settings and the result already stored for them. AppTest cannot see the
URL the browser writes (tests/views/test_settings_in_url.py checks every page reads it)."""
from __future__ import annotations

import pytest

from core.data.datasets import demo
from core.encoders.registry import describe
from core.features.extract import extract
from core.features.store import FeatureStore
from tests.browser.server import browser_page, served

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
ENCODER = "pixels:32"


@pytest.fixture(scope="module")
def served_pixels(isolated_cache):
    image_set = demo(isolated_cache)
    extract(image_set, describe(ENCODER), ["final"], FeatureStore(isolated_cache / "features"))
    with served(isolated_cache) as url:
        yield url


def settled(page) -> None:
    page.wait_for_timeout(800)  # a widget's rerun starts a moment after the event
    page.wait_for_selector(IDLE, timeout=180_000)


def pick(page, label: str, option: str) -> None:
    page.locator("[data-testid='stMain'] [data-testid='stSelectbox']").filter(has_text=label).click()
    page.get_by_role("option", name=option, exact=True).click()
    settled(page)


def shown(page, label: str) -> str:
    return page.locator("[data-testid='stMain'] [data-testid='stSelectbox']").filter(
        has_text=label).locator("input").input_value()


@pytest.mark.slow
def test_a_reload_and_a_shared_link_draw_the_stored_euclidean_matrix(served_pixels) -> None:
    with browser_page(f"{served_pixels}/similarity?encoder={ENCODER}", 1600) as page:
        page.wait_for_selector("h1:has-text('Similarity')", timeout=180_000)
        settled(page)
        pick(page, "RDM metric", "Euclidean distance")
        page.get_by_role("button", name="Compute", exact=True).click()
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 1", timeout=300_000)
        settled(page)
        link = page.url
        assert "similarity.rdm_metric=Euclidean" in link
        for opened in ("reload", "link"):
            if opened == "reload":
                page.reload()
            else:  # the link in a fresh tab: a new session with nothing but the URL
                page.goto("about:blank")
                page.goto(link)
            page.wait_for_selector("h1:has-text('Similarity')", timeout=180_000)
            settled(page)
            assert shown(page, "RDM metric") == "Euclidean distance", opened
            # The stored matrix is drawn at once: no "press Compute", the button greyed.
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 1", timeout=120_000)
            assert page.get_by_text("press Compute").count() == 0, opened
            assert page.get_by_role("button", name="Compute", exact=True).is_disabled(), opened
            assert page.locator("[data-testid='stException']").count() == 0, opened


@pytest.mark.slow
def test_explore_keeps_map_a_and_map_b_after_a_reload(served_pixels) -> None:
    with browser_page(f"{served_pixels}/explore?encoder={ENCODER}", 1600) as page:
        page.wait_for_selector("h1:has-text('Explore')", timeout=180_000)
        settled(page)
        first, second = shown(page, "Map A: representation"), shown(page, "Map B: representation")
        assert first != second
        pick(page, "Map A: representation", second)  # swap them
        pick(page, "Map B: representation", first)
        pick(page, "Map method", "UMAP")
        page.reload()
        page.wait_for_selector("h1:has-text('Explore')", timeout=180_000)
        settled(page)
        assert (shown(page, "Map A: representation"), shown(page, "Map B: representation")) == (second, first)
        assert shown(page, "Map method") == "UMAP"
        assert page.locator("[data-testid='stException']").count() == 0
