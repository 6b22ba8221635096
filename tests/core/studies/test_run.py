"""A demo study on the local engine and on a local Ray cluster: the same results, no work the second time, and a
worker killed mid-task changes nothing."""
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from threadpoolctl import threadpool_limits

from core.data.datasets import demo
from core.features.results import ResultStore
from core.features.store import FeatureStore
from core.studies.engines import LocalEngine, RayEngine
from core.studies.run import STEP_KIND, run_study, study_status
from core.studies.spec import load_study

STUDY = '''name = "engines"
datasets = ["demo"]
encoders = ["pixels:32", "pixels:8"]

[[steps]]
analysis = "affect"
schemes = ["loco", "kfold"]

[[steps]]
analysis = "alignment"
source = "human · demo human"
targets = ["pixels:32 · final", "pixels:8 · final"]
metric = "euclidean"
normalise = true
eps_range = [1e-2, 1e-1]
n_eps = 2
n_inits = 2
anneal = false

[[steps]]
analysis = "similarity"
measures = ["cka_linear", "rsa_spearman"]
bootstrap = 20
'''


class CountingEngine(LocalEngine):
    """The local engine, counting the tasks it is given."""

    def __init__(self):
        self.tasks = 0

    def map(self, function, calls, **kwargs):
        self.tasks += len(calls)
        return super().map(function, calls, **kwargs)


def fresh_cache(isolated_cache: Path, name: str) -> Path:
    """A cache holding only the demo images (copied with their mtimes, so the dataset's fingerprint is the same)."""
    demo(isolated_cache)
    cache = isolated_cache.parent / name
    shutil.rmtree(cache, ignore_errors=True)
    shutil.copytree(isolated_cache / "demo", cache / "demo")
    return cache


def study_in(cache: Path, tmp_path: Path):
    path = tmp_path / "engines.toml"
    path.write_text(STUDY)
    return load_study(path, cache)


def stored_results(cache: Path) -> dict:
    """Every stored result's tables and arrays (timings left out), and every feature array, by key."""
    store, found = ResultStore(cache / "results"), {}
    for meta in store.entries():
        result = store.get(meta["kind"], meta["key"])
        found[meta["kind"], meta["key"]] = (
            {name: result.table(name).drop(columns=["seconds"], errors="ignore") for name in result.table_names},
            {name: np.asarray(result.array(name)) for name in result.array_names})
    features = FeatureStore(cache / "features")
    found["features"] = {entry["digest"]: np.asarray(features.load(_key(entry))) for entry in features.entries()}
    matrices = sorted((cache / "results" / "similarity_matrices").glob("*.npz"))
    found["matrices"] = {path.name: dict(np.load(path, allow_pickle=False)) for path in matrices}
    return found


def _key(entry: dict):
    from core.features.store import FeatureKey
    return FeatureKey(**{field: entry[field] for field in FeatureKey.__dataclass_fields__})


def assert_same(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    for key, value in first.items():
        if key == "features" or key == "matrices":
            assert value.keys() == second[key].keys()
            for name, array in value.items():
                if isinstance(array, dict):
                    for part in array:
                        assert np.array_equal(array[part], second[key][name][part]), (key, name, part)
                else:
                    assert np.array_equal(array, second[key][name]), (key, name)
            continue
        tables, arrays = value
        for name, table in tables.items():
            assert table.equals(second[key][0][name]), (key, name)
        for name, array in arrays.items():
            assert np.array_equal(array, second[key][1][name]), (key, name)


@pytest.fixture(scope="module")
def local_run(isolated_cache: Path, tmp_path_factory) -> tuple[Path, dict]:
    cache = fresh_cache(isolated_cache, "study-local")
    with threadpool_limits(limits=1):  # as a Ray worker of 1 CPU runs: BLAS sums in the same order
        statuses = run_study(study_in(cache, tmp_path_factory.mktemp("local")), cache, LocalEngine())
    assert [status.state for status in statuses] == ["done"] * 3, [status.error for status in statuses]
    return cache, stored_results(cache)


@pytest.fixture(scope="module")
def ray_engine():
    engine = RayEngine(num_cpus=2)
    yield engine
    engine.close()


@pytest.mark.slow
def test_the_ray_engine_gives_the_local_results_and_a_second_run_does_no_work(local_run, ray_engine, isolated_cache,
                                                                              tmp_path) -> None:
    cache = fresh_cache(isolated_cache, "study-ray")
    study = study_in(cache, tmp_path)
    assert [status.state for status in study_status(study, cache)] == ["pending"] * 3
    statuses = run_study(study, cache, ray_engine)
    assert [(status.state, status.ran) for status in statuses] == [("done", True)] * 3, [s.error for s in statuses]
    assert_same(local_run[1], stored_results(cache))
    # Alignment known answer on the demo: human vs pixels:32 recovers most items, far above chance (1/384).
    matching = ResultStore(cache / "results").get(STEP_KIND, statuses[1].key).table("matching").set_index("target")
    assert matching.loc["pixels:32 · final", "top-1"] > 0.1  # chance: 1 / 384
    again = CountingEngine()
    statuses = run_study(study, cache, again)
    assert again.tasks == 0 and [(status.state, status.ran) for status in statuses] == [("done", False)] * 3


@pytest.mark.slow
def test_a_worker_killed_mid_task_is_retried_and_the_results_equal_the_local_run(local_run, ray_engine, isolated_cache,
                                                                                 tmp_path) -> None:
    cache = fresh_cache(isolated_cache, "study-fault")
    study = study_in(cache, tmp_path)
    killed: list[str] = []
    stop = threading.Event()

    def kill_one_running_task() -> None:
        """SIGKILL the first Ray worker seen running a GWOT chain (its process title names the task)."""
        while not stop.is_set() and not killed:
            for process in psutil.process_iter(["cmdline"]):
                title = " ".join(process.info["cmdline"] or [])
                if title.startswith("ray::run_chain"):
                    time.sleep(0.05)  # inside the task: a trial of 384 items takes longer
                    if " ".join(process.cmdline()).startswith("ray::run_chain"):  # still running it
                        process.kill()
                        killed.append(title)
                        return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_running_task)
    killer.start()
    try:
        statuses = run_study(study, cache, ray_engine)
    finally:
        stop.set()
        killer.join()
    assert killed, "no GWOT task was seen running, so nothing was killed"
    assert [status.state for status in statuses] == ["done"] * 3, [status.error for status in statuses]
    assert_same(local_run[1], stored_results(cache))
