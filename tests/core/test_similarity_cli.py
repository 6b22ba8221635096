"""`python -m core similarity`: the JSON equals a direct compare() call, known answers for a file against a copy of
itself, shared bootstrap CIs, one clear line (exit 2) for every bad input, and THINGS Group1 vs Group2.

The checks run main() in this process; one slow test runs the real command lines (each start imports torch: ~8 s)
and checks they print the same JSON and exit 2 on bad input."""
from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.analyses.similarity import SimilaritySettings, compare
from core.cli import main
from core.similarity_cli import DEFAULT_MEASURES, representation_names
from tests.paths import REPO_ROOT

N_ITEMS = 60
RNG = np.random.default_rng(0)
A = RNG.normal(size=(N_ITEMS, 8))
# The same 60 items four times: a, its copy as GWTune's (1, N, d), a noisy linear map of a, unrelated features.
INPUTS = {"a.npy": A, "a_copy.npy": A[None], "mapped.txt": A @ RNG.normal(size=(8, 5)) + RNG.normal(size=(N_ITEMS, 5)),
          "unrelated.csv": RNG.normal(size=(N_ITEMS, 6))}
GOOD = RNG.normal(size=(N_ITEMS, 4))
WITH_NAN, WITH_INF = GOOD.copy(), GOOD.copy()
WITH_NAN[7, 2], WITH_INF[3, 0] = np.nan, np.inf
BAD_INPUTS = {"short.npy": GOOD[:50], "vector.npy": GOOD[:, 0], "with_nan.npy": WITH_NAN, "with_inf.txt": WITH_INF,
              "constant.npy": np.full((N_ITEMS, 3), 2.5)}
# Each bad input: (arguments after good.npy, text the one error line must contain).
BAD_CASES = {"mismatched N": (["short.npy"], "good.npy N = 60, short.npy N = 50"),
             "1-D": (["vector.npy"], "vector.npy"),
             "NaN": (["with_nan.npy"], "with_nan.npy"), "inf": (["with_inf.txt"], "with_inf.txt"),
             "all constant": (["constant.npy"], "file constant.npy is constant over the items"),
             "unreadable": (["garbage.npy"], "garbage.npy"), "missing": (["absent.npy"], "absent.npy"),
             "unknown measure": (["short.npy", "--measure", "cka_linear,cka_nonsense"], "cka_nonsense"),
             "one file": ([], "good.npy")}


def run_command_line(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *arguments], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120)


def save(folder: Path, arrays: dict[str, np.ndarray]) -> dict[str, Path]:
    """Each array as folder/<name> (.npy, comma-separated .csv or whitespace .txt); {stem: path}."""
    paths = {}
    for name, array in arrays.items():
        path = paths[Path(name).stem] = folder / name
        if path.suffix == ".npy":
            np.save(path, array)
        else:
            np.savetxt(path, array, delimiter="," if path.suffix == ".csv" else " ")
    return paths


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return save(tmp_path_factory.mktemp("similarity-cli"), INPUTS)


def run_in_process(arguments: list[str]) -> str:
    """What `python -m core <arguments>` prints, run through the same main() in this process."""
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert main(arguments) == 0
    return printed.getvalue()


def bootstrapped_arguments(files: dict[str, Path]) -> list[str]:
    return ["similarity", *map(str, files.values()), "--bootstrap", "50", "--seed", "3", "--json"]


@pytest.fixture(scope="module")
def bootstrapped(files) -> dict:
    """All four files, default measures, 50 bootstrap resamples, as JSON."""
    return json.loads(run_in_process(bootstrapped_arguments(files)))


def cell(output: dict, first: str, second: str, measure: str) -> dict:
    return next(record for record in output["pairs"]
                if (record["first"], record["second"], record["measure"]) == (first, second, measure))


def test_every_unordered_pair_and_measure_equals_one_direct_compare_call(files, bootstrapped) -> None:
    direct = compare({Path(name).stem: array for name, array in INPUTS.items()}, measures=DEFAULT_MEASURES,
                     settings=SimilaritySettings(), n_bootstrap=50, seed=3)
    names = list(files)
    assert len(bootstrapped["pairs"]) == 6 * len(DEFAULT_MEASURES)  # 4 files: 6 pairs (i < j)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            for measure in DEFAULT_MEASURES:
                record = cell(bootstrapped, first, second, measure)
                assert record["value"] == pytest.approx(direct.value(measure, first, second), abs=1e-12)
                assert (record["ci_low"], record["ci_high"]) == pytest.approx(direct.interval(measure, first, second),
                                                                              abs=1e-6)
    assert bootstrapped["n_items"] == N_ITEMS and bootstrapped["n_bootstrap"] == 50


