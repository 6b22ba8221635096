"""`python -m core rsa`: a known-answer JSON on small synthetic files, every accepted data shape, and one line naming
the file (exit 2) for every bad input. main() runs in this process."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from core.analyses.rsa import compare_rdms, noise_ceiling
from core.cli import main
from core.data.neural import read_rdm_file
from core.data.tables import DatasetError

N = 12
RNG = np.random.default_rng(0)
PATTERNS = RNG.normal(size=(N, 6))
TRUTH = squareform(pdist(PATTERNS))
SUBJECTS = np.array([squareform(pdist(PATTERNS + 0.5 * RNG.normal(size=PATTERNS.shape))) for _ in range(4)])


def run(*arguments: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["rsa", *arguments])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    bad_asym = SUBJECTS.copy()
    bad_asym[1, 2, 5] += 0.1
    bad_diag = SUBJECTS.copy()
    bad_diag[0, 3, 3] = 0.2
    with_nan = SUBJECTS.copy()
    with_nan[2, 1, 4] = with_nan[2, 4, 1] = np.nan
    arrays = {"truth": TRUTH, "copy": TRUTH.copy(), "shuffled": TRUTH[np.ix_(RNG.permutation(N), RNG.permutation(N))],
              "subjects": SUBJECTS, "sessions": np.stack([SUBJECTS, SUBJECTS], axis=1),
              "condensed": np.array([squareform(s) for s in SUBJECTS]), "one": SUBJECTS[0],
              "not_square": SUBJECTS[:, :, :-1], "asymmetric": bad_asym, "diagonal": bad_diag, "nan": with_nan,
              "short_vector": np.ones(11), "bad_condensed": np.ones((4, 65)), "other_n": SUBJECTS[:, :10, :10],
              "model_n": TRUTH[:10, :10], "several": SUBJECTS[:2]}
    arrays["shuffled"] = (arrays["shuffled"] + arrays["shuffled"].T) / 2
    np.fill_diagonal(arrays["shuffled"], 0)
    paths = {}
    for name, array in arrays.items():
        paths[name] = tmp_path / f"{name}.npy"
        np.save(paths[name], array)
    paths["garbage"] = tmp_path / "garbage.npy"
    paths["garbage"].write_text("not an array")
    return {k: str(v) for k, v in paths.items()}


def test_known_answer_json(files):
    code, out, err = run("--data", files["subjects"], "--models", files["truth"], files["copy"], "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["method"] == "corr" and [m["name"] for m in record["models"]] == ["truth", "copy"]
    data = np.array([squareform(s) for s in SUBJECTS])
    expected = compare_rdms(squareform(TRUTH)[None], data, "corr")[0]
    truth = record["models"][0]
    assert truth["per_subject"] == pytest.approx(expected, abs=1e-12)
    assert truth["mean"] == pytest.approx(expected.mean(), abs=1e-12) and truth["mean"] > 0.6
    ceiling = noise_ceiling(data, "corr")
    assert record["noise_ceiling"] == pytest.approx({"lower": ceiling.lower, "upper": ceiling.upper}, abs=1e-12)
    # a model and its copy: identical, difference 0
    assert record["models"][1]["mean"] == truth["mean"]
    (pair,) = record["pairwise"]
    assert pair["difference"] == 0 and set(pair) >= {"p", "p_fdr", "p_bonferroni", "ci_low", "ci_high"}
    assert truth["ci_low"] is None  # no bootstrap, no CI


def test_bootstrap_json_is_seeded_and_brackets_the_mean(files):
    arguments = ("--data", files["subjects"], "--models", files["truth"], files["shuffled"], "--method", "spearman",
                 "--bootstrap", "60", "--resample", "both", "--seed", "3", "--json")
    first, second = json.loads(run(*arguments)[1]), json.loads(run(*arguments)[1])
    assert first == second and first["n_bootstrap"] == 60 and first["resample"] == "both"
    truth = first["models"][0]
    assert truth["ci_low"] < truth["mean"] < truth["ci_high"] and truth["p_vs_zero"] < 0.05


@pytest.mark.parametrize("shape", ["sessions", "condensed", "subjects"])
def test_every_data_shape_gives_the_same_answer(files, shape):
    code, out, err = run("--data", files[shape], "--models", files["truth"], "--json")
    assert code == 0
    assert json.loads(out)["models"][0]["mean"] == pytest.approx(
        compare_rdms(squareform(TRUTH)[None], np.array([squareform(s) for s in SUBJECTS]), "corr").mean(), abs=1e-12)
    assert ("sessions averaged per subject" in err) == (shape == "sessions")


def test_several_data_files_pool_their_subjects(files):
    record = json.loads(run("--data", files["subjects"], files["one"], "--models", files["truth"], "--json")[1])
    assert record["n_subjects"] == 5


BAD = {"not square": ("data", "not_square", "not square"),
       "asymmetric": ("data", "asymmetric", "not symmetric"),
       "diagonal": ("data", "diagonal", "non-zero diagonal"),
       "NaN": ("data", "nan", "NaN"),
       "1-D wrong length": ("data", "short_vector", "11 values"),
       "condensed wrong length": ("data", "bad_condensed", "65"),
       "subjects of different N": ("data2", "other_n", "over 10 items"),
       "model N": ("models", "model_n", "over 10 items"),
       "model with several RDMs": ("models", "several", "holds 2 RDMs"),
       "unreadable": ("data", "garbage", "cannot read"),
       "missing": ("data", "absent", "absent.npy")}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_exits_2_naming_the_file(files, tmp_path, case):
    role, name, text = BAD[case]
    path = files.get(name, str(tmp_path / f"{name}.npy"))
    data, models = [files["subjects"]], [files["truth"]]
    if role == "data":
        data = [path]
    elif role == "data2":
        data = [files["subjects"], path]
    else:
        models = [path]
    code, out, err = run("--data", *data, "--models", *models)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"{name}.npy" in lines[0] and text in lines[0], err


def test_the_rdm_file_error_is_a_value_error_naming_the_file(files):
    with pytest.raises(DatasetError, match="asymmetric.npy"):
        read_rdm_file(files["asymmetric"])
    read = read_rdm_file(files["sessions"])
    assert read.rdms.shape == (4, N, N) and "2 sessions averaged" in read.note
    assert issubclass(DatasetError, ValueError)
