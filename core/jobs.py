"""Background jobs (extraction, searches, training) that outlive UI reruns.

Work runs on a thread pool; worker code reports progress through a `core.progress.Report` and never
touches the UI. The UI keeps one registry per process (Streamlit: `st.cache_resource`)
and polls `status()`. A job is identified by a key: submitting a key that is queued or
running returns the existing job instead of starting it twice.

Estimates: a job submitted with a `rate_key` leaves its measured seconds per unit in a
`RateStore` when it ends, so the next run of the same kind can be estimated before it
starts (`describe_estimate`); while a job runs, `JobStatus.eta_s` extrapolates its own rate, that of its current
stage (`core.progress`) for work in stages, and `progress_line` is the one line a page shows per job.

Stopping: a job stops at its next progress report once cancelled, and every registry is stopped when the
interpreter exits (a server's SIGTERM or Ctrl-C): its jobs end at their next report, keeping what they wrote.
"""
from __future__ import annotations

import atexit
import json
import math
import os
import sys
import threading
import time
import traceback
import weakref
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from core.keys import digest
from core.paths import atomic_write
from core.progress import Progress, Report

ACTIVE = ("queued", "running")
RATES_FILE = "job_rates.json"  # under the cache dir: estimates survive restarts


MAX_JOBS_VARIABLE = "REPSCOPE_MAX_JOBS"
CPU_JOB_SLOTS = 2
SHUTDOWN_GRACE_S = 3.0  # at interpreter exit, how long running jobs get to reach their next report
SHUTDOWN = "server shutdown"  # `cancelled_by` of the jobs a shutdown stopped


def job_slots(gpus: int, environment: Mapping[str, str] | None = None) -> int:
    """How many background jobs may run at once on this server: `$REPSCOPE_MAX_JOBS`, else one per GPU, else 2."""
    text = (os.environ if environment is None else environment).get(MAX_JOBS_VARIABLE, "").strip()
    if text:
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"{MAX_JOBS_VARIABLE}={text!r}: give a whole number of jobs, at least 1.")
        return int(text)
    return gpus if gpus > 0 else CPU_JOB_SLOTS


def job_key(kind: str, *parts: object) -> str:
    """A job's key: `kind|<digest of the parts>`; the same inputs give the same key, so a rerun finds its job."""
    return f"{kind}|" + digest([str(part) for part in parts])


def eta_seconds(done: int, total: int, elapsed_s: float) -> float | None:
    """Seconds left at the rate so far: (total − done) × elapsed / done; None before the first unit."""
    if done <= 0 or total <= 0:
        return None
    return max(total - done, 0) * elapsed_s / done