def test_a_file_against_a_copy_of_itself_gives_the_identity_values(bootstrapped) -> None:
    assert cell(bootstrapped, "a", "a_copy", "cka_linear")["value"] == pytest.approx(1.0, abs=1e-12)
    assert cell(bootstrapped, "a", "a_copy", "rsa_spearman")["value"] == pytest.approx(1.0, abs=1e-12)
    assert cell(bootstrapped, "a", "a_copy", "procrustes")["value"] == pytest.approx(0.0, abs=1e-6)


def test_bootstrap_intervals_bracket_the_related_pairs_values(bootstrapped) -> None:
    for measure in ("rsa_spearman", "cka_linear", "cka_rbf", "cka_debiased", "mutual_knn"):
        record = cell(bootstrapped, "a", "mapped", measure)
        assert record["ci_low"] <= record["value"] <= record["ci_high"], record
        assert record["ci_high"] - record["ci_low"] > 0.01  # 50 resamples of 60 items: a real spread
    related, unrelated = (cell(bootstrapped, "a", other, "cka_linear") for other in ("mapped", "unrelated"))
    assert unrelated["ci_high"] < related["ci_low"]


def test_the_table_lists_every_pair_without_bootstrap(files, capsys) -> None:
    assert main(["similarity", str(files["a"]), str(files["mapped"]), "--measure", "cka_linear,procrustes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"N = {N_ITEMS} items") and "CI" not in lines[2]
    assert [line.split()[:2] for line in lines[3:]] == [["a", "mapped"], ["a", "mapped"]]


def test_duplicate_stems_are_told_apart_by_folder_then_position() -> None:
    paths = [Path("x/a.npy"), Path("y/a.npy"), Path("b.csv"), Path("b.npy"), Path("c.npy")]
    assert representation_names(paths) == ["x/a", "y/a", "b#3", "b#4", "c"]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("similarity-cli-errors")
    save(folder, {"good.npy": GOOD, **BAD_INPUTS})
    (folder / "garbage.npy").write_bytes(b"not an array")
    return folder


@pytest.mark.parametrize("case", BAD_CASES)
def test_each_bad_input_is_one_error_line_naming_the_file(bad_inputs, case, capsys, monkeypatch) -> None:
    arguments, expected = BAD_CASES[case]
    monkeypatch.chdir(bad_inputs)
    assert main(["similarity", "good.npy", *arguments]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1, captured.err
    assert captured.err.startswith("error: ") and expected in captured.err


@pytest.mark.slow
def test_the_command_line_prints_what_main_prints_and_exits_2_on_bad_input(files, bootstrapped, bad_inputs) -> None:
    folder = bad_inputs
    finished = run_command_line(*bootstrapped_arguments(files))
    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout) == bootstrapped
    mismatched = run_command_line("similarity", str(folder / "good.npy"), str(folder / "short.npy"))
    assert mismatched.returncode == 2 and mismatched.stdout == ""
    assert mismatched.stderr.splitlines() == [
        f"error: the files describe different numbers of items: {folder / 'good.npy'} N = 60, {folder / 'short.npy'} "
        "N = 50; give every file one row per item, the same items in the same order."]


def test_partly_constant_columns_are_accepted(bad_inputs, capsys) -> None:
    part_constant = GOOD.copy()
    part_constant[:, 1] = 4.0
    save(bad_inputs, {"part_constant.npy": part_constant})
    assert main(["similarity", str(bad_inputs / "good.npy"), str(bad_inputs / "part_constant.npy"), "--json"]) == 0
    values = {record["measure"]: record["value"] for record in json.loads(capsys.readouterr().out)["pairs"]}
    direct = compare({"good": GOOD, "part_constant": part_constant}, measures=DEFAULT_MEASURES)
    assert values == {measure: pytest.approx(direct.value(measure, "good", "part_constant"), abs=1e-12)
                      for measure in DEFAULT_MEASURES}
    assert 0.5 < values["cka_linear"] < 0.99  # one of four columns flattened: similar, no longer identical


def test_things_group1_and_group2_agree_well_above_half(shared_data, capsys) -> None:
    folder = shared_data / "gwtune" / "THINGS"
    if not (folder / "THINGS_embedding_Group1.npy").is_file():
        pytest.skip(f"{folder} has no THINGS group embeddings")
    assert main(["similarity", str(folder / "THINGS_embedding_Group1.npy"), str(folder / "THINGS_embedding_Group2.npy"),
                 "--measure", "cka_linear,rsa_spearman", "--rdm-metric", "euclidean", "--json"]) == 0
    output = json.loads(capsys.readouterr().out)
    values = {record["measure"]: record["value"] for record in output["pairs"]}
    print(f"\nTHINGS Group1 vs Group2 (N = {output['n_items']}): {values}")
    assert output["n_items"] == 1854
    assert values["cka_linear"] > 0.9 and values["rsa_spearman"] > 0.9  # measured: 0.974 and 0.972
