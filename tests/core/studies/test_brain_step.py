"""A `brain` study step on the 92-image folder: run, stored tables, and `study export`'s figures."""
from __future__ import annotations

import zipfile

import pytest

from core.studies.engines import LocalEngine
from core.studies.export import export_study
from core.studies.run import STEP_KIND, open_context, run_study
from core.studies.spec import load_study
import core.studies.export as study_export


def test_a_brain_step_stores_every_layer_against_human_it_and_exports_its_figures(kriegeskorte92, isolated_cache,
                                                                                  tmp_path) -> None:
    toml = tmp_path / "brain.toml"
    toml.write_text(f'''name = "brain"
datasets = ["neural:{kriegeskorte92}"]
encoders = ["pixels:32"]

[[steps]]
analysis = "brain"
reference_groups = ["hIT"]
models = ["rdm · mIT_674neurons", "rdm · animacy"]
n_bootstrap = 40
''')
    study = load_study(toml, isolated_cache)
    assert [status.state for status in run_study(study, isolated_cache, LocalEngine())] == ["done"]
    context = open_context(study, isolated_cache)
    stored = [context.results.get(STEP_KIND, meta["key"]) for meta in context.results.entries(STEP_KIND)]
    models = stored[0].table("models").set_index("model")
    assert set(models.index) == {"pixels:32 · final", "rdm · mIT_674neurons", "rdm · animacy"}
    assert models.loc["rdm · mIT_674neurons", "mean"] == pytest.approx(0.3335, abs=5e-5)
    assert models.loc["pixels:32 · final", "kind"] == "encoder layer"
    assert set(stored[0].table_names) >= {"models", "noise_ceiling", "pairwise", "per_subject"}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(study_export, "static_export_status", lambda: (False, "no Chromium in this test"))
        export_study(study, isolated_cache, tmp_path / "brain.zip")
    with zipfile.ZipFile(tmp_path / "brain.zip") as archive:
        names = archive.namelist()
    assert any(name.endswith("models_hIT.html") for name in names), names
    assert any(name.endswith("layers_hIT.html") for name in names), names
    assert any(name.endswith("models.csv") for name in names), names
    assert any(name.endswith("mds_hIT.html") for name in names), names
