"""Study files are validated whole before anything runs: every refusal names the file, line and key, and writes nothing."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.cli import main
from core.studies import analyses
from core.studies.spec import StudyError, load_study
from tests.paths import REPO_ROOT

GOOD = '''name = "tiny"
datasets = ["demo"]
encoders = ["pixels:32"]
layers = ["final"]

[[steps]]
analysis = "alignment"
source = "human · demo human"
targets = ["pixels:32 · final"]
eps_range = [1e-3, 1e-1]
'''


def written(cache: Path) -> set[Path]:
    """Every file a study run could have written (features, results), to check that a refusal wrote none."""
    return {path for folder in ("features", "results") for path in (cache / folder).rglob("*") if path.is_file()}


def test_a_valid_file_fills_every_default(tmp_path, isolated_cache) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text(GOOD)
    study = load_study(path, isolated_cache)
    [step] = study.steps
    assert study.name == "tiny" and step.encoders == ("pixels:32",) and step.layers == {"pixels:32": ("final",)}
    assert set(step.settings) == set(analyses.get("alignment").settings.names()) | {"eps_range"}
    assert step.settings["eps_range"] == (1e-3, 1e-1) and step.settings["n_eps"] == 10 and step.settings["anneal"]


def test_the_shipped_examples_validate(isolated_cache) -> None:
    demo = load_study(REPO_ROOT / "studies" / "demo.toml", isolated_cache)
    # the demo shows every analysis but brain and encoding, which need neural / behavioural RDM groups and response
    # patterns (the demo has none)
    shown = [entry.name for entry in analyses.analyses() if entry.name not in ("brain", "encoding")]
    assert [step.analysis for step in demo.steps] == shown
    # The OASIS study names real paths and hub models: it must parse, and say clearly what is missing here.
    with pytest.raises(StudyError, match=r"oasis_clip_vs_in21k\.toml:\d+: datasets: ") as refused:
        load_study(REPO_ROOT / "studies" / "oasis_clip_vs_in21k.toml", isolated_cache)
    if not Path("/data/oasis").exists():  # what the Studies page tells a user to set
        assert (refused.value.key, refused.value.line, refused.value.missing_path) == ("datasets", 10,
                                                                                      Path("/data/oasis"))


def edit(old: str, new: str):
    return lambda text: text.replace(old, new)


@pytest.mark.parametrize("broken, where, message", [
    (edit('encoders = ["pixels:32"]', 'encoders = ["timm:no_such_model_xyz"]'), ":3: encoders:", "no_such_model_xyz"),
    (edit('analysis = "alignment"', 'analysis = "alignmnet"'), ":7: steps[1].analysis:", "unknown analysis 'alignmnet'"),
    (edit('layers = ["final"]', 'layers = ["blocks.99"]'), ":4: layers:", "pixels:32 has no layer 'blocks.99'"),
    (edit("eps_range = [1e-3, 1e-1]", "eps_range = [1e-1, 1e-3]"), ":10: steps[1].eps_range:", "(swap them?)"),
    (edit('datasets = ["demo"]', 'datasets = ["oasis:/no/such/folder"]'), ":2: datasets:", "/no/such/folder"),
    (edit("eps_range = [1e-3, 1e-1]", "eps_range = [1e-3, 1e-1]\nn_epsilons = 4"), ":11: steps[1].n_epsilons:",
     "alignment takes no key 'n_epsilons'; it takes"),
    (edit("eps_range = [1e-3, 1e-1]", "eps_range = [1e-3, 1e-1]\nn_eps = 0"), ":11: steps[1].n_eps:",
     "0 must be an integer from 1 to 50"),
    (edit('targets = ["pixels:32 · final"]', 'targets = ["pixels:64 · final"]'), ":9: steps[1].targets:",
     "no source 'pixels:64 · final'"),
    (edit('layers = ["final"]', 'layers = ["final"]\ndevice = "gpu"'), ":5: device:", "'gpu' is not a device"),
    (edit('layers = ["final"]', 'layers = ["final"]\nbatch_size = 0'), ":5: batch_size:", "from 1 to 1024"),
    (edit('layers = ["final"]', 'layers = ["final"]\npooling = 3'), ":5: pooling:", "3 is not a pooling"),
    (edit("eps_range = [1e-3, 1e-1]", "eps_range = [1e-9, 1e-1]"), ":10: steps[1].eps_range:", "from 1e-06 up"),
    (lambda text: text + '[[steps]]\nanalysis = "affect"\nschemes = ["loto"]\ngeometry_scheme = "loco"\n',
     ":14: steps[2].geometry_scheme:", "'loco' is not one of the step's schemes"),
], ids=["encoder", "analysis", "layer", "epsilon-range", "dataset", "key", "value", "source", "device", "batch-size",
        "pooling", "epsilon-floor", "geometry-scheme"])
def test_bad_files_are_refused_with_file_line_and_key_and_write_nothing(broken, where, message, tmp_path,
                                                                         isolated_cache) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(broken(GOOD))
    before = written(isolated_cache)
    with pytest.raises(StudyError) as refused:
        load_study(path, isolated_cache)
    assert f"{path}{where}" in str(refused.value) and message in str(refused.value), str(refused.value)
    assert main(["--cache", str(isolated_cache), "study", "run", str(path)]) == 2  # the CLI: exit 2, one line
    assert written(isolated_cache) == before, "a refused study wrote nothing"


def test_a_dataset_path_that_does_not_exist_is_named_with_its_key_and_line(tmp_path, isolated_cache) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text(GOOD.replace('datasets = ["demo"]', 'dataset = "oasis:/no/such/oasis"'))
    with pytest.raises(StudyError) as missing:
        load_study(path, isolated_cache)
    error = missing.value
    assert (error.key, error.line, error.missing_path) == ("dataset", 2, Path("/no/such/oasis"))
    assert str(error).endswith("is not an existing folder; check the path.")  # one full stop
    (tmp_path / "a_file").write_text("not a folder")  # there, but not a dataset folder: a plain error
    path.write_text(GOOD.replace('datasets = ["demo"]', f'datasets = ["oasis:{tmp_path / "a_file"}"]'))
    with pytest.raises(StudyError) as wrong:
        load_study(path, isolated_cache)
    assert wrong.value.missing_path is None and wrong.value.key == "datasets"


def test_toml_syntax_errors_and_missing_files_are_refused(tmp_path, isolated_cache) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(GOOD.replace('name = "tiny"', 'name = "tiny'))
    with pytest.raises(StudyError, match=r"broken\.toml: not valid TOML: .*line 1"):
        load_study(path, isolated_cache)
    with pytest.raises(StudyError, match=r"absent\.toml: cannot read the study file"):
        load_study(tmp_path / "absent.toml", isolated_cache)


def test_a_paradigm_stands_for_its_catalogue_entries(tmp_path, isolated_cache) -> None:
    from core.encoders.catalogue import entries_of
    path = tmp_path / "paradigm.toml"
    path.write_text(GOOD.replace('encoders = ["pixels:32"]', 'encoders = ["paradigm:control"]'))
    study = load_study(path, isolated_cache)
    assert study.steps[0].encoders == tuple(entry.spec for entry in entries_of(("control",)))


def test_an_unreachable_cluster_and_a_missing_export_folder_fail_fast_with_one_line(tmp_path, isolated_cache,
                                                                                    capsys) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text(GOOD)
    assert main(["--cache", str(isolated_cache), "study", "run", str(path), "--engine", "ray",
                 "--ray-address", "127.0.0.1:1"]) == 2
    assert "no Ray cluster answers at 127.0.0.1:1" in capsys.readouterr().err
    assert main(["--cache", str(isolated_cache), "study", "export", str(path), str(tmp_path / "no" / "out.zip")]) == 2
    assert "does not exist" in capsys.readouterr().err
