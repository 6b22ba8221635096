"""The Objective lab's centroid map in a real browser: dragging the epoch slider to 0 redraws the map at epoch 0 (the
collapsed start), from a stored run whose dynamics the test writes."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pytest

from core.figures.lab import run_label
from core.lab.dynamics import EpochGeometry, write_epoch
from core.lab.runs import lab_dir
from core.studies.analyses.lab import LabSettings, train_configs
from tests.browser.server import browser_page, served

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
EPOCHS = 3
MAP_X = """() => {
    const plot = [...document.querySelectorAll('.js-plotly-plot')]
        .find((candidate) => (candidate.layout.title.text || '').includes('Probe-set sub-manifolds'));
    return plot._fullData.filter((trace) => trace.mode === 'markers').flatMap((trace) => Array.from(trace.x));
}"""
RAIL = """() => {
    const plot = [...document.querySelectorAll('.js-plotly-plot')]
        .find((candidate) => (candidate.layout.title.text || '').includes('Probe-set sub-manifolds'));
    plot.scrollIntoView();
    const box = plot.querySelector('.slider-rail-touch-rect').getBoundingClientRect();
    return [box.x, box.y + box.height / 2];
}"""


def stored_run(cache: Path) -> str:
    """A clamp run (page defaults, EPOCHS epochs) whose probe centroids spread out from near a point; its label."""
    config = train_configs(LabSettings(objectives=("clamp",), epochs=EPOCHS), "demo")["clamp"]
    run = lab_dir(cache) / config.run_id
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(asdict(config)))
    rng = np.random.default_rng(0)
    spread = rng.normal(size=(8, 12))
    for epoch in range(EPOCHS + 1):
        write_epoch(run, [EpochGeometry(epoch, "backbone", {"uniformity": float(epoch)}, ("a", "b"),
                                        {"a": 0.0, "b": 0.0}, np.eye(2), spread * (0.01 + epoch), np.full(8, 0.05),
                                        tuple("aaaabbbb"), 0.0)])
    return run_label("clamp", config.run_id)


@pytest.mark.slow
def test_the_epoch_slider_redraws_the_centroid_map(isolated_cache: Path, tmp_path: Path) -> None:
    label = stored_run(isolated_cache)
    query = urlencode({"lab.epochs": EPOCHS, "lab.dynamics_run": label})
    with served(isolated_cache) as url, browser_page(f"{url}/lab?{query}", 2400) as page:
        page.wait_for_selector("h1:has-text('Objective lab')", timeout=180_000)
        page.wait_for_selector(IDLE, timeout=180_000)
        page.wait_for_function("[...document.querySelectorAll('.js-plotly-plot')].some((plot) => "
                               "(plot.layout.title.text || '').includes('Probe-set sub-manifolds'))",
                               timeout=120_000)
        last = np.array(page.evaluate(MAP_X))
        x, y = page.evaluate(RAIL)
        page.mouse.move(x + 6, y)  # drag to the rail's left end: epoch 0
        page.mouse.down()
        page.mouse.move(x + 3, y)
        page.mouse.up()
        page.wait_for_timeout(1500)
        first = np.array(page.evaluate(MAP_X))
        assert page.locator("[data-testid='stException']").count() == 0
        page.screenshot(path=str(tmp_path / "lab_dynamics.png"), full_page=True)
    assert len(first) == len(last) == 8
    # Epoch 0's centroids are 1/301 of epoch 3's around the same PCA centre: the map shrank to its collapsed start.
    assert np.ptp(first) < 0.05 * np.ptp(last)
