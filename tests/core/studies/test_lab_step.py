"""A study's `lab` step, headless: it trains its objectives into the page's run folders, keeps their dynamics epoch by
epoch, and `study export` writes the dynamics as a CSV (epoch × objective × measure) and as figures."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from core.lab.dynamics import MEASURES, read_dynamics
from core.lab.runs import lab_dir
from core.studies import export as study_export
from core.studies.analyses.lab import train_configs
from core.studies.engines import LocalEngine
from core.studies.export import export_study
from core.studies.run import run_study
from core.studies.spec import StudyError, load_study

STUDY = '''name = "tiny lab"
datasets = ["demo"]

[[steps]]
analysis = "lab"
objectives = ["supervised", "clamp"]
epochs = 1
image_size = 32
max_images = 24
batch_size = 12
views = 2
probe_per_class = 2
probe_views = 2
'''


@pytest.fixture(scope="module")
def trained(isolated_cache: Path, tmp_path_factory) -> tuple:
    path = tmp_path_factory.mktemp("lab-study") / "lab.toml"
    path.write_text(STUDY)
    study = load_study(path, isolated_cache)
    [status] = run_study(study, isolated_cache, LocalEngine(), device="cpu")
    assert status.state == "done", status.error
    return study, path


@pytest.mark.slow  # trains two objectives for an epoch: ~30 s on a loaded 2-core machine
def test_a_lab_step_trains_into_the_pages_run_folders_and_keeps_their_dynamics(trained, isolated_cache) -> None:
    study, _ = trained
    [step] = study.steps
    assert step.encoders == () and step.layers == {}
    configs = train_configs(step.settings, "demo")  # the same runs the page builds from the same settings
    for objective, config in configs.items():
        stored = read_dynamics(lab_dir(isolated_cache) / config.run_id)
        assert (lab_dir(isolated_cache) / config.run_id / "result.json").is_file()
        spaces = ["backbone"] + (["embedding"] if objective == "clamp" else [])
        assert [(item.epoch, item.space) for item in stored] == [(epoch, space) for epoch in (0, 1) for space in spaces]
        assert set(stored[0].measures) == {key for key, _, _ in MEASURES}


@pytest.mark.slow
def test_study_export_writes_the_dynamics_csv_and_figures(trained, isolated_cache, tmp_path, monkeypatch) -> None:
    study, _ = trained
    monkeypatch.setattr(study_export, "static_export_status", lambda: (False, "HTML only (patched by the test)"))
    export_study(study, isolated_cache, tmp_path / "lab.zip")
    with zipfile.ZipFile(tmp_path / "lab.zip") as archive:
        names = set(archive.namelist())
        table = pd.read_csv(io.BytesIO(archive.read("01_lab_demo/dynamics.csv")))
        methods = archive.read("methods.md").decode()
    assert {"run", "objective", "space", "epoch", "measure", "class", "value"} <= set(table.columns)
    overall = table[table["class"].isna()]
    # Every measure at epochs 0 and 1 for both objectives in the backbone, and for clamp in its embedding.
    counts = overall.groupby(["objective", "space"])["epoch"].nunique().to_dict()
    assert counts == {("clamp", "backbone"): 2, ("clamp", "embedding"): 2, ("supervised", "backbone"): 2}
    assert set(overall["measure"]) == {key for key, _, _ in MEASURES}
    # The CSV holds the numbers stored with the runs.
    config = train_configs(study.steps[0].settings, "demo")["clamp"]
    last = [item for item in read_dynamics(lab_dir(isolated_cache) / config.run_id) if item.space == "backbone"][-1]
    row = overall[(overall["objective"] == "clamp") & (overall["space"] == "backbone") & (overall["epoch"] == 1)
                  & (overall["measure"] == "uniformity")]
    assert row["value"].item() == pytest.approx(last.measures["uniformity"])
    assert {"01_lab_demo/backbone_uniformity.html", "01_lab_demo/embedding_radius_mean.html",
            "01_lab_demo/loss_curves.html"} <= names
    assert any(name.startswith("01_lab_demo/map_clamp") and name.endswith("_embedding.html") for name in names)
    assert "Not drawn" not in methods


def test_a_lab_step_names_no_encoders(tmp_path, isolated_cache) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(STUDY + 'encoders = ["pixels:32"]\n')
    with pytest.raises(StudyError, match=r"steps\[1\]\.encoders: lab names no encoders or layers"):
        load_study(path, isolated_cache)
    path.write_text(STUDY.replace('objectives = ["supervised", "clamp"]', 'objectives = ["moco"]'))
    with pytest.raises(StudyError, match=r"steps\[1\]\.objectives: .*supervised, simclr, clamp, language"):
        load_study(path, isolated_cache)
