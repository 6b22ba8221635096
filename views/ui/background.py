"""Background jobs of a page: submit from a button callback, show live progress, rerun when they end.

A page lists its jobs under one session-state key; `job_progress(session_key, unit)` draws a
progress bar and a Cancel button per running job every second and reruns the whole page once
all of them have ended, so the page then finds their results (registry or disk cache).
"""
from __future__ import annotations

from typing import Any, Callable

import streamlit as st

from views.ui import resources


def submit_job(session_key: str, key: str, label: str, work: Callable[[Callable[[int, int, str], None]], Any]) -> None:
    """Start `work(report)` in the job registry (a failed or cancelled earlier run of `key` is retried)."""
    registry = resources.job_registry()
    registry.forget(key)
    registry.submit(key, label, work)
    st.session_state.setdefault(session_key, []).append(key)


def job_outcomes(keys, cancelled: str) -> None:
    """An error per failed job (its message without the exception type) and per cancelled one (`cancelled`)."""
    registry = resources.job_registry()
    for status in filter(None, map(registry.status, keys)):
        if status.state == "failed":
            st.error(f"{status.label}: {status.error.split(': ', 1)[-1]}")
        elif status.state == "cancelled":
            st.error(f"{status.label}: {cancelled}")


def has_jobs(session_key: str) -> bool:
    return bool(st.session_state.get(session_key))


@st.fragment(run_every=1.0)
def job_progress(session_key: str, unit: str, cancel_help: str) -> None:
    """A progress bar (done/total `unit`, the job's message, seconds) and Cancel button per running job."""
    registry = resources.job_registry()
    jobs = [job for job in map(registry.status, st.session_state.get(session_key, [])) if job is not None]
    for job in jobs:
        if job.state in ("queued", "running"):
            row = st.columns([5, 1])
            row[0].progress(job.fraction, text=f"{job.label} — {job.state}: {job.done}/{job.total or '?'} {unit} · "
                                               f"{job.message} · {job.elapsed_s:.0f} s")
            row[1].button("Cancel", key=f"cancel_{job.key}", on_click=registry.cancel, args=(job.key,),
                          help=cancel_help)
    if jobs and all(job.state not in ("queued", "running") for job in jobs):
        st.session_state[session_key] = []
        st.rerun(scope="app")
