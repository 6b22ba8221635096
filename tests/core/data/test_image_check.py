"""check_images: every unreadable file of a dataset named in one call."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core.data.datasets import DatasetError, image_folder, load_dataset, oasis, split_skip_option, with_skip_option
from core.data.image_check import check_images, image_problems_message
from core.provenance import Provenance


def _tiny_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), (200, 30, 30)).save(path)
    return path


def test_check_images_names_every_bad_file_in_one_call(tmp_path: Path) -> None:
    photo = tmp_path / "pics" / "good" / "photo.jpg"
    photo.parent.mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, size=(64, 80, 3), dtype=np.uint8)).save(photo, quality=90)
    _tiny_image(tmp_path / "pics" / "good" / "icon.png")
    truncated = tmp_path / "pics" / "bad" / "truncated.jpg"
    truncated.parent.mkdir()
    truncated.write_bytes(photo.read_bytes()[: photo.stat().st_size // 2])
    text = tmp_path / "pics" / "bad" / "notes.jpg"
    text.write_text("not an image, just text")
    image_set = image_folder(tmp_path / "pics")
    problems = check_images(image_set)
    assert [(problem.row, problem.path.name) for problem in problems] == [(0, "notes.jpg"), (1, "truncated.jpg")]
    assert "cannot identify" in problems[0].reason and "truncated" in problems[1].reason
    message = image_problems_message(problems)
    assert message.startswith("2 image file(s) cannot be read") and str(text) in message and str(truncated) in message
    assert check_images(image_folder(tmp_path / "pics" / "good")) == []
    seen = []
    check_images(image_set, progress=lambda progress: seen.append((progress.done, progress.total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_check_images_reports_a_file_deleted_after_loading(tmp_path: Path) -> None:
    _tiny_image(tmp_path / "pics" / "a" / "one.png")
    doomed = _tiny_image(tmp_path / "pics" / "a" / "two.png")
    image_set = image_folder(tmp_path / "pics")
    doomed.unlink()
    assert [(problem.path, problem.reason) for problem in check_images(image_set)] == [(doomed, "file does not exist")]


def test_check_images_of_real_oasis_is_clean(oasis_root: Path) -> None:
    assert check_images(oasis(oasis_root)) == []  # 1.6 s for the 900 images on 2 CPU cores


# --- skipping unreadable images (`|unreadable=skip`) --------------------------------------------------------

def _folder_with_one_truncated_jpeg(root: Path) -> Path:
    """cats/ and dogs/ with 3 good 40x40 JPEGs and dogs/broken.jpg cut after 300 bytes."""
    rng = np.random.default_rng(1)
    for name in ("cats/a.jpg", "cats/b.jpg", "dogs/c.jpg"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)).save(root / name)
    (root / "dogs" / "broken.jpg").write_bytes((root / "dogs" / "c.jpg").read_bytes()[:300])
    return root


def test_a_truncated_jpeg_is_named_by_default_and_left_out_and_recorded_when_skipping(tmp_path: Path) -> None:
    folder = _folder_with_one_truncated_jpeg(tmp_path / "data")
    whole = load_dataset(f"folder:{folder}", tmp_path / "cache")
    problems = check_images(whole)
    assert len(whole) == 4 and [problem.path.name for problem in problems] == ["broken.jpg"]
    message = image_problems_message(problems)
    assert "dogs/broken.jpg" in message and "|unreadable=skip" in message

    spec = with_skip_option(f"folder:{folder}", True)
    assert spec == f"folder:{folder}|unreadable=skip" and split_skip_option(spec) == (f"folder:{folder}", True)
    skipping = load_dataset(spec, tmp_path / "cache")
    assert len(skipping) == 3 and skipping.metadata["image_id"].tolist() == ["cats/a", "cats/b", "dogs/c"]
    assert [image.label for image in skipping.skipped] == ["dogs/broken.jpg"] and check_images(skipping) == []
    assert skipping.fingerprint != whole.fingerprint
    (folder / "dogs" / "broken.jpg").unlink()  # the same three images, without a skip: a key of its own
    assert load_dataset(f"folder:{folder}", tmp_path / "cache").fingerprint != skipping.fingerprint
    assert skipping.subset([0, 2]).skipped == skipping.skipped

    provenance = Provenance(skipping.name, skipping.fingerprint, skipped_images=skipping.skipped_labels)
    assert provenance.to_dict()["skipped_images"][0].startswith("dogs/broken.jpg (")
    columns = provenance.with_columns(pd.DataFrame({"x": [1]}))
    assert columns["provenance_skipped_images"].iloc[0].startswith("dogs/broken.jpg (")
    assert "skipped_images" not in Provenance(whole.name, whole.fingerprint).to_dict()


def test_skipping_is_refused_where_it_means_nothing_or_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="applies to oasis, things, folder, manifest"):
        load_dataset("demo|unreadable=skip", tmp_path)
    (tmp_path / "bad" / "x").mkdir(parents=True)
    (tmp_path / "bad" / "x" / "a.jpg").write_text("not an image")
    with pytest.raises(DatasetError, match="none of its 1 images can be read.*a.jpg"):
        load_dataset(f"folder:{tmp_path / 'bad'}|unreadable=skip", tmp_path)
