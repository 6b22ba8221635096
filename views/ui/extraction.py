"""Extraction status, the Extract button and live progress: shared by every page that needs features."""
from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd
import streamlit as st

from core.datasets import ImageSet
from core.extract import LayerStatus, extract, layer_statuses
from views.ui import resources
from views.ui.sidebar import Selection, effective_pooling

STATE_HELP = ("cached = stored on disk, loads in milliseconds; missing = press Extract; "
              "unavailable = cannot be loaded here (reason in `detail`)")


def extraction_panel(image_set: ImageSet, selection: Selection, *, show_table: bool = True,
                     layers: Mapping[str, Sequence[str] | str] | None = None) -> list[LayerStatus]:
    """Status of every selected encoder x layer, an Extract button for the missing ones, live progress.

    `layers` overrides the sidebar's layers per encoder (e.g. "all" for the layer-probe page).
    """
    store = resources.feature_store()
    layers = dict(layers or selection.layers)
    statuses = [status for spec in selection.encoders
                for status in layer_statuses(image_set, spec, layers[spec], store,
                                             effective_pooling(spec, selection.pooling))]
    if show_table:
        st.dataframe(pd.DataFrame([vars(status) for status in statuses]), hide_index=True, width="stretch",
                     column_config={"state": st.column_config.TextColumn(help=STATE_HELP)})
    todo = sorted({status.encoder for status in statuses if status.state == "missing"})
    st.button(f"Extract {len(todo)} encoder(s)" if todo else "Everything selected is cached", type="primary",
              disabled=not todo, on_click=_start_extraction, args=(image_set, selection, layers, todo),
              help="Runs in the background: all selected layers of an encoder in one forward pass per batch, "
                   "written to the cache chunk by chunk. Changing widgets does not stop it; an interrupted run "
                   "resumes.")
    if st.session_state.get("extraction_jobs"):
        _extraction_progress()
    for message in st.session_state.get("extraction_errors", []):
        st.error(message)
    return statuses


def _start_extraction(image_set: ImageSet, selection: Selection, layers: dict, specs: list[str]) -> None:
    store, registry = resources.feature_store(), resources.job_registry()
    st.session_state["extraction_errors"] = []
    for spec in specs:
        wanted, pooling = layers[spec], effective_pooling(spec, selection.pooling)
        layer_list = wanted if isinstance(wanted, str) else ",".join(wanted)
        key = f"extract|{image_set.fingerprint}|{spec}|{layer_list}|{pooling}"

        def work(report, spec=spec, wanted=wanted, pooling=pooling):
            extract(image_set, spec, wanted, store, pooling=pooling, device=selection.device,
                    batch_size=selection.batch_size,
                    progress=lambda p: report(p.done, p.total, f"{p.images_per_s:.1f} images/s"))

        registry.submit(key, spec, work)
        st.session_state.setdefault("extraction_jobs", []).append(key)


@st.fragment(run_every=1.0)
def _extraction_progress() -> None:
    registry = resources.job_registry()
    jobs = [job for job in map(registry.status, st.session_state.get("extraction_jobs", [])) if job is not None]
    for job in jobs:
        st.progress(job.fraction, text=f"{job.label} — {job.state}: {job.done}/{job.total} images · {job.message}")
    if jobs and all(job.state not in ("queued", "running") for job in jobs):
        st.session_state["extraction_errors"] = [f"{job.label}: {job.error}" for job in jobs if job.state == "failed"]
        st.session_state["extraction_jobs"] = []
        st.rerun(scope="app")  # the page above now finds the features in the cache
