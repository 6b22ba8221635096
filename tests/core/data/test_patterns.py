"""Response-pattern references (core.data.patterns): the layout, the `|patterns=` option, the fingerprint and every
error naming its file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data.datasets import load_dataset, neural
from core.data.patterns import describe_patterns, read_pattern_group, split_patterns_option
from core.data.roots import DataRoots
from core.data.tables import DatasetError

N = 6


def _images(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    for index in range(N):
        Image.new("RGB", (4, 4), (index * 40, 10, 10)).save(root / "images" / f"im{index}.png")
    return root


def _open(spec: str, cache: Path):
    return load_dataset(spec, cache, DataRoots())


def test_a_neural_folder_reads_groups_of_subject_files_and_group_files(tmp_path: Path) -> None:
    root = _images(tmp_path / "set")
    rng = np.random.default_rng(0)
    (root / "patterns" / "IT").mkdir(parents=True)
    reps = rng.normal(size=(3, N, 5))
    np.save(root / "patterns" / "IT" / "monkeyA.npy", reps)
    np.save(root / "patterns" / "IT" / "monkeyB.npy", rng.normal(size=(2, N, 5)))
    np.savetxt(root / "patterns" / "V4_subjects.csv", rng.normal(size=(N, 4)), delimiter=",")
    image_set = neural(root)  # no RDMs: images and patterns suffice
    assert image_set.rdm_references == ()
    v4, it = image_set.pattern_references  # group files first, then per-subject folders (as for RDMs)
    assert (it.name, it.subjects, it.n_units, it.repetitions(0), it.repetitions(1)) == ("IT", ("monkeyA", "monkeyB"),
                                                                                       5, 3, 2)
    np.testing.assert_array_equal(it.responses(0), reps)
    assert (v4.name, v4.subjects, v4.responses(0).shape) == ("V4", ("s01",), (N, 4))
    assert describe_patterns([it, v4]) == ("IT (2 subjects, 5 units, 2/3 repetitions), V4 (1 subject, 4 units, "
                                           "no repetitions)")
    sub = image_set.subset([5, 0])
    np.testing.assert_array_equal(sub.pattern_references[1].responses(0), reps[:, [5, 0]])


def test_the_patterns_option_attaches_groups_and_changes_the_fingerprint(tmp_path: Path) -> None:
    root = _images(tmp_path / "set")
    file = tmp_path / "V1.npy"
    np.save(file, np.random.default_rng(1).normal(size=(2, 2, N, 3)))  # (S, R, N, U)
    plain = _open(f"folder:{root / 'images'}", tmp_path / "cache")
    attached = _open(f"folder:{root / 'images'}|patterns={file}", tmp_path / "cache")
    [group] = attached.pattern_references
    assert (group.name, group.subjects, group.n_items) == ("V1", ("s01", "s02"), N)
    assert attached.fingerprint != plain.fingerprint
    np.save(file, np.random.default_rng(2).normal(size=(2, 2, N, 3)))
    assert _open(f"folder:{root / 'images'}|patterns={file}", tmp_path / "cache").fingerprint != attached.fingerprint
    assert split_patterns_option(f"demo|patterns={file},b|rdms=x") == ("demo|rdms=x", (str(file), "b"))


@pytest.mark.parametrize("array, fault", [
    (np.zeros(N), "has shape (6,)"),
    (np.zeros((1, N, 3)), "holds R = 1"),
    (np.zeros((N + 1, 3)), "over 7 items"),
    (np.where(np.eye(N, 3) > 0, np.nan, 0.0), "NaN or infinite"),
    (np.full((N, 3), np.inf), "NaN or infinite"),
])
def test_a_bad_file_is_named_with_its_fault(tmp_path: Path, array: np.ndarray, fault: str) -> None:
    root = _images(tmp_path / "set")
    file = tmp_path / "IT.npy"
    np.save(file, array)
    with pytest.raises(DatasetError, match="IT.npy") as raised:
        _open(f"folder:{root / 'images'}|patterns={file}", tmp_path / "cache")
    assert fault in str(raised.value)


@pytest.mark.parametrize("second, fault", [((N, 4), "differ in (N items, U units)"),
                                           ((5, 3), "over 5 items")])
def test_subjects_of_one_group_must_share_items_and_units(tmp_path: Path, second, fault) -> None:
    folder = tmp_path / "IT"
    folder.mkdir()
    np.save(folder / "a.npy", np.zeros((N, 3)))
    np.save(folder / "b.npy", np.zeros(second))
    with pytest.raises(DatasetError, match="IT") as raised:
        read_pattern_group(folder, None if "differ" in fault else N)
    assert fault in str(raised.value)


def test_an_empty_patterns_option_and_a_missing_file_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="names no file"):
        split_patterns_option("demo|patterns=")
    root = _images(tmp_path / "set")
    with pytest.raises(DatasetError, match="missing.npy not found"):
        _open(f"folder:{root / 'images'}|patterns={tmp_path / 'missing.npy'}", tmp_path / "cache")
