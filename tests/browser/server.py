"""`streamlit run app.py` on 127.0.0.1 for the browser tests: one way to start it, wait for it and stop it."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.paths import REPO_ROOT as ROOT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def server_process(cache: Path, *options: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """The app's server process and base URL while it serves from `cache` (REPSCOPE_CACHE) with extra `streamlit
    run` options; stopped at the end (SIGTERM, then SIGKILL after 15 s) unless the caller has stopped it."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         *options],
        cwd=ROOT, env={**os.environ, "REPSCOPE_CACHE": str(cache)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.3)
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:  # still busy with a rerun: stop it hard
                server.kill()
                server.wait(15)


@contextmanager
def served(cache: Path, *options: str) -> Iterator[str]:
    """The app's base URL while it serves from `cache` (REPSCOPE_CACHE) with extra `streamlit run` options."""
    with server_process(cache, *options) as (_, url):
        yield url


@contextmanager
def browser_page(url: str, height: int, **options):
    """A headless Chromium tab (1500 px wide) opened on `url`; skips the test where Chromium or Playwright is
    missing. `options` go to `new_page` (e.g. accept_downloads=True)."""
    import pytest

    from core.export import find_chromium

    chromium = find_chromium()
    if chromium is None:
        pytest.skip("Chromium not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1500, "height": height}, **options)
        page.goto(url)
        try:
            yield page
        finally:
            browser.close()


ITEM_POINTS_JS = """([title, limit]) => {
    const plot = Array.from(document.querySelectorAll(".js-plotly-plot"))
        .find((candidate) => (candidate._fullLayout.title.text || "").includes(title));
    if (!plot) return [];
    const layout = plot._fullLayout, box = plot.getBoundingClientRect(), points = [];
    for (const trace of plot._fullData) {
        if (!trace.customdata || !trace.x) continue;
        const xaxis = layout[trace.xaxis.replace("x", "xaxis")], yaxis = layout[trace.yaxis.replace("y", "yaxis")];
        for (let i = 0; i < trace.x.length && points.length < limit; i++) {
            points.push([trace.customdata[i][0], box.x + xaxis._offset + xaxis.l2p(trace.x[i]),
                         box.y + yaxis._offset + yaxis.l2p(trace.y[i])]);
        }
    }
    return points;
}"""


def click_an_item(page, chart_title: str) -> int:
    """Click the clickable point (customdata[0] = item row) of the chart titled `chart_title` that lies farthest
    from the others, so that nothing else is under the pointer; wait for the rerun; return the item's row."""
    import numpy as np

    points = page.evaluate(ITEM_POINTS_JS, [chart_title, 2000])
    assert points, f"no clickable points in the chart titled {chart_title!r}"
    xy = np.array([[x, y] for _, x, y in points])
    gaps = np.sort(np.linalg.norm(xy[:, None] - xy[None], axis=2), axis=1)[:, 1]
    row, x, y = points[int(np.argmax(gaps))]
    page.mouse.move(x, y)
    page.wait_for_timeout(500)
    page.mouse.click(x, y)
    page.wait_for_timeout(1500)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=180_000)
    return int(row)
