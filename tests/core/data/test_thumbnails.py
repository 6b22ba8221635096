"""Thumbnails made once per dataset into the cache, and selections saved as manifests the sidebar opens."""
import io

import numpy as np
import pytest
from PIL import Image

from core.data import datasets
from core.data.selections import save_selection, selection_manifest
from core.data.thumbnails import ThumbnailStore, data_url


@pytest.fixture()
def folder_set(tmp_path):
    rng = np.random.default_rng(0)
    for category, count in (("cats", 3), ("dogs", 2)):
        (tmp_path / "images" / category).mkdir(parents=True)
        for index in range(count):
            pixels = rng.integers(0, 255, size=(300, 500, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / category / f"{category}{index}.jpg")
    return datasets.image_folder(tmp_path / "images")


def test_thumbnails_are_small_jpegs_made_once(folder_set, tmp_path):
    store = ThumbnailStore(tmp_path / "thumbs", size=96)
    assert store.build(folder_set) == 5
    made = {row: store.path(folder_set, row).stat().st_mtime_ns for row in range(5)}
    with Image.open(io.BytesIO(store.get(folder_set, 2))) as thumbnail:
        assert thumbnail.format == "JPEG" and max(thumbnail.size) == 96 and thumbnail.size == (96, 58)
    assert store.build(folder_set) == 5
    assert made == {row: store.path(folder_set, row).stat().st_mtime_ns for row in range(5)}
    assert data_url(store.get(folder_set, 0)).startswith("data:image/jpeg;base64,/9j/")
    assert folder_set.fingerprint in str(store.path(folder_set, 0))


def test_an_unreadable_image_has_no_thumbnail_and_leaves_no_file(folder_set, tmp_path):
    folder_set.paths[1].write_bytes(b"not an image")
    store = ThumbnailStore(tmp_path / "thumbs")
    assert store.get(folder_set, 1) is None and not store.path(folder_set, 1).exists()
    assert store.build(folder_set) == 4


def test_real_oasis_thumbnails_include_the_png_with_alpha(oasis_root, tmp_path):
    oasis = datasets.oasis(oasis_root)
    row = int(np.flatnonzero(oasis.metadata["image_id"] == "Monkey 3")[0])
    with Image.open(io.BytesIO(ThumbnailStore(tmp_path).get(oasis, row))) as thumbnail:
        assert thumbnail.size == (96, 77) and thumbnail.mode == "RGB"


def test_a_saved_selection_opens_as_a_manifest_dataset(folder_set, tmp_path):
    table = selection_manifest(folder_set, [4, 0, 2])
    path = save_selection(table, tmp_path / "selections", "my picks / dogs?")
    assert path.name == "my_picks_dogs.csv"
    reopened = datasets.manifest(path)
    assert list(reopened.metadata["image_id"]) == list(folder_set.metadata["image_id"].iloc[[4, 0, 2]])
    assert list(reopened.metadata["category"]) == list(folder_set.metadata["category"].iloc[[4, 0, 2]])
    assert [p.resolve() for p in reopened.paths] == [folder_set.paths[row].resolve() for row in (4, 0, 2)]
    with pytest.raises(ValueError, match="empty"):
        selection_manifest(folder_set, [])


def test_a_different_selection_saved_under_the_same_name_does_not_overwrite(folder_set, tmp_path):
    first = save_selection(selection_manifest(folder_set, [0]), tmp_path, "picks")
    again = save_selection(selection_manifest(folder_set, [0]), tmp_path, "picks")
    other = save_selection(selection_manifest(folder_set, [1, 2]), tmp_path, "picks")
    assert first == again and other != first and other.name.startswith("picks_")
    assert len(datasets.manifest(first)) == 1 and len(datasets.manifest(other)) == 2
