"""The shared extraction panel through AppTest: errors belong to their dataset, the Extract button says why
there is nothing to extract, no progress bar outlives its job."""
from __future__ import annotations

import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.data.datasets import demo
from core.encoders.registry import describe
from core.features import extract as extract_module
from core.features.extract import extract
from core.features.store import FeatureStore
from tests.paths import APP

UNAVAILABLE = "timm:resnet50.tv_in1k"  # pretrained weights: unavailable offline (forced below, whatever is cached)


def extraction_table(app: AppTest) -> pd.DataFrame:
    return next(frame.value for frame in app.dataframe if "state" in frame.value.columns)


def extract_button(app: AppTest):
    return next(button for button in app.main.button if button.help and button.help.startswith("Runs in the"))


def wait_for_jobs(app: AppTest, timeout_s: float = 120) -> None:
    """Rerun until this session's extraction jobs have ended (their failures recorded by the panel)."""
    deadline = time.time() + timeout_s
    while app.session_state["extraction_jobs"] and time.time() < deadline:
        time.sleep(0.5)
        app.run()
        assert not app.exception, [exception.value for exception in app.exception]


def manifests(root: Path) -> tuple[Path, Path]:
    """good.csv: two valid images; bad.csv: the same plus a truncated JPEG. The images are this folder's own:
    fingerprints hash content, so another test's identical images would find the features it cached."""
    rng = np.random.default_rng(zlib.crc32(str(root).encode()))
    root.mkdir(parents=True)
    for name in ("one.jpg", "two.jpg"):
        Image.fromarray(rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)).save(root / name, quality=90)
    (root / "corrupt.jpg").write_bytes((root / "one.jpg").read_bytes()[:300])
    pd.DataFrame({"path": ["one.jpg", "two.jpg"]}).to_csv(root / "good.csv", index=False)
    pd.DataFrame({"path": ["one.jpg", "two.jpg", "corrupt.jpg"]}).to_csv(root / "bad.csv", index=False)
    return root / "good.csv", root / "bad.csv"


def test_an_extraction_error_belongs_to_its_dataset(tmp_path: Path) -> None:
    good, bad = manifests(tmp_path / "data")
    app = AppTest.from_file(APP, default_timeout=180)
    app.session_state["encoders"] = ["pixels:32"]
    app.session_state["dataset_kind"] = "manifest"
    app.session_state["dataset_path_manifest"] = str(bad)
    app.run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert list(extraction_table(app)["state"]) == ["missing"]
    extract_button(app).click().run()
    wait_for_jobs(app)
    errors = [error.value for error in app.main.error if "corrupt.jpg" in error.value]
    assert len(errors) == 1 and errors[0].startswith("pixels:32: 1 image file(s) cannot be read")

    app.sidebar.text_input(key="dataset_path_manifest").input(str(good)).run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert not [error.value for error in app.main.error if "corrupt.jpg" in error.value]
    extract_button(app).click().run()
    wait_for_jobs(app)
    assert list(extraction_table(app)["state"]) == ["cached"]
    assert extract_button(app).label == "Everything selected is cached" and not app.get("progress")


def test_the_extract_button_names_unavailable_encoders(isolated_cache: Path, monkeypatch) -> None:
    extract(demo(isolated_cache), describe("pixels:32"), ["final"], FeatureStore(isolated_cache / "features"))
    available = extract_module.availability
    monkeypatch.setattr(extract_module, "availability", lambda encoder: (False, "weights not in the local cache")
                        if encoder.spec == UNAVAILABLE else available(encoder))
    app = AppTest.from_file(APP, default_timeout=180)
    app.session_state["encoders"] = ["pixels:32", UNAVAILABLE]
    app.run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert list(extraction_table(app)["state"]) == ["cached", "unavailable"]
    button = extract_button(app)
    assert button.label == "Nothing to extract: 1 encoder(s) unavailable (see table)" and button.disabled
