"""Fingerprints hash the images' bytes (a copy keeps its features), and caches keyed by the earlier,
mtime-based fingerprints stay reachable (core.data.fingerprints)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data.datasets import DatasetError, ImageSet, load_dataset
from core.data.fingerprints import REGISTRY_FILE
from core.encoders.registry import describe
from core.features import extract as extract_module
from core.features.extract import extract, feature_keys
from core.features.store import FeatureStore

SPEC = "pixels:4"


def _noise_folder(root: Path) -> Path:
    """6 noise PNGs in 2 categories (each under 1 KB)."""
    rng = np.random.default_rng(0)
    for category in ("ant", "bee"):
        (root / category).mkdir(parents=True)
        for index in range(3):
            Image.fromarray(rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)).save(
                root / category / f"{category}{index}.png")
    return root


def _copy_with_new_mtimes(source: Path, target: Path) -> Path:
    """What `cp -r` (no -p) or a fresh download gives: the same bytes, every mtime new."""
    shutil.copytree(source, target, copy_function=shutil.copyfile)
    for path in target.rglob("*.png"):
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 86_400 * 10**9))
    return target


def _mtime_fingerprint(image_set: ImageSet) -> str:
    """The fingerprint as RepScope computed it before it hashed content: (path, size, mtime_ns) + metadata CSV."""
    digest = hashlib.sha256()
    for path in image_set.paths:
        stat = path.stat()
        digest.update(f"{path.relative_to(image_set.root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    digest.update(image_set.metadata.to_csv().encode())
    return digest.hexdigest()[:16]


def _no_model(monkeypatch) -> None:
    monkeypatch.setattr(extract_module, "load_encoder", lambda *a, **k: pytest.fail("features computed again"))


def test_a_copy_with_new_mtimes_keeps_its_fingerprint_and_its_features(tmp_path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    original = load_dataset(f"folder:{_noise_folder(tmp_path / 'data')}", cache)
    store = FeatureStore(cache / "features")
    first = extract(original, describe(SPEC), ["final"], store)["final"].features
    copied = load_dataset(f"folder:{_copy_with_new_mtimes(tmp_path / 'data', tmp_path / 'moved')}", cache)
    assert copied.root != original.root and copied.fingerprint == original.fingerprint
    assert _mtime_fingerprint(copied) != _mtime_fingerprint(original)  # what used to give it new keys
    _no_model(monkeypatch)
    again = extract(copied, describe(SPEC), ["final"], store)["final"].features
    np.testing.assert_array_equal(again, first)
    assert first.shape == (6, 48)  # 4 x 4 pixels x 3 channels


def test_one_changed_byte_in_one_image_changes_the_fingerprint(tmp_path) -> None:
    cache = tmp_path / "cache"
    original = load_dataset(f"folder:{_noise_folder(tmp_path / 'data')}", cache)
    copy = _copy_with_new_mtimes(tmp_path / "data", tmp_path / "edited")
    image = copy / "bee" / "bee1.png"
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, one bit
    image.write_bytes(bytes(data))
    edited = load_dataset(f"folder:{copy}", cache)
    assert edited.fingerprint != original.fingerprint
    store = FeatureStore(cache / "features")
    key = feature_keys(original, describe(SPEC), ["final"])["final"]
    store.save(key, np.zeros((6, 48), np.float32))
    assert not store.has(feature_keys(edited, describe(SPEC), ["final"])["final"])


def test_features_cached_under_the_mtime_fingerprint_stay_found_also_after_a_copy(tmp_path, monkeypatch) -> None:
    """Migration: a cache made when fingerprints hashed mtimes keeps its features, for the set and its subsets."""
    folder, cache = _noise_folder(tmp_path / "data"), tmp_path / "cache"
    earlier = load_dataset(f"folder:{folder}", tmp_path / "elsewhere")  # only for its rows and paths
    legacy = _mtime_fingerprint(earlier)
    legacy_subset = _mtime_fingerprint(earlier.subset([0, 2, 4]))
    store = FeatureStore(cache / "features")
    stored = np.arange(6 * 48, dtype=np.float32).reshape(6, 48)
    key = feature_keys(earlier, describe(SPEC), ["final"])["final"]
    store.save(dataclasses.replace(key, dataset=legacy), stored)
    (cache / "thumbnails" / legacy_subset / "96").mkdir(parents=True)

    migrated = load_dataset(f"folder:{folder}", cache)
    assert migrated.fingerprint == legacy != earlier.fingerprint
    assert migrated.subset([0, 2, 4]).fingerprint == legacy_subset
    registry = json.loads((cache / REGISTRY_FILE).read_text())
    assert set(registry["legacy"]) == {legacy, legacy_subset} and len(registry["tokens"]) == 6
    _no_model(monkeypatch)
    np.testing.assert_array_equal(extract(migrated, describe(SPEC), ["final"], store)["final"].features, stored)

    copied = load_dataset(f"folder:{_copy_with_new_mtimes(folder, tmp_path / 'moved')}", cache)
    assert copied.fingerprint == legacy  # the recorded mtimes travel with the bytes
    np.testing.assert_array_equal(extract(copied, describe(SPEC), ["final"], store)["final"].features, stored)

    image = tmp_path / "moved" / "ant" / "ant0.png"
    image.write_bytes(image.read_bytes()[:-1] + bytes([image.read_bytes()[-1] ^ 1]))
    changed = load_dataset(f"folder:{tmp_path / 'moved'}", cache)
    assert changed.fingerprint not in (legacy, earlier.fingerprint)  # new bytes never reuse the old features


def test_a_fresh_cache_counts_images_by_content_and_a_broken_registry_is_named(tmp_path) -> None:
    folder = _noise_folder(tmp_path / "data")
    fresh = load_dataset(f"folder:{folder}", tmp_path / "cache")
    assert fresh.fingerprint != _mtime_fingerprint(fresh)
    assert json.loads((tmp_path / "cache" / REGISTRY_FILE).read_text()) == {"legacy": [], "tokens": {}}
    (tmp_path / "cache" / REGISTRY_FILE).write_text("{not json")
    with pytest.raises(DatasetError, match=f"{REGISTRY_FILE} is not a fingerprint registry.*delete it"):
        load_dataset(f"folder:{folder}", tmp_path / "cache")
