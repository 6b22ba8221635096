"""Feature store: keys, atomic writes, chunked resume, concurrent writers."""
from __future__ import annotations

import multiprocessing
import time
from dataclasses import replace

import numpy as np
import pytest

from core.features.store import FeatureKey, FeatureStore

KEY = FeatureKey(encoder="pixels:8", weights="none", layer="final", pooling="model", preprocess="{}",
                 dataset="abc123")


def test_every_key_field_changes_the_digest() -> None:
    digests = {KEY.digest}
    for field, value in [("encoder", "pixels:16"), ("weights", "x"), ("layer", "blocks.0"), ("pooling", "cls"),
                         ("preprocess", '{"a": 1}'), ("dataset", "def456"), ("view", "glo_8")]:
        digests.add(replace(KEY, **{field: value}).digest)
    assert len(digests) == 8
    assert replace(KEY).digest == KEY.digest


def test_save_then_load_is_a_read_only_memmap(tmp_path) -> None:
    store = FeatureStore(tmp_path)
    features = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    store.save(KEY, features, {"note": "test"})
    loaded = store.load(KEY)
    assert isinstance(loaded, np.memmap) and not loaded.flags.writeable
    np.testing.assert_array_equal(loaded, features)
    assert store.info(KEY)["shape"] == [10, 4] and store.info(KEY)["note"] == "test"
    assert [entry["digest"] for entry in FeatureStore(tmp_path).entries()] == [KEY.digest]


def test_chunks_resume_and_stitch(tmp_path) -> None:
    store = FeatureStore(tmp_path)
    features = np.arange(50, dtype=np.float32).reshape(25, 2)
    store.save_chunk(KEY, 0, features[:10])
    store.save_chunk(KEY, 20, features[20:])  # a gap: only the leading run counts
    assert store.rows_done(KEY) == 10 and not store.has(KEY)
    with pytest.raises(RuntimeError, match="resume"):
        store.finalize(KEY, 25)
    store.save_chunk(KEY, 10, features[10:20])
    assert store.rows_done(KEY) == 25
    np.testing.assert_array_equal(store.finalize(KEY, 25), features)
    assert store.has(KEY) and not (tmp_path / "partial" / KEY.digest).exists()


def test_no_temporary_file_is_left_and_a_half_file_is_never_valid(tmp_path) -> None:
    store = FeatureStore(tmp_path)
    store.save(KEY, np.ones((3, 3), np.float32))
    assert not list(tmp_path.glob("*.tmp.npy"))
    # A file without its index record (a crash between the two) is not a cache hit.
    other = replace(KEY, layer="x")
    np.save(store.path(other), np.ones((2, 2), np.float32))
    assert not store.has(other)


def _hammer(root: str, seed: int) -> None:
    store = FeatureStore(root)
    features = np.arange(2000 * 64, dtype=np.float32).reshape(2000, 64)
    for _ in range(5):
        with store.lock([KEY]):
            store.save(KEY, features)
        time.sleep(0.001 * seed)


def test_two_processes_writing_one_key_leave_it_valid(tmp_path) -> None:
    workers = [multiprocessing.get_context("spawn").Process(target=_hammer, args=(str(tmp_path), seed))
               for seed in (1, 2)]
    for worker in workers:
        worker.start()
    store = FeatureStore(tmp_path)
    reads = 0
    while any(worker.is_alive() for worker in workers):
        if store.has(KEY):
            loaded = np.asarray(store.load(KEY))
            assert loaded.shape == (2000, 64) and loaded[-1, -1] == 2000 * 64 - 1
            reads += 1
    for worker in workers:
        worker.join()
        assert worker.exitcode == 0
    assert store.has(KEY) and not list(tmp_path.glob("*.tmp.npy"))
