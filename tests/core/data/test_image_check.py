"""check_images: every unreadable file of a dataset named in one call."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from core.data.datasets import image_folder, oasis
from core.data.image_check import check_images, image_problems_message


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
