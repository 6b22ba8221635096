"""Background jobs of a page: submit from a button callback, show live progress, rerun when they end.

A page lists its jobs under one session-state key; `job_progress(session_key, unit)` draws a
progress bar and a Cancel button per running job every second and reruns the whole page once
all of them have ended, so the page then finds their results (registry or disk cache).

Estimates: a job submitted with `rate_key` stores its seconds per unit when it ends (a JSON
file in the cache dir, so it survives restarts); `estimate_text(rate_key, units, unit)` turns
the last measured rate into "about 1 min 20 s (last measured 12.3 images/s)" before the next
run, and each progress bar shows one line per job (`core.jobs.progress_line`): queued with the jobs ahead of it, or
done/total, its message, the elapsed time and its own ETA (of its current stage's rate).

Every page's sidebar lists the jobs that hold or wait for the server's job slots (`jobs_panel`): what, from which
page, since when, who shares them, with Cancel where this session may (it shares the job, or nobody open does).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from core.jobs import (ACTIVE, RATES_FILE, JobRegistry, JobStatus, RateStore, describe_estimate, format_duration,
                       progress_line)
from core.paths import cache_root
from core.progress import Report
from views.ui import resources

NO_ESTIMATE = "No estimate yet: the first run of these settings measures the rate for the next ones."
PAGE_KEY = "page_title"  # the sidebar writes the page being drawn: a job remembers where it was asked for
SHARED_CANCEL_HELP = ("Stops it at its next step for every session that shares it; what it finished stays (extracted "
                      "chunks, trained epochs, fitted layers) and asking for it again resumes from there.")
ORPHAN_CANCEL_HELP = ("Nobody who asked for this job has the app open any more (their tabs were closed): stopping it "
                      "frees its slot. What it finished stays.")


def rate_store() -> RateStore:
    """The measured rates under the cache root of the moment (REPSCOPE_CACHE), as `resources.stores()`."""
    return _rate_store(str(cache_root()))


@st.cache_resource(max_entries=4)
def _rate_store(root: str) -> RateStore:
    return RateStore(Path(root) / RATES_FILE)


def submit_job(session_key: str, key: str, label: str, work: Callable[[Report], Any], *,
               rate_key: str | None = None) -> None:
    """Start `work(report)` in the job registry (a failed or cancelled earlier run of `key` is retried); pass `report`
    on as the `progress` of the core function it runs.

    `rate_key` names what the job's units cost (e.g. encoder + dataset + settings): its measured
    seconds per unit is remembered under that key for `estimate_text`.
    """
    registry = resources.job_registry()
    registry.forget(key)
    registry.submit(key, label, work, rate_key=rate_key, rates=rate_store(), owner=session_id(),
                    origin=st.session_state.get(PAGE_KEY, ""))
    keys = st.session_state.setdefault(session_key, [])
    if key not in keys:
        keys.append(key)


def session_id() -> str:
    """This browser session's id: the owner of the jobs it starts or joins (owners may cancel a job)."""
    context = get_script_run_ctx()
    return context.session_id if context is not None else ""


def estimate_text(rate_key: str, units: int, unit: str) -> str:
    """"about 1 min 20 s (last measured 12.3 images/s)" for `units` (plural noun `unit`); "" if never measured."""
    return describe_estimate(rate_store().seconds_per_unit(rate_key), units, unit)


def estimates_caption(units_by_label: dict[str, tuple[str, int]], unit: str) -> str:
    """"Estimate — a: about 20 s (…); b: …" over {label: (rate_key, units)}, or say no rate is known yet."""
    estimates = [f"{label}: {text}" for label, (rate_key, units) in units_by_label.items()
                 if (text := estimate_text(rate_key, units, unit))]
    return "Estimate — " + "; ".join(estimates) if estimates else NO_ESTIMATE


def follow_jobs(session_key: str, keys: Iterable[str]) -> None:
    """Show the progress of jobs of `keys` still active but started elsewhere (another tab, a lost session)."""
    registry = resources.job_registry()
    followed = st.session_state.setdefault(session_key, [])
    for key in keys:
        status = registry.status(key)
        if status is not None and status.state in ACTIVE and key not in followed:
            followed.append(key)


def job_outcomes(keys, cancelled: str) -> None:
    """An error per failed job (its message without the exception type) and per cancelled one (`cancelled`)."""
    registry, me = resources.job_registry(), session_id()
    for status in filter(None, map(registry.status, keys)):
        if status.state == "failed":
            st.error(f"{status.label}: {status.error.split(': ', 1)[-1]}")
        elif status.state == "cancelled":
            elsewhere = " (by another session that shared it)" if status.cancelled_by not in ("", me) else ""
            st.error(f"{status.label}: {cancelled}{elsewhere}")


def has_jobs(session_key: str) -> bool:
    return bool(st.session_state.get(session_key))


def job_progress(session_key: str, unit: str, cancel_help: str | None,
                 on_end: Callable[[list[JobStatus]], None] | None = None) -> None:
    """A progress bar (done/total `unit`, the job's message, elapsed time, ETA) and Cancel button per running job.

    `cancel_help` None: no Cancel button. `on_end(statuses)` runs once all the jobs have ended, before the
    list is emptied and the page reruns (e.g. to keep their failures). Call it on every run, jobs or not: a
    fragment that a rerun no longer draws can stay on screen frozen at its last progress. It polls every
    second only while one of the session's jobs is active.
    """
    registry = resources.job_registry()
    active = any(job is not None and job.state in ACTIVE
                 for job in map(registry.status, st.session_state.get(session_key, [])))
    st.fragment(_progress_rows, run_every=1.0 if active else None)(session_key, unit, cancel_help, on_end)


