"""Where a study's tasks run: in this process (`LocalEngine`) or on a Ray cluster (`RayEngine`).

Both offer one call, `map(function, calls, shared=..., gpus=..., progress=...)`: `function(**call, **shared)`
for every call, results in the calls' order. The local engine runs them one after another and never imports
Ray; the Ray engine sends each call as a Ray task, puts `shared` arrays into the object store once for all
tasks, retries a task whose worker died (`max_retries`), and reports progress as tasks finish. Ray schedules;
nothing here queues or retries by itself.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

Progress = Callable[[int, int], None]
MAX_RETRIES = 3  # a task whose worker process died is run again this many times


class LocalEngine:
    """Every task in this process, in order."""

    name = "local"
    parallelism = 1

    def map(self, function: Callable, calls: Sequence[Mapping[str, Any]], *, shared: Mapping[str, Any] | None = None,
            gpus: float = 0, progress: Progress | None = None) -> list:
        results = []
        for call in calls:
            results.append(function(**call, **(shared or {})))
            if progress is not None:
                progress(len(results), len(calls))
        return results

    def close(self) -> None:
        pass


class RayEngine:
    """Tasks on a Ray cluster: a local one sized to this machine, or the one at `address` (`ray start --head`)."""

    name = "ray"

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None, max_retries: int = MAX_RETRIES):
        import ray

        self._ray, self.max_retries, self._remotes = ray, max_retries, {}
        self._started = not ray.is_initialized()
        if self._started:
            package = str(Path(__file__).resolve().parents[1])
            if address is None:
                # Workers of a local cluster inherit this environment: they import `core` from this checkout.
                root = str(Path(package).parent)
                os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                         logging_level="ERROR", configure_logging=False)
            else:
                # Other machines get this checkout's `core` package through Ray (no shared filesystem needed);
                # their Python environment must have requirements.txt installed.
                ray.init(address=address, runtime_env={"py_modules": [package]}, log_to_driver=False,
                         logging_level="ERROR", configure_logging=False)
        self.parallelism = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def map(self, function: Callable, calls: Sequence[Mapping[str, Any]], *, shared: Mapping[str, Any] | None = None,
            gpus: float = 0, progress: Progress | None = None) -> list:
        ray = self._ray
        remote = self._remote(function).options(num_gpus=gpus, max_retries=self.max_retries)
        shared_refs = {name: ray.put(value) for name, value in (shared or {}).items()}
        futures = [remote.remote(**call, **shared_refs) for call in calls]
        pending, done = list(futures), 0
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            done += len(ready)
            ray.get(ready)  # a task that failed for good raises here, with its own error
            if progress is not None:
                progress(done, len(calls))
        return ray.get(futures)

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()

    def _remote(self, function: Callable):
        if function not in self._remotes:
            self._remotes[function] = self._ray.remote(function)
        return self._remotes[function]


def make_engine(engine: str, *, address: str | None = None, num_cpus: int | None = None) -> LocalEngine | RayEngine:
    """"local" (in-process) or "ray" (a local cluster, or the one at `address`)."""
    if engine == "local":
        if address:
            raise ValueError("--ray-address needs --engine ray.")
        return LocalEngine()
    if engine == "ray":
        return RayEngine(address, num_cpus=num_cpus)
    raise ValueError(f"Unknown engine {engine!r}; choose local or ray.")
