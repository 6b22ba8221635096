"""Extraction status, the Extract button and live progress: shared by every page that needs features.

Background jobs of this session are listed in `st.session_state["extraction_jobs"]` (job keys)
with their origin (dataset fingerprint, encoder) in `["extraction_origins"]`. A failed job's
message is kept in `["extraction_errors"]` under that origin, so it shows only while that
dataset and encoder are selected and goes when the encoder is extracted again. A page that
starts jobs and switches to another (the lab's Open) leaves a line in `["extraction_notice"]`,
shown there as a toast.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd
import streamlit as st

from core.data.datasets import ImageSet
from core.encoders.registry import UNUSABLE
from core.features.extract import LayerStatus, extract, layer_statuses
from core.jobs import JobStatus, job_key
from views.ui import resources
from views.ui.background import job_progress, submit_job
from views.ui.sidebar import Selection

STATE_HELP = ("cached = stored on disk, loads in milliseconds; missing = press Extract; "
              "unavailable = cannot be loaded here (reason in `detail`)")


def extraction_panel(image_set: ImageSet, selection: Selection, *, show_table: bool = True,
                     layers: Mapping[str, Sequence[str] | str] | None = None) -> list[LayerStatus]:
    """Status of every selected encoder x layer, an Extract button for the missing ones, live progress.

    `layers` overrides the sidebar's layers per encoder (e.g. "all" for the layer-probe page).
    """
    layers = dict(layers or selection.layers)
    statuses = [status for spec in selection.encoders for status in _statuses(image_set, spec, layers[spec], selection)]
    if show_table:
        st.dataframe(pd.DataFrame([vars(status) for status in statuses]), hide_index=True, width="stretch",
                     column_config={"state": st.column_config.TextColumn(help=STATE_HELP)})
    todo = sorted({status.encoder for status in statuses if status.state == "missing"})
    unavailable = sorted({status.encoder for status in statuses if status.state == "unavailable"})
    st.button(extract_button_label(len(todo), len(unavailable)), type="primary", disabled=not todo,
              on_click=start_extraction,
              args=(image_set, todo, layers, selection),
              help="Runs in the background: all selected layers of an encoder in one forward pass per batch, "
                   "written to the cache chunk by chunk. Changing widgets does not stop it; an interrupted run "
                   "resumes.")
    job_progress("extraction_jobs", "images", None, on_end=_keep_failures)
    if "extraction_notice" in st.session_state:  # set by a page that started jobs, then switched here
        # A toast, because the panel may sit in a collapsed expander.
        st.toast(st.session_state.pop("extraction_notice"), icon="⏳", duration="long")
    errors = st.session_state.get("extraction_errors", {})
    not_cached = {status.encoder for status in statuses if status.state != "cached"}
    for spec in selection.encoders:
        message = errors.get((image_set.fingerprint, spec))
        if message and spec in not_cached:
            st.error(f"{spec}: {message}")
    return statuses


def _statuses(image_set: ImageSet, spec: str, layers: Sequence[str] | str, selection: Selection) -> list[LayerStatus]:
    """layer_statuses of one selected encoder; a spec that cannot be described is one `unavailable` row."""
    store = resources.feature_store()
    try:
        encoder = resources.encoder_info(spec)
    except UNUSABLE:
        return layer_statuses(image_set, spec, layers, store)  # describes it again, to give the reason
    return layer_statuses(image_set, encoder, layers, store, selection.pooling_of(spec))


def extract_button_label(n_missing: int, n_unavailable: int) -> str:
    """What the Extract button does, or why there is nothing for it to do."""
    if n_missing:
        return f"Extract {n_missing} encoder(s)"
    if n_unavailable:
        return f"Nothing to extract: {n_unavailable} encoder(s) unavailable (see table)"
    return "Everything selected is cached"


def start_extraction(image_set: ImageSet, specs: Sequence[str], layers: Mapping[str, Sequence[str] | str],
                     selection: Selection) -> None:
    """Submit one background job per encoder: `layers[spec]` of it on `image_set`, at the pooling, device and batch
    size the sidebar selected. Any extraction panel then shows the jobs' progress and failures."""
    store = resources.feature_store()
    errors = st.session_state.setdefault("extraction_errors", {})
    origins = st.session_state.setdefault("extraction_origins", {})
    for spec in specs:
        wanted, spec_pooling = layers[spec], selection.pooling_of(spec)
        layer_list = wanted if isinstance(wanted, str) else ",".join(wanted)
        key = job_key("extract", image_set.fingerprint, spec, layer_list, spec_pooling)

        def work(report, encoder=resources.encoder_info(spec), wanted=wanted, spec_pooling=spec_pooling):
            extract(image_set, encoder, wanted, store, pooling=spec_pooling, device=selection.device,
                    batch_size=selection.batch_size, progress=report)

        errors.pop((image_set.fingerprint, spec), None)  # a retry replaces the old failure
        submit_job("extraction_jobs", key, spec, work)
        origins[key] = (image_set.fingerprint, spec)


def _keep_failures(jobs: list[JobStatus]) -> None:
    """Once the session's extractions have ended: file each failure under its dataset and encoder."""
    origins = st.session_state.get("extraction_origins", {})
    errors = st.session_state.setdefault("extraction_errors", {})
    for job in jobs:
        if job.state == "failed" and job.key in origins:
            errors[origins[job.key]] = job.error.split(": ", 1)[-1]  # without the exception type
    st.session_state["extraction_origins"] = {}