def format_duration(seconds: float) -> str:
    """Human duration rounded to the second: "45 s", "1 min 20 s", "2 h 5 min"."""
    seconds = max(1, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def format_rate(seconds_per_unit: float, unit: str) -> str:
    """"12.3 images/s" at one unit a second or faster, else "8.2 s per fit" (`unit` is a plural noun)."""
    if seconds_per_unit <= 1.0:
        return f"{1.0 / seconds_per_unit:.3g} {unit}/s"
    return f"{seconds_per_unit:.3g} s per {unit[:-1] if unit.endswith('s') else unit}"


def describe_estimate(seconds_per_unit: float | None, units: int, unit: str) -> str:
    """"about 1 min 20 s (last measured 12.3 images/s)" for `units` at a measured rate; "" without one."""
    if seconds_per_unit is None or units <= 0:
        return ""
    return f"about {format_duration(units * seconds_per_unit)} (last measured {format_rate(seconds_per_unit, unit)})"


def progress_line(job: JobStatus, unit: str, slots: int) -> str:
    """The one line a page shows for an active job: "label — queued, 2 ahead (1 job(s) run at once on this server)"
    while it waits for one of `slots`; else "label — running: 3/253 folds · <its message> · 1 min 4 s · ETA ~2 min"
    (done/total in `unit`, a plural noun; the elapsed time; one ETA, the job's own, once its stage has a rate)."""
    if job.state == "queued":
        return f"{job.label} — queued, {job.ahead} ahead ({slots} job(s) run at once on this server)"
    message = f" · {job.message}" if job.message else ""
    eta = "" if job.eta_s is None else f" · ETA ~{format_duration(job.eta_s)}"
    return (f"{job.label} — running: {job.done}/{job.total or '?'} {unit}{message} · {format_duration(job.elapsed_s)}"
            f"{eta}" + (" · stopping…" if job.cancel_requested else ""))


class RateStore:
    """Last measured seconds per unit of finished jobs, by rate key, in one JSON file.

    Written atomically (temporary file + rename), so a reader never sees half a file; an
    unreadable or corrupt file counts as empty (estimates are a convenience, never an error)
    and the next record replaces it. Two processes recording at once may drop one record.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def seconds_per_unit(self, key: str) -> float | None:
        return self._read().get(key)

    def record(self, key: str, seconds_per_unit: float) -> None:
        if not (math.isfinite(seconds_per_unit) and seconds_per_unit > 0):
            return
        with self._lock:
            rates = {**self._read(), key: float(seconds_per_unit)}
            atomic_write(self.path, lambda temporary: temporary.write_text(json.dumps(rates, indent=1, sort_keys=True)))

    def _read(self) -> dict[str, float]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {key: float(value) for key, value in data.items()
                if type(value) in (int, float) and math.isfinite(value) and value > 0}


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
    skipped: int = 0  # of `done`, units that cost nothing (resumed rows, cached results): not in the rate
    ahead: int = 0  # while queued: jobs submitted earlier that are still waiting for a worker
    owners: frozenset[str] = frozenset()  # the sessions that asked for this job (they may cancel it)
    open_owners: frozenset[str] = frozenset()  # of `owners`, those whose sessions are still open
    origin: str = ""  # where it was asked for (a page title)
    cancelled_by: str = ""  # the owner that cancelled it, or SHUTDOWN
    cancel_requested: bool = False  # while still running: it stops at its next progress report
    stage: str = ""  # the stage of its last report (core.progress): its units and rate
    stage_started_at: float | None = None  # when that stage began (its first report; the start for the first stage)
    stage_base: int = 0  # units (done − skipped) counted when that stage began: not part of its rate

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    @property
    def elapsed_s(self) -> float:
        return (self.finished_at or time.time()) - self.started_at

    @property
    def eta_s(self) -> float | None:
        """Seconds left while running, at this job's own rate over the units its current stage computed (None
        before the stage's first unit)."""
        if self.state != "running" or self.done >= self.total:  # e.g. a last phase that reports no units
            return None
        since = self.started_at if self.stage_started_at is None else self.stage_started_at
        base = self.skipped + self.stage_base
        return eta_seconds(self.done - base, self.total - base, time.time() - since)


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
    rate_key: str | None = None
    rates: RateStore | None = None
    skipped: int = 0
    owners: set[str] = field(default_factory=set)
    order: int = 0  # submission order: queued jobs start first in, first out
    origin: str = ""
    cancelled_by: str = ""
    stage: str = ""
    stage_started_at: float | None = None
    stage_base: int = 0


class JobRegistry:
    """Job runner with per-job progress, results and cancellation.

    At most `max_workers` jobs run at once; later ones wait in a first-in-first-out queue. A job belongs to
    the sessions (`owner`) that submitted it: submitting an active key again joins it (one job, one result).
    Any of its owners may cancel it, and so may anyone once none of them is open (`session_open`, e.g. every
    tab that asked for it was closed): a job nobody can stop must not hold a slot.

    Jobs run on daemon threads: the interpreter never waits for one at exit beyond `stop_all`'s grace."""

    def __init__(self, max_workers: int = 1, session_open: Callable[[str], bool] | None = None):
        self.max_workers = max_workers
        self._session_open = session_open or (lambda owner: True)  # without a way to tell, every owner is open
        self._jobs: dict[str, _Job] = {}
        self._queue: deque[tuple[_Job, Callable[[Report], Any]]] = deque()
        self._workers = 0  # threads working through the queue, at most max_workers
        self._stopping = False
        self._lock = threading.Lock()
        self._submitted = 0
        _REGISTRIES.add(self)

    def submit(self, key: str, label: str, work: Callable[[Report], Any], *,
               rate_key: str | None = None, rates: RateStore | None = None, owner: str = "",
               origin: str = "") -> JobStatus:
        """Run `work(report)` in the background; `report(Progress(...))` updates the job's progress (its `skipped`
        units cost nothing, e.g. resumed rows, and are left out of the rate and ETA). `origin` says where it was
        asked for (a page title).

        With `rate_key` and `rates`, the job's seconds per unit (elapsed / done) is recorded there
        when it ends done or cancelled after at least one unit (for work in stages: its whole time per unit of its
        last stage, what an estimate in those units before the next run needs). Once the registry is stopping, a new job
        is cancelled at once.
        """
        with self._lock:
            existing = self._jobs.get(key)
            if existing is not None and existing.state in ACTIVE and not existing.cancel_requested:
                existing.owners.add(owner)
                return self._snapshot(existing)
            # A job being cancelled stops at its next report (its files are written atomically): a new one starts.
            self._submitted += 1
            job = self._jobs[key] = _Job(key, label, rate_key=rate_key, rates=rates, owners={owner},
                                         order=self._submitted, origin=origin)
            if self._stopping:
                job.state, job.cancel_requested, job.cancelled_by = "cancelled", True, SHUTDOWN
                job.finished_at = time.time()
                return self._snapshot(job)
            self._queue.append((job, work))
            if self._workers < self.max_workers:
                self._workers += 1
                threading.Thread(target=self._work_through_queue, name="repscope-job", daemon=True).start()
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

    def cancel(self, key: str, owner: str = "") -> bool:
        """Stop the job for every session that shares it: a queued one at once, a running one at its next progress
        report. Allowed for its owners, and for anyone once none of its owners is open; False otherwise."""
        with self._lock:
            job = self._jobs.get(key)
            if job is None or job.state not in ACTIVE:
                return False
            if owner not in job.owners and any(map(self._session_open, job.owners)):
                return False
            if not job.cancel_requested:
                job.cancel_requested, job.cancelled_by = True, owner
                if job.state == "queued":
                    job.state, job.finished_at = "cancelled", time.time()
            return True

    def stop_all(self, grace_s: float = SHUTDOWN_GRACE_S) -> list[JobStatus]:
        """Stop every job and refuse new ones (a server shutting down): queued jobs at once, running ones at their
        next progress report, so what they finished stays written. Waits up to `grace_s` for the running ones and
        returns those still running then."""
        with self._lock:
            self._stopping = True
            for job in self._jobs.values():
                if job.state in ACTIVE and not job.cancel_requested:
                    job.cancel_requested, job.cancelled_by = True, SHUTDOWN
                    if job.state == "queued":
                        job.state, job.finished_at = "cancelled", time.time()
        deadline = time.time() + grace_s
        while time.time() < deadline and self._workers:  # a worker ends once its job has and the queue is empty
            time.sleep(0.02)
        with self._lock:
            return [self._snapshot(job) for job in self._jobs.values() if job.state == "running"]

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

    def _work_through_queue(self) -> None:
        """A worker thread: run queued jobs first in, first out, and end when none is left."""
        while True:
            with self._lock:
                if not self._queue:
                    self._workers -= 1
                    return
                job, work = self._queue.popleft()
            self._run(job, work)

    def _run(self, job: _Job, work: Callable[[Report], Any]) -> None:
        def report(progress: Progress) -> None:
            with self._lock:
                job.done, job.total, job.message, job.skipped = (progress.done, progress.total, progress.message,
                                                                 progress.skipped)
                if progress.stage != job.stage:  # a new count and a new rate from here
                    job.stage, job.stage_started_at = progress.stage, time.time()
                    job.stage_base = progress.done - progress.skipped
                if job.cancel_requested:
                    raise JobCancelled(job.key)

        with self._lock:
            if job.cancel_requested:  # cancelled while queued: never starts
                return
            job.state, job.started_at = "running", time.time()
            job.stage_started_at = job.started_at
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
        finished_at = time.time()
        with self._lock:
            done, elapsed_s = job.done - job.skipped, finished_at - job.started_at
        # Recorded before the state is published, so whoever sees the job end also finds its rate. A cancelled
        # job stops right after a unit (at a report), so its rate is as good as a finished one's. Skipped units
        # (resumed rows, cached results) cost nothing and are not counted.
        if job.rates is not None and job.rate_key and state in ("done", "cancelled") and done > 0:
            try:
                job.rates.record(job.rate_key, elapsed_s / done)
            except OSError:  # a read-only cache loses the estimate, never the job
                pass
        with self._lock:
            job.state, job.error, job.result, job.finished_at = state, error, result, finished_at

    def _snapshot(self, job: _Job) -> JobStatus:
        """A frozen copy (call under the lock)."""
        ahead = sum(other.state == "queued" and other.order < job.order for other in self._jobs.values()) \
            if job.state == "queued" else 0
        return JobStatus(job.key, job.label, job.state, job.done, job.total, job.message, job.error,
                         job.started_at, job.finished_at, job.skipped, ahead, frozenset(job.owners),
                         frozenset(filter(self._session_open, job.owners)), job.origin, job.cancelled_by,
                         job.cancel_requested, job.stage, job.stage_started_at, job.stage_base)


_REGISTRIES: weakref.WeakSet[JobRegistry] = weakref.WeakSet()


@atexit.register
def _stop_every_registry() -> None:
    """At interpreter exit (after a server's SIGTERM or Ctrl-C): stop every job, wait up to SHUTDOWN_GRACE_S in
    all for them to reach their next report, then let the process end. A job still inside one long unit then is
    abandoned with its daemon thread; every file is written atomically, so it leaves no half-written file."""
    registries = list(_REGISTRIES)
    for registry in registries:
        registry.stop_all(grace_s=0)
    deadline = time.time() + SHUTDOWN_GRACE_S
    for registry in registries:
        for job in registry.stop_all(grace_s=max(0.0, deadline - time.time())):
            print(f"RepScope: {job.label} did not stop within {SHUTDOWN_GRACE_S:g} s of shutdown; abandoned "
                  f"(what it finished is kept).", file=sys.stderr)
