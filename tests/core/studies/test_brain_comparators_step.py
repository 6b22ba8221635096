"""A `brain` study step with several comparators: one models table row per model × comparator, figures per comparator."""
from __future__ import annotations

import zipfile

import pytest

import core.studies.export as study_export
from core.studies.export import export_study
from core.studies.run import STEP_KIND, open_context
from tests.studies import run_step


def test_a_step_with_two_comparators_stores_and_draws_both(kriegeskorte92, isolated_cache, tmp_path) -> None:
    study, status = run_step(tmp_path, isolated_cache, f"neural:{kriegeskorte92}", "brain", {
        "reference_groups": ["hIT"], "models": ["rdm · mIT_674neurons"], "method": ["corr", "rho-a"],
        "n_bootstrap": 0})
    assert study.steps[0].settings.methods == ("corr", "rho-a")
    context = open_context(study, isolated_cache)
    models = context.results.get(STEP_KIND, status.key).table("models").set_index(["model", "method"])
    assert models.loc[("rdm · mIT_674neurons", "corr"), "mean"] == pytest.approx(0.3335, abs=5e-5)
    assert len(models) == 4  # pixels:32 · final and mIT, by each comparator
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(study_export, "static_export_status", lambda: (False, "no Chromium in this test"))
        export_study(study, isolated_cache, tmp_path / "brain.zip")
    with zipfile.ZipFile(tmp_path / "brain.zip") as archive:
        names = archive.namelist()
    for figure in ("models_hIT_corr", "models_hIT_rho-a", "layers_hIT_rho-a", "mds_hIT_corr"):
        assert any(name.endswith(f"{figure}.html") for name in names), (figure, names)
