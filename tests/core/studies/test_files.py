"""Study files written by hand: every analysis's step reads back through `load_study` with the same settings, and a
step that does not validate writes nothing."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.studies.files import add_step, appended, step_toml, study_header_toml, toml_string, toml_value
from core.studies import analyses
from core.studies.spec import StudyError, load_study

ENCODER = "pixels:32"
NAME = 'a "quoted" \\ name'  # a quote and a backslash, in the one free-text key a header writes
HEADER = study_header_toml(NAME, ["demo"], [ENCODER], ["final"], "auto")
# What each analysis needs besides its defaults (alignment has no default pair), and a few edge values: a float
# like 1e-5, lists of strings, booleans both ways, floats that are not integers.
EDGES: dict[str, dict[str, Any]] = {
    "affect": {"schemes": ["loto", "loco"], "zscore": True, "geometry_scheme": "loco"},
    "probes": {"scheme": "gkfold"},
    "similarity": {"measures": ["cka_linear", "mutual_knn"], "rbf_sigma": 0.35, "bootstrap": 30},
    "alignment": {"source": "human · demo human", "targets": [f"{ENCODER} · final"], "eps_range": [1e-5, 1e-1],
                  "normalise": True, "anneal": False},
    "manifolds": {"radius_scale": 2.25, "map": "t-SNE"},
    "inductive_bias": {"corruptions": ["glo_2", "gamma_0.5"], "train_on": "clean"},
    "brain": {"reference_groups": ["raters"], "models": ["rdm · animacy"], "method": "tau-a", "n_bootstrap": 0,
              "resample": "stimuli", "seed": 7},
    "encoding": {"pattern_groups": ["voxels"], "n_splits": 4, "min_reliability": 0.25, "alpha_grid": "fine",
                 "alpha_per_unit": False, "seed": 3},
    "lab": {"objectives": ["clamp", "simclr"], "lr": 1e-5, "image_size": 48, "probe_views": 3},
}
VALID = HEADER + '\n[[steps]]\nanalysis = "affect"\nschemes = ["loto"]\n'


def defaults(analysis: str) -> dict:
    return dict(analyses.get(analysis).settings())


def plain(settings) -> dict:
    """Settings with tuples as lists, as written and as `load_study` returns them (it keeps lists as tuples)."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in dict(settings).items()}


def folder_state(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_the_header_and_strings_read_back() -> None:
    data = tomllib.loads(HEADER)
    assert data == {"name": NAME, "datasets": ["demo"], "encoders": [ENCODER], "layers": ["final"], "pooling": "auto"}
    awkward = 'tab\there, "quotes", back\\slash, \x7f'
    assert tomllib.loads("x = " + toml_string(awkward))["x"] == awkward
    assert tomllib.loads(f"x = {toml_value(1e-5)}")["x"] == 1e-5 and toml_value(False) == "false"
    assert tomllib.loads(study_header_toml("n", ["demo"], [ENCODER], [], "auto"))["layers"] == ["final"]


@pytest.fixture
def rdm_header(tmp_path, isolated_cache) -> str:
    """HEADER on the demo with RDM files attached (|rdms=): a group of 3 raters and a model RDM, for brain; and
    response patterns (|patterns=): 2 repetitions of 5 voxels, for encoding."""
    from core.data.datasets import demo

    n = len(demo(isolated_cache))
    upper = np.triu(np.random.default_rng(0).uniform(0.1, 1.0, (3, n, n)), 1)
    np.save(tmp_path / "raters_subjects.npy", upper + upper.transpose(0, 2, 1))
    np.save(tmp_path / "model_animacy.npy", upper[0] + upper[0].T)
    np.save(tmp_path / "voxels.npy", np.random.default_rng(1).normal(size=(2, n, 5)))
    dataset = (f"demo|rdms={tmp_path / 'raters_subjects.npy'},{tmp_path / 'model_animacy.npy'}"
               f"|patterns={tmp_path / 'voxels.npy'}")
    return study_header_toml(NAME, [dataset], [ENCODER], ["final"], "auto")


@pytest.mark.parametrize("analysis", [entry.name for entry in analyses.analyses()])
def test_every_analysis_with_its_defaults_reads_back(analysis, tmp_path, isolated_cache, rdm_header) -> None:
    settings = {**defaults(analysis), **EDGES[analysis]}
    path = tmp_path / "study.toml"
    path.write_text(appended(rdm_header if analysis in ("brain", "encoding") else HEADER, step_toml(analysis, settings)))
    study = load_study(path, isolated_cache)
    [step] = study.steps
    assert study.name == NAME and step.analysis == analysis
    assert step.encoders == ((ENCODER,) if analyses.get(analysis).needs_encoders else ())
    assert plain(step.settings) == plain(settings)


def test_a_new_file_gets_the_header_and_every_step_appends(tmp_path, isolated_cache, rdm_header) -> None:
    path = tmp_path / "new" / "study.toml"
    for count, analysis in enumerate([entry.name for entry in analyses.analyses()], start=1):
        study = add_step(path, analysis, {**defaults(analysis), **EDGES[analysis]}, header=rdm_header,
                         comment=f"step {count}", cache=isolated_cache)
        assert len({step.index for step in study.steps}) == count
    text = path.read_text()
    assert text.startswith(rdm_header) and text.count(rdm_header) == 1 and "# step 6\n[[steps]]" in text
    study = load_study(path, isolated_cache)
    assert study.name == NAME and study.datasets[0].startswith("demo|rdms=") and study.pooling == "auto"
    assert [step.analysis for step in study.steps] == [entry.name for entry in analyses.analyses()]
    for step in study.steps:
        assert plain(step.settings) == plain({**defaults(step.analysis), **EDGES[step.analysis]})


def test_extra_keys_and_a_missing_final_newline(tmp_path, isolated_cache) -> None:
    path = tmp_path / "study.toml"
    path.write_text(VALID.rstrip("\n"))
    study = add_step(path, "probes", {"scheme": "loco", "unknown": 1, "n_splits": None}, extra={"encoders": [ENCODER]},
                     header="ignored: the file exists", cache=isolated_cache)
    assert [step.analysis for step in study.steps] == ["affect", "probes"]
    assert study.steps[-1].settings["scheme"] == "loco" and study.steps[-1].settings["n_splits"] == 5
    assert 'encoders = ["pixels:32"]\nscheme = "loco"\n' in path.read_text() and "ignored" not in path.read_text()


def test_a_step_that_does_not_validate_writes_nothing(tmp_path, isolated_cache) -> None:
    path = tmp_path / "study.toml"
    path.write_bytes(VALID.encode())
    before = folder_state(tmp_path)
    with pytest.raises(StudyError, match=rf"{path}:\d+: steps\[2\]\.n_eps"):
        add_step(path, "alignment", {**defaults("alignment"), **EDGES["alignment"], "n_eps": 99}, cache=isolated_cache)
    with pytest.raises(StudyError, match="no source 'upload · x.csv'"):
        add_step(path, "alignment", {**EDGES["alignment"], "targets": ["upload · x.csv"]}, cache=isolated_cache)
    assert folder_state(tmp_path) == before  # byte for byte, and no temporary left beside it
    new = tmp_path / "new.toml"
    with pytest.raises(StudyError, match="n_splits"):
        add_step(new, "affect", {"n_splits": 1}, header=HEADER, cache=isolated_cache)
    with pytest.raises(StudyError, match="datasets"):
        add_step(new, "affect", {}, cache=isolated_cache)  # a new file without a header names no data
    assert not new.exists() and folder_state(tmp_path) == before
