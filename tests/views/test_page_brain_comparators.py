"""The Brain page with several comparators on the 92-image folder: the table holds every model × reference ×
comparator (each equal to evaluate_rsa with that comparator); the figures draw the comparator shown."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.analyses.rsa import condensed
from core.analyses.rsa_inference import evaluate_rsa
from core.data.datasets import neural
from tests.views.pages import open_page, press_and_wait

STATE = {"brain.reference_groups": ["hIT"], "brain.models": ["rdm · mIT_674neurons", "rdm · animacy"],
         "brain.method": ["corr", "tau-a"], "brain.bootstrap_on": False}


def run_page(folder: Path, **state) -> AppTest:
    return open_page("views/brain.py", {"dataset_kind": "neural", "dataset_path_neural": str(folder), **STATE,
                                        **state})


def test_every_comparator_is_in_the_table_and_the_figures_draw_the_one_shown(kriegeskorte92: Path) -> None:
    app = press_and_wait(run_page(kriegeskorte92), "Compute")
    table = next(frame.value for frame in app.dataframe if "ceiling_normalised" in frame.value.columns)
    image_set = neural(kriegeskorte92)
    data = condensed(image_set.rdm_reference("hIT").rdms)
    models = condensed(image_set.rdm_reference("mIT_674neurons").mean[None])
    assert sorted(table["method"].unique()) == ["corr", "tau-a"]
    for method in ("corr", "tau-a"):
        row = table[(table["method"] == method) & (table["model"] == "rdm · mIT_674neurons")].iloc[0]
        assert row["mean"] == pytest.approx(float(evaluate_rsa(models, data, method).mean[0]), abs=1e-12)
    ceilings = next(frame.value for frame in app.dataframe if "upper" in frame.value.columns)
    assert len(ceilings) == 2 and set(ceilings["method"]) == {"corr", "tau-a"}
    bars = json.loads(app.get("plotly_chart")[0].proto.spec)["data"][0]
    corr = table[table["method"] == "corr"].sort_values("mean", ascending=False)
    assert bars["x"] == list(corr["model"])
    tau = run_page(kriegeskorte92, **{"brain.view_method": "tau-a"})
    figure = json.loads(tau.get("plotly_chart")[0].proto.spec)
    assert "Kendall τa" in figure["layout"]["title"]["text"]
    bars = figure["data"][0]
    assert bars["x"] == list(table[table["method"] == "tau-a"].sort_values("mean", ascending=False)["model"])
    assert next(box for box in tau.selectbox if box.key == "brain.view_method").help
