"""Neural / behavioural RDM references: the real 92-image folder, and every bad RDM file built in tmp_path."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data.datasets import DatasetError, load_dataset
from core.data.neural import (RdmReference, describe_groups, group_name, read_neural_folder, read_rdm_file,
                              read_rdm_group, split_rdms_option)
from core.data.roots import DataRoots, OutsideRootsError


def _rdm(n: int, seed: int = 0) -> np.ndarray:
    """(n, n) symmetric, zero-diagonal, positive off the diagonal."""
    upper = np.triu(np.random.default_rng(seed).uniform(0.1, 2.0, (n, n)), 1)
    return upper + upper.T


def _save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)
    return path


@pytest.fixture(scope="module")
def k92(kriegeskorte92: Path) -> Path:
    return kriegeskorte92


def test_the_92_image_folder_opens_with_its_subjects_groups_and_models(k92: Path, tmp_path: Path) -> None:
    image_set = load_dataset(f"neural:{k92}", tmp_path)
    assert image_set.name == "neural:kriegeskorte92" and image_set.has_images and len(image_set) == 92
    assert image_set.paths[0] == k92 / "images" / "01.png" and image_set.metadata["image_id"].iloc[-1] == "92"
    counts = image_set.metadata["category"].value_counts().to_dict()
    assert counts == {"natural inanimate": 23, "artificial inanimate": 21, "human bodypart": 12, "human face": 12,
                      "nonhuman bodypart": 12, "nonhuman face": 12}
    groups = {group.name: group for group in image_set.rdm_references}
    assert set(groups) == {"hIT", "mIT_674neurons", "behaviour", "hITvisStim_316vx"}
    sessions = np.load(k92 / "rdms" / "hIT_subjects_sessions.npy")  # (4 subjects, 2 sessions, 92, 92)
    hit = groups["hIT"]
    assert hit.rdms.shape == (4, 92, 92) and hit.note == "2 sessions averaged per subject"
    np.testing.assert_allclose(hit.rdms, sessions.mean(axis=1), rtol=0, atol=1e-15)
    assert not np.allclose(sessions[:, 0], sessions[:, 1])  # the average is not a copy of one session
    assert groups["mIT_674neurons"].n_subjects == 1 and groups["behaviour"].n_subjects == 16
    np.testing.assert_array_equal(groups["mIT_674neurons"].rdms[0], np.load(k92 / "rdms" / "mIT_674neurons.npy"))
    assert groups["behaviour"].subjects[0] == "s01" and groups["behaviour"].subjects[-1] == "s16"
    assert {model.name for model in image_set.model_rdms} == {"animacy", "FaceBodyManmadeNatobj", "EVA", "HMAX", "V1",
                                                              "Silhouette", "RADON"}
    assert image_set.rdm_reference("animacy").rdms.shape == (1, 92, 92)
    assert "hIT (4 subjects; 2 sessions averaged per subject)" in describe_groups(image_set.rdm_references)


def test_a_subset_keeps_the_rdms_rows_and_columns_of_its_items(k92: Path, tmp_path: Path) -> None:
    image_set = load_dataset(f"neural:{k92}", tmp_path)
    rows = [3, 40, 91, 0]
    subset = image_set.subset(rows)
    behaviour = np.load(k92 / "rdms" / "behaviour_subjects.npy")
    np.testing.assert_array_equal(subset.rdm_reference("behaviour").rdms, behaviour[:, rows][:, :, rows])
    assert subset.rdm_reference("V1").rdms.shape == (1, 4, 4)
    assert subset.fingerprint != image_set.fingerprint


def test_rdms_option_attaches_groups_to_a_manifest_and_checks_their_n(k92: Path, tmp_path: Path) -> None:
    rdms = k92 / "rdms"
    image_set = load_dataset(f"manifest:{k92 / 'stimuli.csv'}|rdms={rdms / 'mIT_674neurons.npy'},"
                             f"{rdms / 'model_V1.npy'}", tmp_path)
    assert [group.name for group in image_set.rdm_references] == ["mIT_674neurons"]
    assert [model.name for model in image_set.model_rdms] == ["V1"]
    plain = load_dataset(f"manifest:{k92 / 'stimuli.csv'}", tmp_path)
    assert plain.fingerprint != image_set.fingerprint and not plain.rdm_references
    with pytest.raises(DatasetError, match=r"mIT_674neurons\.npy is over 92 items but the dataset has 384"):
        load_dataset(f"demo|rdms={rdms / 'mIT_674neurons.npy'}", tmp_path)


def test_sessions_are_averaged_and_condensed_or_text_files_read_alike(tmp_path: Path) -> None:
    sessions = np.stack([np.stack([_rdm(5, seed=10 * s + r) for r in range(3)]) for s in range(2)])  # (2, 3, 5, 5)
    read = read_rdm_file(_save(tmp_path / "v_subjects_sessions.npy", sessions))
    assert read.rdms.shape == (2, 5, 5) and read.note == "3 sessions averaged per subject"
    np.testing.assert_allclose(read.rdms, sessions.mean(axis=1))
    square = _rdm(6)
    condensed = square[np.triu_indices(6, 1)]  # scipy's squareform order
    np.savetxt(tmp_path / "c.txt", condensed)
    np.savetxt(tmp_path / "s.csv", square, delimiter=",")
    from_vector = read_rdm_file(tmp_path / "c.txt")
    assert from_vector.note == "condensed vector"
    np.testing.assert_allclose(from_vector.rdms[0], square)
    np.testing.assert_allclose(read_rdm_file(tmp_path / "s.csv").rdms[0], square)
    assert group_name(tmp_path / "v_subjects_sessions.npy") == ("v", False)
    assert group_name(tmp_path / "model_pixels.npy") == ("pixels", True)


def test_an_rdm_only_folder_has_no_images_and_per_subject_files_name_their_subjects(tmp_path: Path) -> None:
    folder = tmp_path / "lab"
    _save(folder / "rdms" / "V4_subjects.npy", np.stack([_rdm(5, seed) for seed in range(3)]))
    for subject in ("ann", "bob"):
        _save(folder / "rdms" / "judgements" / f"{subject}.npy", _rdm(5, seed=len(subject) + ord(subject[0])))
    _save(folder / "rdms" / "model_size.npy", _rdm(5, seed=99))
    image_set = load_dataset(f"neural:{folder}", tmp_path)
    assert not image_set.has_images and len(image_set) == 5 and image_set.metadata["image_id"][0] == "item_0000"
    assert [(group.name, group.subjects) for group in image_set.rdm_references] == [
        ("V4", ("s01", "s02", "s03")), ("judgements", ("ann", "bob"))]
    assert [model.name for model in image_set.model_rdms] == ["size"]
    with pytest.raises(DatasetError, match="no images to skip"):
        load_dataset(f"neural:{folder}|unreadable=skip", tmp_path)


def test_the_fingerprint_changes_when_an_rdm_file_changes(tmp_path: Path) -> None:
    folder = tmp_path / "lab"
    rdm = _rdm(4)
    _save(folder / "rdms" / "IT.npy", rdm)
    first = load_dataset(f"neural:{folder}", tmp_path).fingerprint
    assert load_dataset(f"neural:{folder}", tmp_path).fingerprint == first  # same bytes, same key
    rdm[1, 2] = rdm[2, 1] = rdm[1, 2] + 1e-3
    _save(folder / "rdms" / "IT.npy", rdm)
    assert load_dataset(f"neural:{folder}", tmp_path).fingerprint != first
    (folder / "rdms" / "IT.npy").rename(folder / "rdms" / "model_IT.npy")
    _save(folder / "rdms" / "other.npy", _rdm(4, seed=5))
    as_model = load_dataset(f"neural:{folder}", tmp_path)
    assert [model.name for model in as_model.model_rdms] == ["IT"] and as_model.fingerprint != first


def test_images_and_unreadable_skip_subset_the_rdms(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    (folder / "images").mkdir(parents=True)
    for index in range(4):
        Image.new("RGB", (8, 8), (60 * index, 0, 0)).save(folder / "images" / f"{index}.png")
    (folder / "images" / "2.png").write_bytes(b"not an image")
    rdm = _rdm(4)
    _save(folder / "rdms" / "IT.npy", rdm)
    kept = load_dataset(f"neural:{folder}|unreadable=skip", tmp_path)
    assert len(kept) == 3 and [image.label for image in kept.skipped] == ["images/2.png"]
    np.testing.assert_array_equal(kept.rdm_reference("IT").rdms[0], rdm[np.ix_([0, 1, 3], [0, 1, 3])])


def test_paths_outside_the_data_roots_are_refused(tmp_path: Path) -> None:
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    _save(inside / "rdms" / "IT.npy", _rdm(4))
    _save(outside / "IT.npy", _rdm(4))
    roots = DataRoots((inside,))
    assert len(load_dataset(f"neural:{inside}", tmp_path, roots)) == 4
    with pytest.raises(OutsideRootsError, match="RDM file"):
        load_dataset(f"neural:{inside}|rdms={outside / 'IT.npy'}", tmp_path, roots)
    with pytest.raises(OutsideRootsError):
        load_dataset(f"neural:{outside}", tmp_path, roots)


def _asymmetric() -> np.ndarray:
    rdm = _rdm(4)
    rdm[0, 3] += 1e-6
    return rdm


def _nan_in_session() -> np.ndarray:
    stacked = np.stack([np.stack([_rdm(4), _rdm(4, 1)]) for _ in range(2)])
    stacked[1, 1, 0, 2] = stacked[1, 1, 2, 0] = np.nan
    return stacked


BAD_FILES = {
    "not square": (np.ones((4, 5)), r"is not square: its RDMs are 4 x 5 \(shape \(4, 5\)\)"),
    "stack not square": (np.zeros((2, 4, 5)), r"is not square"),
    "asymmetric": (_asymmetric(), r"is not symmetric: \(0, 3\) = .* but \(3, 0\)"),
    "diagonal": (_rdm(4) + np.eye(4) * 0.5, r"non-zero diagonal \(4 entries, counted from 0\): \(0, 0\) = 0\.5; "
                                            r"\(1, 1\)"),
    "nan": (np.where(np.eye(3, dtype=bool), 0.0, np.nan), r"6 NaN or infinite entries \(row, column counted from "
                                                          r"0\): \(0, 1\); \(0, 2\)"),
    "nan in a session": (_nan_in_session(), r"2 NaN or infinite entries .*: subject 2, session 2, \(0, 2\); "
                                            r"subject 2, session 2, \(2, 0\)"),
    "condensed of the wrong length": (np.arange(1.0, 8.0), r"1-D with 7 values, which is not N\(N-1\)/2 .*N=4: 6, "
                                                          r"N=5: 10"),
    "five dimensions": (np.zeros((1, 1, 1, 2, 2)), r"has shape \(1, 1, 1, 2, 2\); expected"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_every_bad_rdm_file_is_an_error_naming_the_file_and_the_fault(case: str, tmp_path: Path) -> None:
    array, message = BAD_FILES[case]
    path = _save(tmp_path / "bad_rdm.npy", array)
    with pytest.raises(DatasetError, match=message) as raised:
        read_rdm_file(path)
    assert str(path) in str(raised.value)


def test_bad_groups_and_folders_are_errors_naming_the_files(tmp_path: Path) -> None:
    images = tmp_path / "set"
    (images / "images").mkdir(parents=True)
    for index in range(3):
        Image.new("RGB", (8, 8)).save(images / "images" / f"{index}.png")
    _save(images / "rdms" / "IT.npy", _rdm(4))
    with pytest.raises(DatasetError, match=r"rdms/IT\.npy is over 4 items but the dataset has 3"):
        read_neural_folder(images)
    subjects = tmp_path / "subjects"
    _save(subjects / "ann.npy", _rdm(4))
    _save(subjects / "bob.npy", _rdm(5))
    with pytest.raises(DatasetError, match=r"subjects of RDM folder .*subjects have different N: ann\.npy: 4, "
                                           r"bob\.npy: 5"):
        read_rdm_group(subjects)
    mixed = tmp_path / "mixed"
    _save(mixed / "rdms" / "IT.npy", _rdm(4))
    _save(mixed / "rdms" / "V1.npy", _rdm(6))
    with pytest.raises(DatasetError, match=r"different numbers of items: IT\.npy: N=4, V1\.npy: N=6"):
        read_neural_folder(mixed)
    models = tmp_path / "models"
    _save(models / "rdms" / "IT.npy", _rdm(4))
    _save(models / "rdms" / "model_cats.npy", np.stack([_rdm(4), _rdm(4, 1)]))
    with pytest.raises(DatasetError, match=r"model RDM file .*model_cats\.npy holds 2 RDMs"):
        read_neural_folder(models)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"empty holds no RDM files"):
        read_neural_folder(tmp_path / "empty")
    text = tmp_path / "words.csv"
    text.write_text("a,b\nc,d\n")
    with pytest.raises(DatasetError, match=r"cannot read RDM file .*words\.csv"):
        read_rdm_file(text)
    with pytest.raises(DatasetError, match=r"`\|rdms=` names no file"):
        split_rdms_option("demo|rdms= ,")


def test_a_reference_group_checks_its_own_shape() -> None:
    with pytest.raises(DatasetError, match="need \\(S, N, N\\) and S names"):
        RdmReference("IT", np.zeros((2, 3, 3)), ("only one",))
    assert split_rdms_option("oasis:/x|rdms=a.npy,b.npy|unreadable=skip|rdms=c.npy") == (
        "oasis:/x|unreadable=skip", ("a.npy", "b.npy", "c.npy"))


def test_the_cli_describes_and_extracts_the_92_image_folder(k92: Path, tmp_path: Path, capsys) -> None:
    from core.cli import main

    assert main(["--cache", str(tmp_path), "dataset", f"neural:{k92}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("neural:kriegeskorte92\t92 images\t6 categories\tfingerprint ")
    assert any(line.startswith("rdm reference\thIT\t4 subjects\t2 sessions averaged per subject\t") for line in lines)
    assert sum(line.startswith("model rdm\t") for line in lines) == 7
    assert main(["--cache", str(tmp_path), "extract", "--dataset", f"neural:{k92}", "--encoder", "pixels:32",
                 "--device", "cpu", "--workers", "0"]) == 0
    assert capsys.readouterr().out.startswith("pixels:32\tfinal\t92x")
    bad = _save(tmp_path / "bad.npy", np.ones((92, 92)))
    assert main(["--cache", str(tmp_path), "dataset", f"neural:{k92}|rdms={bad}"]) == 2
    assert f"RDM file {bad} has a non-zero diagonal" in capsys.readouterr().err


def test_rdms_ride_along_on_an_embeddings_spec_and_through_repeated_views(tmp_path: Path) -> None:
    folder = tmp_path / "reps"
    folder.mkdir()
    np.save(folder / "features.npy", np.random.default_rng(0).normal(size=(5, 3)))
    rdm = _save(tmp_path / "judgements_subjects.npy", np.stack([_rdm(5), _rdm(5, 1)]))
    image_set = load_dataset(f"embeddings:{folder}|rdms={rdm}", tmp_path)
    assert [reference.name for reference in image_set.references] == ["features"]
    assert image_set.rdm_reference("judgements").n_subjects == 2
    views = image_set.repeated(2)  # rows 0, 0, 1, 1, ...: each item's copies sit at distance 0
    assert views.rdm_reference("judgements").rdms.shape == (2, 10, 10)
    assert views.rdm_reference("judgements").rdms[0, 0, 1] == 0 and views.rdm_reference("judgements").rdms[0, 0, 2] \
        == image_set.rdm_reference("judgements").rdms[0, 0, 1]
