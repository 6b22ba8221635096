"""Layer probes in a real browser on a cache with nothing extracted: one click on the default page extracts every
layer of both default encoders and fits them, and ends with both encoders' curves drawn. AppTest cannot follow a
served app's background jobs, progress fragment and rerun as a user's tab does."""
from __future__ import annotations

import shutil

import pytest

from core.data.datasets import demo
from core.data.demo import DEMO_FOLDER
from tests.browser.server import browser_page, served

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
DEPTH_LINES_JS = """() => {
    const plot = document.querySelector(".js-plotly-plot");
    return plot._fullData.filter((trace) => trace.mode === "lines+markers")
        .map((trace) => [trace.name, trace.x.length]);
}"""


@pytest.mark.slow
def test_one_click_on_the_default_page_extracts_fits_and_draws_both_encoders(isolated_cache, tmp_path) -> None:
    demo(isolated_cache)
    shutil.copytree(isolated_cache / DEMO_FOLDER, tmp_path / DEMO_FOLDER)  # the demo, and no feature at all
    with served(tmp_path) as url, browser_page(f"{url}/probes", 1800) as page:
        page.wait_for_selector("h1:has-text('Layer probes')", timeout=180_000)
        page.wait_for_selector(IDLE, timeout=180_000)
        button = page.get_by_role("button", name="Compute probe curves")
        assert button.inner_text() == ("Compute probe curves: extract all 9 layers of bundled:efficientnet_lite0, "
                                       "then 18 fits; extract pixels:32 (one layer), then 2 fits")
        button.click()
        page.wait_for_selector("[data-testid='stProgress']", timeout=60_000)  # one bar per encoder's job
        page.wait_for_selector("text=Where does each curve", timeout=600_000)
        page.wait_for_selector(IDLE, timeout=120_000)
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 2", timeout=120_000)
        lines = page.evaluate(DEPTH_LINES_JS)
        assert page.locator("[data-testid='stException']").count() == 0
        assert page.get_by_role("button", name="Compute probe curves").count() == 0  # nothing left to compute
    # valence, arousal and category of each encoder: EfficientNet's 9 layers, pixels' one
    assert sorted(lines) == sorted([["bundled:efficientnet_lite0", 9]] * 3 + [["pixels:32", 1]] * 3)
