"""Job registry: progress, results, failures, cancellation, de-duplication; ETA and the rate memory."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.jobs import (RATES_FILE, SHUTDOWN, JobRegistry, JobStatus, RateStore, describe_estimate, eta_seconds,
                       format_duration, progress_line)
from core.progress import Progress
from tests.paths import REPO_ROOT


def wait_until_running(registry: JobRegistry, key: str) -> None:
    """A job starts on its worker thread a moment after `submit` returns."""
    deadline = time.time() + 5
    while registry.status(key).state != "running" and time.time() < deadline:
        time.sleep(0.005)


def test_job_reports_progress_and_result() -> None:
    registry = JobRegistry()

    def work(report):
        for done in range(1, 4):
            report(Progress(done, 3, f"step {done}"))
        return "finished"

    registry.submit("a", "counting", work)
    status = registry.wait("a", 5)
    assert status.state == "done" and (status.done, status.total, status.fraction) == (3, 3, 1.0)
    assert (status.message, status.skipped) == ("step 3", 0)
    assert registry.result("a") == "finished"


def test_failure_is_captured_not_raised() -> None:
    registry = JobRegistry()
    registry.submit("b", "broken", lambda report: 1 / 0)
    status = registry.wait("b", 5)
    assert status.state == "failed" and "ZeroDivisionError" in status.error


def test_cancel_stops_at_the_next_report_and_duplicates_are_not_started() -> None:
    registry = JobRegistry()
    release = threading.Event()
    calls = []

    def work(report):
        calls.append(1)
        release.wait(5)
        report(Progress(1, 2))
        report(Progress(2, 2))
        return "not reached"

    registry.submit("c", "slow", work)
    registry.submit("c", "slow again", work)  # same key while active: no second run
    wait_until_running(registry, "c")
    registry.cancel("c")
    release.set()
    assert registry.wait("c", 5).state == "cancelled"
    assert len(calls) == 1 and registry.result("c") is None


def test_eta_is_the_remaining_units_at_the_rate_so_far() -> None:
    assert eta_seconds(10, 40, 5.0) == 15.0  # 0.5 s per unit, 30 units left
    assert eta_seconds(0, 40, 5.0) is None and eta_seconds(3, 0, 5.0) is None  # no rate yet / no total
    assert eta_seconds(40, 40, 5.0) == 0.0


def test_durations_and_estimates_read_like_a_person_would_say_them() -> None:
    assert [format_duration(s) for s in (0.2, 15, 59.6, 80, 120, 3725, 7200)] == [
        "1 s", "15 s", "1 min", "1 min 20 s", "2 min", "1 h 2 min", "2 h"]
    assert describe_estimate(0.08, 1000, "images") == "about 1 min 20 s (last measured 12.5 images/s)"
    assert describe_estimate(8.2, 10, "fits") == "about 1 min 22 s (last measured 8.2 s per fit)"
    assert describe_estimate(None, 10, "fits") == "" and describe_estimate(1.0, 0, "fits") == ""


def test_a_finished_job_leaves_its_rate_for_a_new_store_and_a_failed_one_does_not(tmp_path: Path) -> None:
    path = tmp_path / "cache" / RATES_FILE
    registry = JobRegistry()

    def work(report):
        for done in range(1, 5):
            time.sleep(0.01)
            report(Progress(done, 4))

    registry.submit("a", "four units", work, rate_key="kind-a", rates=RateStore(path))
    status = registry.wait("a", 5)
    registry.submit("b", "broken", lambda report: report(Progress(1, 2)) or 1 / 0, rate_key="kind-b",
                    rates=RateStore(path))
    registry.wait("b", 5)
    reopened = RateStore(path)  # as after a restart: a new registry and store read the file
    assert reopened.seconds_per_unit("kind-a") == pytest.approx(status.elapsed_s / 4)
    assert reopened.seconds_per_unit("kind-a") >= 0.01
    assert reopened.seconds_per_unit("kind-b") is None
    assert json.loads(path.read_text()) == {"kind-a": reopened.seconds_per_unit("kind-a")}


def test_a_cancelled_job_leaves_the_rate_of_the_units_it_finished(tmp_path: Path) -> None:
    rates, release = RateStore(tmp_path / RATES_FILE), threading.Event()
    registry = JobRegistry()

    def work(report):
        report(Progress(1, 10))
        release.wait(5)
        report(Progress(2, 10))  # cancellation is noticed here, right after the second unit

    registry.submit("c", "slow", work, rate_key="kind-c", rates=rates)
    wait_until_running(registry, "c")
    registry.cancel("c")
    release.set()
    status = registry.wait("c", 5)
    assert status.state == "cancelled" and rates.seconds_per_unit("kind-c") == pytest.approx(status.elapsed_s / 2)


def test_a_corrupt_rate_file_is_ignored_then_replaced(tmp_path: Path) -> None:
    path = tmp_path / RATES_FILE
    for garbage in ("{not json", "[1, 2]", '{"a": "fast", "b": -1, "c": NaN, "d": true}'):
        path.write_text(garbage)
        assert RateStore(path).seconds_per_unit("a") is None
    RateStore(path).record("a", 2.5)
    assert RateStore(path).seconds_per_unit("a") == 2.5
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write leaves no temporary file behind


def test_running_status_has_an_eta_and_a_finished_one_none() -> None:
    registry, release = JobRegistry(), threading.Event()

    def work(report):
        time.sleep(0.05)
        report(Progress(1, 4))
        release.wait(5)

    registry.submit("d", "eta", work)
    deadline = time.time() + 5
    while registry.status("d").done == 0 and time.time() < deadline:
        time.sleep(0.01)
    running = registry.status("d")
    assert running.eta_s == pytest.approx(3 * running.elapsed_s, rel=0.2)  # 3 units left at the first one's pace
    release.set()
    assert registry.wait("d", 5).eta_s is None


def test_a_new_stage_counts_its_own_units_and_its_eta_its_own_rate() -> None:
    """900 images extracted in 4 s, then folds at 2 s each: the folds' ETA must come from the folds alone (the mixed
    count gave '~17 s' for minutes of fitting)."""
    registry, release = JobRegistry(), threading.Event()

    def work(report):
        report(Progress(0, 900, "extracting", stage="extracting"))
        report(Progress(900, 900, "extracting", stage="extracting"))
        report(Progress(0, 10, "fitting", stage="fitting"))
        time.sleep(0.1)
        report(Progress(1, 10, "fold 1/10", stage="fitting"))
        release.wait(5)

    registry.submit("s", "staged", work)
    deadline = time.time() + 5
    while registry.status("s").message != "fold 1/10" and time.time() < deadline:
        time.sleep(0.01)
    status = registry.status("s")
    release.set()
    assert (status.stage, status.stage_base, status.done, status.total) == ("fitting", 0, 1, 10)
    assert status.stage_started_at >= status.started_at
    assert status.eta_s == pytest.approx(9 * (time.time() - status.stage_started_at), rel=0.3)  # 9 folds left
    # the same numbers by hand: 4 s of images before the stage began are not part of the folds' rate
    now = time.time()
    staged = JobStatus("k", "k", "running", 3, 10, "", "", now - 10, None, stage="fitting", stage_started_at=now - 6)
    assert staged.eta_s == pytest.approx(7 * 2.0, rel=0.01)
    assert JobStatus("k", "k", "running", 0, 10, "", "", now - 10, None, stage="fitting",
                     stage_started_at=now - 1).eta_s is None  # no fold done yet in this stage: no rate, no ETA
    assert registry.wait("s", 5).state == "done"


def test_a_job_line_is_one_line_with_one_eta_at_most_and_the_queue_while_queued() -> None:
    now = time.time()
    running = JobStatus("p", "pixels:32", "running", 63, 253, "fit 1/2: final · affect · fold 63/248", "", now - 30,
                        None)
    line = progress_line(running, "folds", 2)
    assert line == "pixels:32 — running: 63/253 folds · fit 1/2: final · affect · fold 63/248 · 30 s · ETA ~1 min 30 s"
    assert line.count("ETA") == 1 and "\n" not in line
    queued = JobStatus("q", "pixels:32", "queued", 0, 0, "", "", now, None, ahead=2)
    assert progress_line(queued, "folds", 1) == "pixels:32 — queued, 2 ahead (1 job(s) run at once on this server)"
    starting = JobStatus("s", "e", "running", 0, 253, "fitting", "", now - 3, None)
    assert "ETA" not in progress_line(starting, "folds", 1)  # no unit done: no rate to extrapolate, so no ETA
    finishing = JobStatus("f", "e", "running", 253, 253, "bootstrap", "", now - 3, None, cancel_requested=True)
    assert progress_line(finishing, "folds", 1) == "e — running: 253/253 folds · bootstrap · 3 s · stopping…"


def test_skipped_units_are_left_out_of_the_rate_and_the_eta(tmp_path: Path) -> None:
    """A resumed extraction reports its cached rows as skipped: they cost nothing, so they must not dilute the rate."""
    from core.jobs import JobStatus

    status = JobStatus("k", "k", "running", done=60, total=100, message="", error="", started_at=time.time() - 10,
                       finished_at=None, skipped=50)
    assert status.eta_s == pytest.approx(40.0, rel=0.05)  # 10 new units in 10 s, 40 left (not 10 s)
    assert JobStatus("k", "k", "running", 100, 100, "", "", time.time() - 5, None).eta_s is None  # a last phase
    rates, registry = RateStore(tmp_path / RATES_FILE), JobRegistry()

    def resumed(report):
        report(Progress(50, 100, "resumed", skipped=50))
        for done in range(51, 101):
            time.sleep(0.002)
            report(Progress(done, 100, skipped=50))

    registry.submit("r", "resumed", resumed, rate_key="work", rates=rates)
    elapsed = registry.wait("r", 30).elapsed_s
    assert rates.seconds_per_unit("work") == pytest.approx(elapsed / 50)  # 50 units computed, not 100


def test_the_job_cap_queues_the_third_job_first_in_first_out() -> None:
    registry = JobRegistry(max_workers=2)
    release = threading.Event()
    started = []

    def work(name):
        def run(report):
            started.append(name)
            release.wait(5)
            report(Progress(1, 1))
            return name
        return run

    for name in ("first", "second", "third", "fourth"):
        registry.submit(name, name, work(name), owner="alice")
    deadline = time.time() + 5
    while len(started) < 2 and time.time() < deadline:
        time.sleep(0.01)
    states = {name: registry.status(name) for name in ("first", "second", "third", "fourth")}
    assert [states[name].state for name in states] == ["running", "running", "queued", "queued"]
    assert (states["third"].ahead, states["fourth"].ahead) == (0, 1)
    assert registry.cancel("fourth", owner="alice")  # cancelled while queued: at once, and never starts
    assert registry.status("fourth").state == "cancelled"
    registry.submit("fourth", "fourth again", work("fourth again"), owner="bob")  # asked again: a new job
    release.set()
    assert [registry.wait(name, 5).state for name in states] == ["done", "done", "done", "done"]
    assert started[2:] == ["third", "fourth again"] and set(started[:2]) == {"first", "second"}


def test_a_joined_job_runs_once_and_any_session_that_shares_it_can_cancel_it() -> None:
    """Issue 30: a second session that joined a job withdrew on Cancel while a closed tab still owned it, so the
    job ran on holding a slot. Now any owner stops it for all, and nobody else can."""
    registry = JobRegistry()
    release = threading.Event()
    runs = []

    def work(report):
        runs.append(1)
        report(Progress(0, 2))
        release.wait(5)
        report(Progress(1, 2))
        report(Progress(2, 2))
        return "features"

    registry.submit("extract", "extract", work, owner="alice")
    joined = registry.submit("extract", "extract", work, owner="bob")
    assert joined.owners == {"alice", "bob"}
    wait_until_running(registry, "extract")
    assert not registry.cancel("extract", owner="mallory")
    assert registry.status("extract").state == "running" and not registry.status("extract").cancel_requested
    assert registry.cancel("extract", owner="bob")  # the one who joined, not the one who started it
    assert registry.status("extract").cancel_requested
    release.set()
    status = registry.wait("extract", 5)
    assert (status.state, status.done, status.cancelled_by) == ("cancelled", 1, "bob")  # stopped at its next report
    assert registry.result("extract") is None and len(runs) == 1


def test_anyone_may_cancel_a_job_once_every_session_that_asked_for_it_is_closed() -> None:
    open_sessions = {"alice", "bob"}
    registry = JobRegistry(session_open=open_sessions.__contains__)
    release = threading.Event()
    registry.submit("train", "train", lambda report: (release.wait(5), report(Progress(1, 1))), owner="alice")
    assert registry.status("train").open_owners == {"alice"}
    assert not registry.cancel("train", owner="bob")  # alice's tab is open: only she may
    open_sessions.discard("alice")  # she closed it
    assert registry.status("train").open_owners == frozenset()
    assert registry.cancel("train", owner="bob")
    release.set()
    assert registry.wait("train", 5).state == "cancelled"


def test_stop_all_stops_running_and_queued_jobs_at_their_next_report_and_refuses_new_ones() -> None:
    registry = JobRegistry(max_workers=1)
    written = []

    def steps(report):
        for step in range(1, 10_000):
            time.sleep(0.01)
            written.append(step)  # what a step finished (a chunk, an epoch) stays
            report(Progress(step, 10_000))

    registry.submit("long", "long", steps, owner="alice")
    registry.submit("queued", "queued", steps, owner="bob")
    while not written:
        time.sleep(0.01)
    started = time.perf_counter()
    assert registry.stop_all(grace_s=5) == []  # none still running after the grace
    assert time.perf_counter() - started < 1.0  # one 10 ms step, not the remaining 100 s
    long, queued = registry.status("long"), registry.status("queued")
    assert (long.state, long.cancelled_by, long.done) == ("cancelled", SHUTDOWN, written[-1])
    assert (queued.state, queued.done) == ("cancelled", 0)
    assert registry.submit("late", "late", steps).state == "cancelled"


def test_stop_all_returns_the_jobs_still_inside_a_unit_after_the_grace() -> None:
    registry, release = JobRegistry(), threading.Event()
    registry.submit("stuck", "stuck", lambda report: (release.wait(5), report(Progress(1, 1))))
    wait_until_running(registry, "stuck")
    assert [job.key for job in registry.stop_all(grace_s=0.1)] == ["stuck"]
    release.set()
    assert registry.wait("stuck", 5).state == "cancelled"


@pytest.mark.parametrize("step_s, abandoned", [(0.05, False), (600, True)])
def test_a_process_with_a_running_job_exits_within_seconds(tmp_path: Path, step_s: float, abandoned: bool) -> None:
    """Issue 30: jobs ran on pool threads the interpreter waits for at exit (a server stayed 75 s after SIGTERM).
    Now the exit stops them at their next report, or abandons one still inside a unit after the grace."""
    script = tmp_path / "server.py"
    marker = tmp_path / "steps"
    script.write_text(f"""
import time
from core.jobs import JobRegistry
from core.progress import Progress

def steps(report):
    for step in range(1, 100_000):
        time.sleep({step_s})
        open({str(marker)!r}, "a").write("x")
        report(Progress(step, 100_000))

JobRegistry(max_workers=2).submit("long", "a long job", steps)
time.sleep(0.5)
""")
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, str(script)], env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                               capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - started
    assert completed.returncode == 0, completed.stderr
    assert seconds < 10, seconds  # the main thread ends after 0.5 s; the job alone would run for hours
    assert ("a long job did not stop within 3 s" in completed.stderr) == abandoned, completed.stderr
    if not abandoned:
        assert 1 <= len(marker.read_text()) < 60  # it stopped at its next report
