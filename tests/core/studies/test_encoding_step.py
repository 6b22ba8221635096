"""An `encoding` study step on simulated response patterns: runs headless, stores the page's tables, exports its
figures; a dataset without patterns is refused naming what gives them."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest

import core.studies.export as study_export
from core.studies.analyses.encoding import result_key, stored_tables
from core.studies.context import feature_sets
from core.studies.engines import LocalEngine
from core.studies.export import export_study
from core.studies.scoreboard import study_scoreboard
from core.studies.run import STEP_KIND, open_context, run_study, step_key
from core.studies.spec import StudyError, load_study
from tests.simulated_patterns import write_pattern_folder


def test_an_encoding_step_stores_its_tables_and_exports_its_figures(isolated_cache, tmp_path) -> None:
    root = write_pattern_folder(tmp_path / "set", n_items=20, n_units=12, subjects=1, noise_group=False)
    toml = tmp_path / "encoding.toml"
    toml.write_text(f'name = "enc"\ndatasets = ["neural:{root}"]\nencoders = ["pixels:8", "pixels:4"]\n\n'
                    f'[[steps]]\nanalysis = "encoding"\nn_splits = 4\nalpha_grid = "fine"\n')
    study = load_study(toml, isolated_cache)
    [status] = run_study(study, isolated_cache, LocalEngine())
    assert status.state == "done", status.error
    context = open_context(study, isolated_cache)
    stored = context.results.get(STEP_KIND, step_key(study.steps[0], context))  # the cache may hold others' steps
    layers = stored.table("layers")
    assert list(layers["encoder"]) == ["pixels:8", "pixels:4"] and set(layers["group"]) == {"IT"}
    assert (layers["median_r"] > 0.6).all() and len(stored.table("units")) == 2 * 12
    step = study.steps[0]
    key = result_key(step.settings, context.image_set(step),
                     [found.key.digest for found in feature_sets(step, context).values()])
    page_tables = stored_tables(context.scores, key)  # under the Brain page's key: the step opens there at once
    np.testing.assert_array_equal(page_tables["layers"]["median_r"], layers["median_r"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(study_export, "static_export_status", lambda: (False, "no Chromium in this test"))
        export_study(study, isolated_cache, tmp_path / "enc.zip")
    with zipfile.ZipFile(tmp_path / "enc.zip") as archive:
        names = archive.namelist()
    assert any(name.endswith("layers_it.html") for name in names), names
    assert any("units_it_pixels" in name for name in names), names
    assert any(name.endswith("layers.csv") for name in names), names
    board = study_scoreboard(study, isolated_cache)  # the scoreboard's cells are the stored numbers
    for spec in ("pixels:8", "pixels:4"):
        found = board.cell(spec, "encoding_r vs IT")
        assert found["status"] == "ok" and found["layer"] == "final"
        assert found["value"] == pytest.approx(layers[layers["encoder"] == spec]["median_r"].mean(), abs=1e-12)
        normalised = board.cell(spec, "encoding_r_normalised vs IT")["value"]
        assert normalised == pytest.approx(layers[layers["encoder"] == spec]["median_r_normalised"].mean(), abs=1e-12)


def test_a_dataset_without_patterns_is_refused(isolated_cache, tmp_path) -> None:
    toml = tmp_path / "encoding.toml"
    root = write_pattern_folder(tmp_path / "set", n_items=8, n_units=2, subjects=1, noise_group=False)
    toml.write_text(f'name = "enc"\ndatasets = ["folder:{root}/images"]\nencoders = ["pixels:8"]\n\n'
                    f'[[steps]]\nanalysis = "encoding"\n')
    with pytest.raises(StudyError, match=r"steps\[1\]\.analysis.*no response patterns.*\|patterns="):
        load_study(toml, isolated_cache)
