"""The Brain page in a real browser on the 92-image folder: the link opens the folder, one click computes pixels:32 and
the dataset's RDMs against its reference groups in the background, and every figure draws without an exception."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest

from core.data.datasets import load_dataset
from core.encoders.registry import describe
from core.features.extract import extract
from core.features.store import FeatureStore
from tests.browser.server import browser_page, served

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
ENCODER = "pixels:32"
NEURAL = "Neural / behavioural RDMs (e.g. the 92-image set)"


@pytest.mark.slow
def test_one_click_draws_every_brain_figure(kriegeskorte92: Path, isolated_cache: Path, tmp_path: Path) -> None:
    image_set = load_dataset(f"neural:{kriegeskorte92}", isolated_cache)
    extract(image_set, describe(ENCODER), ["final"], FeatureStore(isolated_cache / "features"))
    query = urlencode({"dataset_kind": NEURAL, "dataset_path_neural": str(kriegeskorte92), "encoder": ENCODER,
                       "brain.n_bootstrap": 50})
    with served(isolated_cache) as url, browser_page(f"{url}/brain?{query}", 2400) as page:
        page.wait_for_selector("h1:has-text('Brain')", timeout=180_000)
        page.wait_for_selector(IDLE, timeout=180_000)
        page.get_by_role("button", name="Compute", exact=True).click()
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 4", timeout=300_000)
        page.wait_for_timeout(800)
        page.wait_for_selector(IDLE, timeout=120_000)
        titles = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')]"
                               ".map((plot) => plot.layout.title.text)")
        assert page.locator("[data-testid='stException']").count() == 0
        assert page.get_by_role("button", name="Compute", exact=True).is_disabled()  # stored
        page.screenshot(path=str(tmp_path / "brain.png"), full_page=True)
    assert "Models of behaviour" in titles[0] and any("Encoder layers vs" in title for title in titles)
    assert any("Second-order MDS" in title for title in titles) and len(titles) == 4