def _progress_rows(session_key: str, unit: str, cancel_help: str | None,
                   on_end: Callable[[list[JobStatus]], None] | None) -> None:
    registry = resources.job_registry()
    jobs = [job for job in map(registry.status, st.session_state.get(session_key, [])) if job is not None]
    owner = session_id()
    for job in filter(lambda job: job.state in ACTIVE, jobs):
        text = progress_line(job, unit, registry.max_workers)
        if cancel_help is None:
            st.progress(job.fraction, text=text)
            continue
        row = st.columns([5, 1])
        row[0].progress(job.fraction, text=text)
        _cancel_button(row[1], registry, job, owner, cancel_help, key=f"cancel_{job.key}")
    if jobs and all(job.state not in ACTIVE for job in jobs):
        if on_end is not None:
            on_end(jobs)
        st.session_state[session_key] = []
        st.rerun(scope="app")


def _cancel_button(place, registry: JobRegistry, job: JobStatus, owner: str, cancel_help: str, key: str) -> None:
    """Cancel, enabled where `owner` may stop the job (it shares it, or no session that does is open)."""
    allowed = owner in job.owners or not job.open_owners
    others = len(job.open_owners - {owner})
    if not allowed:
        text = "Only the sessions that asked for this job can cancel it (ask for the same on its page to join it)."
    else:
        text = cancel_help + (f" {others} other open session(s) share it: it stops for them too." if others else "")
    place.button("Cancel", key=key, on_click=registry.cancel, args=(job.key, owner),
                 disabled=not allowed or job.cancel_requested, help=text)


def jobs_panel() -> None:
    """The jobs that hold or wait for this server's job slots, every session's, in a sidebar expander; polled every
    2 s while any is active. Call it inside `st.sidebar`."""
    active = any(job.state in ACTIVE for job in resources.job_registry().statuses())
    st.fragment(_jobs_panel_rows, run_every=2.0 if active else None)()


def _jobs_panel_rows() -> None:
    registry, me = resources.job_registry(), session_id()
    jobs = sorted((job for job in registry.statuses() if job.state in ACTIVE),
                  key=lambda job: (job.state != "running", job.started_at))
    running = sum(job.state == "running" for job in jobs)
    label = f"Jobs: {running} of {registry.max_workers} slots busy" + (
        f", {len(jobs) - running} queued" if len(jobs) > running else "")
    with st.expander(label, key="jobs.panel", icon="⏳" if jobs else None):
        if not jobs:
            st.caption("No background job is running or waiting.")
        for job in jobs:
            st.markdown(f"**{job.label}**" + (f" · {job.origin}" if job.origin else ""))
            row = st.columns([3, 2], vertical_alignment="center")
            row[0].caption(_job_line(job, me))
            _cancel_button(row[1], registry, job, me, SHARED_CANCEL_HELP if job.open_owners else ORPHAN_CANCEL_HELP,
                           key=f"jobs.cancel.{job.key}")


def since_text(started_at: float, elapsed_s: float | None = None) -> str:
    """"11:02 (4 min)": the local clock time of `started_at` and how long ago (`elapsed_s`, else until now)."""
    elapsed = time.time() - started_at if elapsed_s is None else elapsed_s
    return f"{time.strftime('%H:%M', time.localtime(started_at))} ({format_duration(elapsed)})"


def _job_line(job: JobStatus, me: str) -> str:
    """"running, 12 % · since 11:02 (4 min) · you + 1 other session": its state, since when and who asked for it."""
    since = f"since {since_text(job.started_at, job.elapsed_s)}"
    if job.state == "queued":
        state = f"queued, {job.ahead} ahead"
    else:
        state = "stopping" if job.cancel_requested else f"running, {job.fraction:.0%}"
    others = len(job.open_owners - {me})
    sessions = f"{others} other session{'s' if others > 1 else ''}"
    if me in job.owners:
        who = "you" + (f" + {sessions}" if others else "")
    else:
        who = sessions if others else "no open session (tabs closed)"
    return f"{state} · {since} · {who}"


def compute_row(entry, settings, selection, *, jobs: str, job: str, done: bool, start: Callable, args: tuple,
                unit: str, pending: str) -> None:
    """A page's Compute button for its one background job (greyed while the job runs or once its result is stored),
    "Add to study", the job's progress (counted in `unit`) and outcome; until the result is stored, says `pending`
    and stops the page."""
    from views.ui.studies import add_to_study  # here: it imports the sidebar, which imports this module

    status = resources.job_registry().status(job)
    st.button("Compute", type="primary", on_click=start, args=args,
              disabled=done or (status is not None and status.state in ("queued", "running")),
              help="Runs in the background with progress; the result is stored on disk, so the same inputs and "
                   "settings open at once next time (also after a restart).")
    add_to_study(entry.name, settings, selection)
    job_progress(jobs, unit, "Stops after the current resample.")
    job_outcomes([job], "Cancelled.")
    if not done:
        st.info(f"{pending}: press **Compute**.")
        st.stop()
