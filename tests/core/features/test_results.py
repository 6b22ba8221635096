"""The result store: tables and arrays read back equal, a result without its result.json is absent, nothing is pickled."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.features.results import FAILED_FILE, RESULT_FILE, ResultStore, result_key


def test_tables_and_arrays_read_back_equal(tmp_path) -> None:
    store = ResultStore(tmp_path)
    table = pd.DataFrame({"x": [0.1 + 0.2, np.nan, 1e-300], "n": [1, 2, 3], "ok": [True, False, True],
                          "name": ["a", "b", "c"]})
    plan = np.random.default_rng(0).random((5, 5))
    store.put("kind", "k1", {"label": "one", "settings": {"epsilon": 0.1}}, tables={"trials": table},
              arrays={"plan": plan})
    stored = store.get("kind", "k1")
    assert stored.table("trials").equals(table)  # floats exactly (0.30000000000000004), NaN, dtypes
    np.testing.assert_array_equal(stored.array("plan"), plan)
    assert stored.meta["label"] == "one" and [entry["key"] for entry in store.entries("kind")] == ["k1"]


def test_a_result_without_its_record_or_with_a_missing_file_is_absent(tmp_path) -> None:
    store = ResultStore(tmp_path)
    store.put("kind", "k1", {}, arrays={"plan": np.eye(3)})
    (store.folder("kind", "k1") / "plan.npy").unlink()  # a damaged result: computed again, never half-read
    assert store.get("kind", "k1") is None
    store.put("kind", "k2", {}, arrays={"plan": np.eye(3)})
    (store.folder("kind", "k2") / RESULT_FILE).unlink()  # killed before the record was written: never finished
    assert store.get("kind", "k2") is None and not store.has("kind", "k2")


def test_failures_are_kept_until_a_success(tmp_path) -> None:
    store = ResultStore(tmp_path)
    store.fail("kind", "k1", {"label": "one"}, "ValueError: no")
    assert store.failure("kind", "k1")["error"] == "ValueError: no"
    store.put("kind", "k1", {"label": "one"})
    assert store.failure("kind", "k1") is None and not (store.folder("kind", "k1") / FAILED_FILE).exists()


def test_pickled_arrays_and_path_like_names_are_refused(tmp_path) -> None:
    store = ResultStore(tmp_path)
    store.put("kind", "k1", {}, arrays={"plan": np.eye(2)})
    np.save(store.folder("kind", "k1") / "plan.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle|Python objects"):
        store.get("kind", "k1").array("plan")
    with pytest.raises(ValueError, match="plain names"):
        store.get("kind", "../escape")


def test_keys_follow_every_setting_and_input() -> None:
    base = result_key("alignment", {"epsilon": 0.1, "n": 3}, {"source": "a"})
    assert base == result_key("alignment", {"n": 3, "epsilon": 0.1}, {"source": "a"})  # order does not matter
    assert len({base, result_key("alignment", {"epsilon": 0.2, "n": 3}, {"source": "a"}),
                result_key("alignment", {"epsilon": 0.1, "n": 3}, {"source": "b"}),
                result_key("similarity", {"epsilon": 0.1, "n": 3}, {"source": "a"})}) == 4
