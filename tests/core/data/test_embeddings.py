"""The `embeddings:` dataset: representations without images, from small folders in tmp_path and GWTune's THINGS."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.data.datasets import SPEC_FORMS, DatasetError, embeddings, load_dataset
from core.features.extract import extract
from tests.paths import SHARED_DATA

THINGS_DIR = SHARED_DATA / "gwtune" / "THINGS"
ONE_HOT_CSV = THINGS_DIR / "category_mat_manual_preprocessed.csv"
N, ITEMS = 6, ["cat", "dog", "oak", "rose", "car", "bus"]
CATEGORIES = ["animal", "animal", "plant", "plant", "vehicle", "vehicle"]


def _matrix(seed: int, d: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(N, d)).astype(np.float32)


def _one_hot(path: Path, items: list[str] = ITEMS, categories: list[str] = CATEGORIES) -> Path:
    names = sorted(set(categories))
    pd.DataFrame([[int(category == name) for name in names] for category in categories], index=items,
                 columns=names).to_csv(path)
    return path


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """Three matrices in three formats ((1, N, d) .npy, .txt, a .csv with an id column) and a one-hot CSV."""
    root = tmp_path / "reps"
    root.mkdir()
    np.save(root / "b_npy.npy", _matrix(0, 4)[None])
    np.savetxt(root / "a_text.txt", _matrix(1, 3))
    pd.DataFrame(_matrix(2, 5), index=ITEMS).to_csv(root / "c_table.csv")
    _one_hot(root / "labels.csv")
    (root / "notes.md").write_text("not a matrix")
    return root


def test_a_folder_loads_every_matrix_with_ids_and_categories_from_the_category_csv(folder: Path) -> None:
    image_set = embeddings(folder)
    assert image_set.name == "embeddings:reps" and image_set.root == folder
    assert len(image_set) == N and not image_set.has_images and image_set.paths == ()
    assert [reference.name for reference in image_set.references] == ["a_text", "b_npy", "c_table"]
    assert [reference.embedding.shape for reference in image_set.references] == [(N, 3), (N, 4), (N, 5)]
    assert all(reference.embedding.dtype == np.float32 for reference in image_set.references)
    np.testing.assert_allclose(image_set.references[0].embedding, _matrix(1, 3), rtol=1e-6)
    np.testing.assert_array_equal(image_set.references[1].embedding, _matrix(0, 4))
    np.testing.assert_allclose(image_set.references[2].embedding, _matrix(2, 5), rtol=1e-6)
    assert image_set.reference_name == "a_text" and image_set.reference_embedding.shape == (N, 3)
    assert image_set.metadata["image_id"].tolist() == ITEMS
    assert image_set.metadata["category"].tolist() == CATEGORIES
    assert image_set.categories == ["animal", "plant", "vehicle"]
    part = image_set.subset([4, 0])
    assert part.metadata["image_id"].tolist() == ["car", "cat"] and part.paths == ()
    np.testing.assert_array_equal(part.references[1].embedding, _matrix(0, 4)[[4, 0]])
    assert load_dataset(f"embeddings:{folder}", folder).fingerprint == image_set.fingerprint


def test_file_lists_id_files_category_tables_and_default_ids(folder: Path, tmp_path: Path) -> None:
    files = f"{folder / 'b_npy.npy'},{folder / 'a_text.txt'}"
    listed = embeddings(files)
    assert [reference.name for reference in listed.references] == ["b_npy", "a_text"]
    assert listed.name == "embeddings:b_npy,a_text"
    assert listed.metadata["image_id"].tolist() == [f"item_{row:04d}" for row in range(N)]
    assert set(listed.categories) == {"all"}
    (tmp_path / "ids.txt").write_text("\n".join(ITEMS[::-1]) + "\n")
    pd.DataFrame({"id": ITEMS, "kind": CATEGORIES}).to_csv(tmp_path / "kinds.csv", index=False)
    spec = f"embeddings:{files}|ids={tmp_path / 'ids.txt'}|categories={tmp_path / 'kinds.csv'}"
    named = load_dataset(spec, tmp_path)
    assert named.metadata["image_id"].tolist() == ITEMS[::-1]
    assert named.metadata["category"].tolist() == CATEGORIES[::-1]
    # A CSV that names each row's id is put in the dataset's item order.
    shuffled = [3, 0, 5, 1, 4, 2]
    pd.DataFrame(_matrix(2, 5)[shuffled], index=[ITEMS[row] for row in shuffled]).to_csv(tmp_path / "shuffled.csv")
    reordered = embeddings(tmp_path / "shuffled.csv", categories=folder / "labels.csv")
    np.testing.assert_allclose(reordered.references[0].embedding, _matrix(2, 5), rtol=1e-6)
    with pytest.raises(DatasetError, match="bad embeddings option 'colour=red'.*\\|categories=<file>, \\|ids=<file>"):
        load_dataset(f"embeddings:{folder}|colour=red", tmp_path)
    assert any(form.startswith("embeddings:") for form in SPEC_FORMS)


def test_every_bad_input_is_an_error_naming_the_file(folder: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()

    def fails(match: str, location: Path | str = bad, **options) -> None:
        with pytest.raises(DatasetError, match=match):
            embeddings(location, **options)

    fails(r"folder .*bad holds no \.npy/\.txt/\.csv files")
    _one_hot(bad / "labels.csv")
    fails("holds no representation matrix, only the category file.*labels.csv")
    np.save(bad / "one.npy", _matrix(0, 4))
    np.save(bad / "short.npy", _matrix(0, 4)[:5])
    fails("different numbers of items: one.npy: 6, short.npy: 5")
    (bad / "short.npy").unlink()
    nan = _matrix(0, 4)
    nan[2, 1] = np.nan
    np.save(bad / "nan.npy", nan)
    fails(r"embedding .*nan\.npy contains NaN or infinite values \(row\(s\) 2\)")
    np.save(bad / "nan.npy", np.full((N, 2), np.inf))
    fails(r"nan\.npy contains NaN or infinite")
    (bad / "nan.npy").unlink()
    np.save(bad / "flat.npy", np.zeros(N))
    fails(r"flat\.npy has shape \(6,\); expected \(N, d\) or \(1, N, d\)")
    np.save(bad / "flat.npy", np.zeros((2, N, 3)))
    fails(r"flat\.npy has shape \(2, 6, 3\)")
    np.save(bad / "flat.npy", np.zeros((1, 1, N, 3)))
    fails(r"flat\.npy has shape \(1, 1, 6, 3\)")
    (bad / "flat.npy").unlink()
    (bad / "words.txt").write_text("a b\nc d\n")
    fails(r"cannot read embedding .*words\.txt")
    (bad / "words.txt").unlink()
    np.savetxt(bad / "one.txt", _matrix(1, 2))
    fails("one.npy, one.txt share the name 'one'")
    (bad / "one.txt").unlink()
    _one_hot(bad / "labels.csv", ITEMS[:5], CATEGORIES[:5])
    fails(r"labels\.csv lists 5 item ids but every representation has 6 rows")
    _one_hot(bad / "labels.csv", ["cat", "dog", "cat", "rose", "car", "bus"])
    fails(r"labels\.csv: duplicate item ids cat")
    pd.DataFrame({"": ["cat", None, "oak", "rose", "car", "bus"], "animal": 1}).to_csv(bad / "labels.csv",
                                                                                    index=False)
    fails(r"category file .*labels\.csv: line\(s\) 3 have no item id")
    _one_hot(bad / "labels.csv")
    (tmp_path / "ids.txt").write_text("cat\ndog\noak\nrose\ncar\nboat\n")
    fails(r"category file .*labels\.csv has no row for 1 concept\(s\): boat", ids=tmp_path / "ids.txt")
    (tmp_path / "ids.txt").write_text("cat\ncat\noak\nrose\ncar\nbus\n")
    fails(r"ids\.txt: duplicate item ids cat", ids=tmp_path / "ids.txt")
    fails(r"id file .*absent\.txt not found", ids=tmp_path / "absent.txt")
    fails(r"category file .*absent\.csv not found", categories=tmp_path / "absent.csv")
    _one_hot(bad / "more_labels.csv")
    fails(r"several category files \(labels\.csv, more_labels\.csv\); name the one to use with \|categories=")
    fails(r"representation file\(s\) .*gone\.npy not found", f"{bad / 'one.npy'},{bad / 'gone.npy'}")
    with pytest.raises(DatasetError, match="extract"):
        extract(embeddings(folder), None, ["final"], None)  # never reaches the encoder or the store


def test_the_fingerprint_follows_the_matrices_bytes_and_the_metadata(folder: Path) -> None:
    before = embeddings(folder).fingerprint
    assert embeddings(folder).fingerprint == before
    changed = _matrix(0, 4)
    changed[3, 2] += 1e-3
    np.save(folder / "b_npy.npy", changed)
    after = embeddings(folder).fingerprint
    assert after != before
    _one_hot(folder / "labels.csv", categories=["animal", "plant", "plant", "plant", "vehicle", "vehicle"])
    assert embeddings(folder).fingerprint not in (before, after)


def test_gwtune_things_folder_holds_six_groups_of_1854_items() -> None:
    if not ONE_HOT_CSV.is_file():
        pytest.skip(f"real data absent: {THINGS_DIR}")
    image_set = load_dataset(f"embeddings:{THINGS_DIR}", THINGS_DIR)
    one_hot = pd.read_csv(ONE_HOT_CSV, index_col=0)
    assert image_set.name == "embeddings:THINGS" and len(image_set) == 1854 and not image_set.has_images
    assert [reference.name for reference in image_set.references] == [
        "THINGS_embedding_Group1", "THINGS_embedding_Group2", "THINGS_embedding_Group3", "THINGS_embedding_Group4",
        "female_embeddings", "male_embeddings"]
    assert all(reference.embedding.shape == (1854, 90) for reference in image_set.references)
    np.testing.assert_array_equal(image_set.references[1].embedding, np.load(THINGS_DIR / "THINGS_embedding_Group2.npy")[0])
    assert image_set.metadata["image_id"].iloc[0] == "aardvark"
    assert image_set.metadata["image_id"].tolist() == one_hot.index.tolist()
    assert len(image_set.categories) == 28 and "others" in image_set.categories
    assert image_set.metadata["category"].value_counts().to_dict() == one_hot.sum(axis=0)[lambda s: s > 0].to_dict()
