"""Background jobs (extraction, searches, training) that outlive UI reruns.

Work runs on a thread pool; worker code reports progress through a callback and never
touches the UI. The UI keeps one registry per process (Streamlit: `st.cache_resource`)
and polls `status()`. A job is identified by a key: submitting a key that is queued or
running returns the existing job instead of starting it twice.
"""
from __future__ import annotations

import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

ACTIVE = ("queued", "running")


class JobCancelled(Exception):
    """Raised inside a worker by its progress callback once cancellation was requested."""


@dataclass(frozen=True)
class JobStatus:
    key: str
    label: str
    state: str  # queued | running | done | failed | cancelled
    done: int
    total: int
    message: str
    error: str
    started_at: float
    finished_at: float | None

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    @property
    def elapsed_s(self) -> float:
        return (self.finished_at or time.time()) - self.started_at


@dataclass
class _Job:
    key: str
    label: str
    state: str = "queued"
    done: int = 0
    total: int = 0
    message: str = ""
    error: str = ""
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    result: Any = None
    cancel_requested: bool = False


class JobRegistry:
    """Thread-pool job runner with per-job progress, results and cancellation."""

    def __init__(self, max_workers: int = 1):
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="repscope-job")
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()

    def submit(self, key: str, label: str, work: Callable[[Callable[[int, int, str], None]], Any]) -> JobStatus:
        """Run `work(report)` in the background; `report(done, total, message)` updates progress."""
        with self._lock:
            existing = self._jobs.get(key)
            if existing is not None and existing.state in ACTIVE:
                return self._snapshot(existing)
            job = self._jobs[key] = _Job(key, label)
        self._pool.submit(self._run, job, work)
        return self._snapshot(job)

    def status(self, key: str) -> JobStatus | None:
        with self._lock:
            job = self._jobs.get(key)
            return None if job is None else self._snapshot(job)

    def statuses(self) -> list[JobStatus]:
        with self._lock:
            return [self._snapshot(job) for job in self._jobs.values()]

    def result(self, key: str) -> Any:
        with self._lock:
            job = self._jobs.get(key)
            return None if job is None else job.result

    def cancel(self, key: str) -> None:
        with self._lock:
            if key in self._jobs:
                self._jobs[key].cancel_requested = True

    def forget(self, key: str) -> None:
        """Drop a finished job's record (active jobs are kept)."""
        with self._lock:
            if key in self._jobs and self._jobs[key].state not in ACTIVE:
                del self._jobs[key]

    def wait(self, key: str, timeout_s: float = 60.0) -> JobStatus | None:
        """Block until the job leaves the active states (for tests and the CLI)."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            status = self.status(key)
            if status is None or status.state not in ACTIVE:
                return status
            time.sleep(0.02)
        return self.status(key)

    def _run(self, job: _Job, work: Callable) -> None:
        def report(done: int, total: int, message: str = "") -> None:
            with self._lock:
                job.done, job.total, job.message = done, total, message
                if job.cancel_requested:
                    raise JobCancelled(job.key)

        with self._lock:
            job.state, job.started_at = "running", time.time()
        try:
            result = work(report)
        except JobCancelled:
            state, error, result = "cancelled", "", None
        except Exception as exception:  # a worker must never take the registry down
            state, result = "failed", None
            error = f"{type(exception).__name__}: {exception}"
            job.message = traceback.format_exc(limit=3)
        else:
            state, error = "done", ""
        with self._lock:
            job.state, job.error, job.result, job.finished_at = state, error, result, time.time()

    @staticmethod
    def _snapshot(job: _Job) -> JobStatus:
        return JobStatus(job.key, job.label, job.state, job.done, job.total, job.message, job.error,
                         job.started_at, job.finished_at)
