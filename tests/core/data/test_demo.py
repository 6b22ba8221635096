"""The procedural demo: format, determinism, atomic generation and the documented generative model."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core.data.datasets import ImageSet, demo, load_dataset
from core.data.images import load_image
from core.data.demo import (ATTRIBUTES, CATEGORIES, COMPLETE_MARKER, DEMO_FOLDER, IMAGE_SIZE, REFERENCE_FILE,
                            STAGING_PREFIX, colour_layout, ensure_demo, noiseless_ratings)

OASIS_HEADER = ",Theme,Category,Source,Valence_mean,Valence_SD,Valence_N,Arousal_mean,Arousal_SD,Arousal_N"
N_IMAGES = 384
GENERATION_LIMIT_S = 30.0


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """(cache folder, seconds the first generation took), shared by the tests of this module."""
    cache = tmp_path_factory.mktemp("demo-cache")
    started = time.perf_counter()
    ensure_demo(cache)
    return cache, time.perf_counter() - started


@pytest.fixture(scope="session")
def demo_set(generated: tuple[Path, float]) -> ImageSet:
    return demo(generated[0])


def test_generation_time_and_oasis_layout(generated: tuple[Path, float]) -> None:
    cache, elapsed = generated
    assert elapsed < GENERATION_LIMIT_S
    folder = cache / DEMO_FOLDER
    assert sorted(path.name for path in cache.iterdir()) == [DEMO_FOLDER]
    assert (folder / "OASIS.csv").read_text().splitlines()[0].startswith(OASIS_HEADER + ",")
    images = sorted((folder / "images").iterdir())
    assert len(images) == N_IMAGES and all(path.suffix == ".jpg" for path in images)
    with Image.open(images[0]) as first:
        assert first.format == "JPEG" and first.mode == "RGB" and first.size == (IMAGE_SIZE, IMAGE_SIZE)
    assert (folder / COMPLETE_MARKER).is_file() and (folder / REFERENCE_FILE).is_file()


def test_demo_image_set_design(demo_set: ImageSet, generated: tuple[Path, float]) -> None:
    metadata = demo_set.metadata
    assert demo_set.name == "demo" and len(demo_set) == N_IMAGES and demo_set.has_affect
    assert demo_set.categories == sorted(CATEGORIES)
    assert metadata["category"].value_counts().to_dict() == {name: 96 for name in CATEGORIES}
    sizes = metadata["group"].value_counts()
    assert len(sizes) == 48 and set(sizes) == {8}
    row = metadata.index[metadata["image_id"] == "Warm smooth bright star 3"][0]
    assert metadata.at[row, "group"] == "Warm smooth bright star" and metadata.at[row, "category"] == "Star"
    for column in ("valence", "arousal"):
        assert metadata[column].between(1, 7).all()
    assert metadata[["Valence_SD", "Arousal_SD"]].gt(0.5).all().all()
    assert metadata[["Valence_N", "Arousal_N"]].apply(lambda c: c.between(95, 110)).all().all()
    assert load_dataset("demo", generated[0]).fingerprint == demo_set.fingerprint
    assert load_image(demo_set.paths[0]).size == (IMAGE_SIZE, IMAGE_SIZE)


def test_noiseless_ratings_are_the_documented_formulas() -> None:
    attributes = pd.DataFrame([dict.fromkeys(ATTRIBUTES, 0.5),
                               {"warmth": 1, "brightness": 1, "smoothness": 1, "saturation": 0, "contrast": 0,
                                "clutter": 0}])
    ratings = noiseless_ratings(attributes)
    np.testing.assert_allclose(ratings["valence"], [4.0, 4.0 + 1.1 + 0.8 + 0.8])
    np.testing.assert_allclose(ratings["arousal"], [4.0, 4.0 - 0.9 - 0.8 - 0.8 - 0.4])


def test_ratings_follow_attributes_not_categories(demo_set: ImageSet) -> None:
    metadata = demo_set.metadata
    noiseless = noiseless_ratings(metadata)
    for column in ("valence", "arousal"):
        assert np.corrcoef(metadata[column], noiseless[column])[0, 1] > 0.85
        # Theme offset (SD 0.3) and rating noise (SD 0.2) give a residual SD near 0.36.
        assert 0.25 < (metadata[column] - noiseless[column]).std() < 0.45
        category_means = metadata.groupby("category")[column].transform("mean")
        assert category_means.var(ddof=0) / metadata[column].var(ddof=0) < 0.1
    for category, rows in metadata.groupby("category"):
        assert (rows[list(ATTRIBUTES)].min() < 0.25).all(), category
        assert (rows[list(ATTRIBUTES)].max() > 0.75).all(), category


def test_pixels_carry_the_attributes(demo_set: ImageSet) -> None:
    measured = []
    for path in demo_set.paths:
        with Image.open(path) as image:
            pixels = np.asarray(image.reduce(4), dtype=np.float32) / 255  # (56, 56, 3)
        brightest, darkest = pixels.max(axis=-1), pixels.min(axis=-1)
        measured.append({"brightness": pixels.mean(), "warmth": (pixels[..., 0] - pixels[..., 2]).mean(),
                         "saturation": ((brightest - darkest) / (brightest + 1e-3)).mean()})
    measured = pd.DataFrame(measured)
    for attribute in measured.columns:
        assert np.corrcoef(demo_set.metadata[attribute], measured[attribute])[0, 1] > 0.75, attribute


def test_reference_embedding_is_the_images_colour_layout_plus_noise(demo_set: ImageSet) -> None:
    embedding = demo_set.reference_embedding
    assert embedding.shape == (N_IMAGES, 48) and embedding.dtype == np.float32 and embedding.min() >= 0
    assert demo_set.reference_name == "demo human"
    # From the saved JPEGs rather than the pre-JPEG pixels the embedding was made of: compression adds ~0.01.
    layouts = np.stack([colour_layout(np.asarray(load_image(path))) for path in demo_set.paths])
    residual = embedding - layouts
    assert abs(residual.mean()) < 0.005 and 0.02 < residual.std() < 0.04  # observer noise SD 0.03
    brightness = embedding.mean(axis=1)
    assert np.corrcoef(brightness, demo_set.metadata["brightness"])[0, 1] > 0.75


def test_second_call_returns_at_once(generated: tuple[Path, float]) -> None:
    cache = generated[0]
    csv_mtime = (cache / DEMO_FOLDER / "OASIS.csv").stat().st_mtime_ns
    started = time.perf_counter()
    assert ensure_demo(cache) == cache / DEMO_FOLDER
    assert time.perf_counter() - started < 0.5
    assert (cache / DEMO_FOLDER / "OASIS.csv").stat().st_mtime_ns == csv_mtime


def test_leftovers_do_not_count_and_generation_is_deterministic(generated: tuple[Path, float],
                                                               tmp_path: Path) -> None:
    stale = tmp_path / f"{STAGING_PREFIX}killed"
    (stale / "images").mkdir(parents=True)
    (stale / "OASIS.csv").write_text(OASIS_HEADER + "\n")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    running = tmp_path / f"{STAGING_PREFIX}running"
    running.mkdir()
    partial = tmp_path / DEMO_FOLDER
    (partial / "images").mkdir(parents=True)
    (partial / "OASIS.csv").write_text(OASIS_HEADER + "\n")
    (partial / COMPLETE_MARKER).write_text("0")  # an older generator's marker

    folder = ensure_demo(tmp_path)

    reference = generated[0] / DEMO_FOLDER
    assert (folder / "OASIS.csv").read_bytes() == (reference / "OASIS.csv").read_bytes()
    assert (folder / REFERENCE_FILE).read_bytes() == (reference / REFERENCE_FILE).read_bytes()
    names = sorted(path.name for path in (reference / "images").iterdir())
    assert sorted(path.name for path in (folder / "images").iterdir()) == names
    assert all((folder / "images" / name).read_bytes() == (reference / "images" / name).read_bytes()
               for name in names)
    assert not stale.exists() and running.is_dir()
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([DEMO_FOLDER, running.name])
