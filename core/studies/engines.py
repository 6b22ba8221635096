"""Where a study's tasks run: in this process (`LocalEngine`) or on a Ray cluster (`RayEngine`).

Both offer one call, `map(function, calls, shared=..., gpus=..., progress=..., on_result=...)`:
`function(**call, **shared)` for every call, results in the calls' order; `on_result(index, result)` and
`progress(Progress(finished, len(calls)))` as each finishes, so a driver stores every result at once and a stopped
run loses only the tasks still running. The local engine runs them one after another and never imports
Ray; the Ray engine sends each call as a Ray task, puts `shared` arrays into the object store once for all
tasks, retries a task whose worker died (`max_retries`), and reports progress as tasks finish. Ray schedules;
nothing here queues or retries by itself.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from core.progress import Progress, Report

OnResult = Callable[[int, Any], None]
MAX_RETRIES = 3  # a task whose worker process died is run again this many times


class LocalEngine:
    """Every task in this process, in order."""

    name = "local"
    parallelism = 1
    remote = False  # tasks run here: extraction can use the in-process extractor (DataLoader workers, image check)
    address = None  # no other machine

    def map(self, function: Callable, calls: Sequence[Mapping[str, Any]], *, shared: Mapping[str, Any] | None = None,
            gpus: float = 0, progress: Report | None = None, on_result: OnResult | None = None) -> list:
        results = []
        for index, call in enumerate(calls):
            results.append(function(**call, **(shared or {})))
            if on_result is not None:
                on_result(index, results[-1])
            if progress is not None:
                progress(Progress(len(results), len(calls)))
        return results

    def put(self, value: Any) -> Any:
        """A handle to pass the same large array to many calls (here: the array itself)."""
        return value

    def close(self) -> None:
        pass


class RayEngine:
    """Tasks on a Ray cluster: a local one sized to this machine, or the one at `address` (`ray start --head`)."""

    name = "ray"
    remote = True  # tasks may run on other machines: they get bytes and arrays, never a cache path

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None, max_retries: int = MAX_RETRIES):
        import ray

        self._ray, self.max_retries, self._remotes, self.address = ray, max_retries, {}, address
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
                _check_reachable(address)
                # Other machines get this checkout's `core` package through Ray (no shared filesystem needed);
                # their Python environment must have requirements.txt installed.
                ray.init(address=address, runtime_env={"py_modules": [package]}, log_to_driver=False,
                         logging_level="ERROR", configure_logging=False)
        self.parallelism = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def map(self, function: Callable, calls: Sequence[Mapping[str, Any]], *, shared: Mapping[str, Any] | None = None,
            gpus: float = 0, progress: Report | None = None, on_result: OnResult | None = None) -> list:
        ray = self._ray
        remote = self._remote(function).options(num_gpus=gpus, max_retries=self.max_retries)
        shared_refs = {name: ray.put(value) for name, value in (shared or {}).items()}
        futures = [remote.remote(**call, **shared_refs) for call in calls]
        index_of = {future: index for index, future in enumerate(futures)}
        results: list = [None] * len(futures)
        pending = list(futures)
        try:
            while pending:
                [ready], pending = ray.wait(pending, num_returns=1)
                index = index_of[ready]
                results[index] = ray.get(ready)  # a task that failed for good raises here, with its own error
                if on_result is not None:
                    on_result(index, results[index])
                if progress is not None:
                    progress(Progress(len(futures) - len(pending), len(futures)))
        except BaseException:  # a failure or Ctrl-C: the other tasks would only keep the cluster busy
            for future in pending:
                ray.cancel(future)
            raise
        return results

    def put(self, value: Any):
        """The value in Ray's object store, once: calls that name the handle share it (Ray resolves it per task)."""
        return self._ray.put(value)

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()

    def _remote(self, function: Callable):
        if function not in self._remotes:
            self._remotes[function] = self._ray.remote(function)
        return self._remotes[function]


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail within seconds when nothing listens at HOST:PORT (ray.init would keep retrying for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms: Ray resolves them itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise ConnectionError(f"no Ray cluster answers at {address} ({error}); start one there with "
                              "`ray start --head --port=PORT`, or leave out --ray-address for a local one.") from None


def make_engine(engine: str, *, address: str | None = None, num_cpus: int | None = None) -> LocalEngine | RayEngine:
    """"local" (in-process) or "ray" (a local cluster, or the one at `address`)."""
    if engine == "local":
        if address:
            raise ValueError("--ray-address needs --engine ray.")
        return LocalEngine()
    if engine == "ray":
        return RayEngine(address, num_cpus=num_cpus)
    raise ValueError(f"Unknown engine {engine!r}; choose local or ray.")
