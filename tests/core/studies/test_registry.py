"""An analysis is declared once: a toy registered in this test reaches study validation, the study runner,
`study export` and the Studies page's opener, and no other file of the repository names it."""
from __future__ import annotations

import ast
import io
import zipfile
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from core.analyses.registry import Analysis, Settings, SettingError, register, setting, unregister
from core.progress import Progress
from core.studies import analyses
from core.studies.context import STEP_KIND, StepOutput, clean_units, feature_sets
from core.studies.engines import LocalEngine
from core.studies.export import export_study
from core.studies.run import open_context, run_study, study_status
from core.studies.spec import StudyError, load_study
from tests.paths import REPO_ROOT
from views.ui.study_openers import opening

STUDY = '''name = "toy study"
datasets = ["demo"]
encoders = ["pixels:8"]

[[steps]]
analysis = "toy"
scale = 3.0
'''


@dataclass(frozen=True)
class ToySettings(Settings):
    scale: float = setting(2.0, "Multiplies each layer's mean feature.", low=0.5, high=10.0)
    summary: str = setting("mean", "How a layer's features are summarised.", choices=("mean", "max"))


def toy_run(step, context, engine, report) -> StepOutput:
    """One row per encoder layer: its features' mean (or max) times the scale."""
    rows = []
    for layer, feature_set in feature_sets(step, context).items():
        features = np.asarray(feature_set.features)
        value = features.mean() if step.settings.summary == "mean" else features.max()
        rows.append({"model": layer.label, "value": float(value) * step.settings.scale})
    report(Progress(1, 1))
    return StepOutput({"values": pd.DataFrame(rows)}, f"{len(rows)} layer(s)")


def toy_draw(step, stored, tables, context):
    values = tables["values"]
    return {"bars": lambda: go.Figure(go.Bar(x=values["model"], y=values["value"]))}, {}, []


@pytest.fixture
def toy():
    entry = register(Analysis("toy", "Toy", "views/toy.py", "🧸", ToySettings, clean_units, toy_run, toy_draw))
    yield entry
    unregister("toy")


def test_a_toy_analysis_runs_through_every_reader_of_the_registry(toy, tmp_path, isolated_cache) -> None:
    path = tmp_path / "toy.toml"
    path.write_text(STUDY)
    study = load_study(path, isolated_cache)  # validation reads the toy's Settings
    [step] = study.steps
    assert step.settings == ToySettings(scale=3.0) and dict(step.settings) == {"scale": 3.0, "summary": "mean"}

    [status] = run_study(study, isolated_cache, LocalEngine())  # the runner extracts its units, then runs it
    assert status.state == "done" and status.summary == "1 layer(s)"
    context = open_context(study, isolated_cache)
    stored = context.results.get(STEP_KIND, status.key)
    [features] = feature_sets(step, context).values()
    assert stored.table("values")["value"].tolist() == [pytest.approx(3.0 * np.asarray(features.features).mean())]
    assert study_status(study, isolated_cache)[0].state == "done"

    out = tmp_path / "toy.zip"
    summary = export_study(study, isolated_cache, out)  # study export draws the toy's figures
    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
        assert {"01_toy_demo/values.csv", "01_toy_demo/bars.html"} <= names
        exported = pd.read_csv(io.BytesIO(archive.read("01_toy_demo/values.csv")))
        assert "| scale | 3.0 |" in archive.read("methods.md").decode()
    assert summary.n_figures == 1 and exported["value"].iloc[0] == pytest.approx(stored.table("values")["value"][0])

    opened = opening(STEP_KIND, stored.meta, context.results)  # the Studies page's opener, by the widget-key rule
    assert opened.page == "views/toy.py" and opened.title == "Toy"
    assert opened.state["toy.scale"] == 3.0 and opened.state["toy.summary"] == "mean"
    assert opened.state["encoders"] == ["pixels:8"] and opened.state["dataset_kind"] == "demo"


def test_the_toy_settings_are_checked_as_declared(toy, tmp_path, isolated_cache) -> None:
    for line, message in (("scale = 30.0", "30.0 must be a number from 0.5 to 10"),
                          ('summary = "median"', "must be one of mean, max"),
                          ("scales = 2.0", "toy takes no key 'scales'; it takes scale, summary, encoders, layers")):
        path = tmp_path / "bad.toml"
        path.write_text(STUDY.replace("scale = 3.0", line))
        with pytest.raises(StudyError, match=message):
            load_study(path, isolated_cache)
    with pytest.raises(SettingError):
        ToySettings.parse({"scale": True})
    assert ToySettings.describe("scale").high == 10.0 and ToySettings.default("summary") == "mean"


def test_no_module_but_the_registry_keeps_a_table_keyed_by_analysis_names() -> None:
    """No dict literal outside the declarations (core/studies/analyses/) has two or more analysis names as keys."""
    names = {entry.name for entry in analyses.analyses()}
    sources = [path for folder in ("core", "views", "bench") for path in (REPO_ROOT / folder).rglob("*.py")]
    tables = []
    for path in [*sources, REPO_ROOT / "app.py"]:
        if path.parent.name == "analyses" and path.parent.parent.name == "studies":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            keys = {key.value for key in getattr(node, "keys", ()) if isinstance(key, ast.Constant)}
            if isinstance(node, ast.Dict) and len(keys & names) >= 2:
                tables.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert not tables, f"tables keyed by analysis names outside the registry: {tables}"
    assert not (REPO_ROOT / "views" / "toy.py").exists()  # the toy needed no file of its own to be opened
