"""Job registry: progress, results, failures, cancellation, de-duplication."""
from __future__ import annotations

import threading

from core.jobs import JobRegistry


def test_job_reports_progress_and_result() -> None:
    registry = JobRegistry()

    def work(report):
        for done in range(1, 4):
            report(done, 3, f"step {done}")
        return "finished"

    registry.submit("a", "counting", work)
    status = registry.wait("a", 5)
    assert status.state == "done" and (status.done, status.total, status.fraction) == (3, 3, 1.0)
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
        report(1, 2)
        report(2, 2)
        return "not reached"

    registry.submit("c", "slow", work)
    registry.submit("c", "slow again", work)  # same key while active: no second run
    registry.cancel("c")
    release.set()
    assert registry.wait("c", 5).state == "cancelled"
    assert len(calls) == 1 and registry.result("c") is None
