"""Served to a group: an upload over the server's cap (`server.maxUploadSize`) is refused in a real browser,
one under it is read."""
from __future__ import annotations

import io

import numpy as np
import pytest

from tests.browser.server import browser_page, served

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


@pytest.fixture(scope="module")
def capped_app(isolated_cache):
    """The app with uploads capped at 1 MB (the repository's config says 200), on the demo with the default
    encoders' final layers extracted (so the Similarity page lists its sources before any upload)."""
    from core.data.datasets import demo
    from core.encoders.registry import describe
    from core.features.extract import extract
    from core.features.store import FeatureStore

    for spec in ("bundled:efficientnet_lite0", "pixels:32"):
        extract(demo(isolated_cache), describe(spec), ["final"], FeatureStore(isolated_cache / "features"))
    with served(isolated_cache, "--server.maxUploadSize", "1") as url:
        yield url


def npy(rows: int, columns: int) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(0).normal(size=(rows, columns)))
    return buffer.getvalue()


def source_options(page, prefix: str = "") -> list[str]:
    """The representations the Similarity page offers (the Sources box's options and chosen tags) that start
    with `prefix`. A new upload is offered, not chosen, once the box exists."""
    box = page.locator("[data-testid='stMultiSelect']").filter(has_text="Sources")
    box.locator("input").click()
    page.wait_for_timeout(300)
    offered = page.get_by_role("option").all_inner_texts()
    chosen = box.locator("[data-baseweb='tag']").all_inner_texts()
    page.keyboard.press("Escape")
    return sorted(name.strip() for name in offered + chosen if name.strip().startswith(prefix))


@pytest.mark.slow
def test_an_upload_over_the_cap_is_refused_and_one_under_it_is_read(capped_app) -> None:
    with browser_page(f"{capped_app}/similarity", 1600) as page:
        page.wait_for_selector("h1:has-text('Similarity')", timeout=180_000)
        page.wait_for_selector(IDLE, timeout=180_000)
        upload = page.locator("[data-testid='stFileUploader'] input[type='file']")
        big = npy(384, 400)  # 1.2 MB: over the 1 MB cap
        upload.set_input_files(files=[{"name": "big.npy", "mimeType": "application/octet-stream", "buffer": big}])
        page.get_by_text("File must be 1.0MB or smaller.").wait_for(timeout=30_000)
        page.wait_for_timeout(1500)
        page.wait_for_selector(IDLE, timeout=120_000)
        assert source_options(page, "upload") == []  # refused before the server read it
        small = npy(384, 16)  # 49 kB: one row per demo item
        upload.set_input_files(files=[{"name": "small.npy", "mimeType": "application/octet-stream", "buffer": small}])
        page.wait_for_timeout(1500)
        page.wait_for_selector(IDLE, timeout=120_000)
        assert source_options(page, "upload") == ["upload · small.npy"]
        assert page.locator("[data-testid='stException']").count() == 0
