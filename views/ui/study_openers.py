"""Stored results reopened on their page: a stored result -> the session-state keys of the sidebar and of its page.

One generic function for every analysis: a study step's settings become its page's widget values by the registry's
rule (setting `f` of analysis `a` is the widget `"a.f"`, or the entry's own `page_state`), and a result a page
stored itself opens through its analysis's `open_stored`. `open_result` sets those keys in a button callback, before
any widget is drawn; the Studies page then calls `switch_page(pending_switch())` (a callback cannot: the
navigation's pages are not registered yet when callbacks run). With the same settings the page computes the same
stored key, so it shows the stored result at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import streamlit as st

from core.data.neural import split_rdms_option
from core.encoders.specs import FLAT, flat_dim
from core.features.results import ResultStore
from core.studies import analyses
from core.studies.context import STEP_KIND
from views.ui import resources
from views.ui.settings import set_choice

OpenError = analyses.CannotOpen
SWITCH_KEY = "studies_switch_to"  # set by open_result, read once by the Studies page
# Specs `<kind>:<path>` the sidebar selects.
DATASET_KINDS = ("oasis", "things", "folder", "manifest", "embeddings", "neural")


@dataclass(frozen=True)
class Opening:
    """Where a stored result opens: the analysis page, the session state to set first, what is not restored."""

    analysis: str
    state: dict
    notes: tuple[str, ...] = ()

    @property
    def page(self) -> str:
        return analyses.get(self.analysis).page

    @property
    def title(self) -> str:
        return analyses.get(self.analysis).title


def dataset_state(spec: str) -> dict:
    """The sidebar's dataset widgets for a dataset spec (`demo`, `oasis:/data/oasis`, `things:/x|embedding=/e.npy`)."""
    spec, rdm_files = split_rdms_option(spec)
    rdms = {"dataset_rdms": ",".join(rdm_files)}  # also when none: an earlier choice must not stay
    if spec == "demo":
        return {"dataset_kind": "demo"} | rdms
    kind, separator, argument = spec.partition(":")
    if not separator or kind not in DATASET_KINDS:
        raise OpenError(f"dataset {spec!r} is not a dataset spec the sidebar can select")
    if kind not in ("things", "embeddings"):
        return {"dataset_kind": kind, f"dataset_path_{kind}": argument} | rdms
    root, *options = argument.split("|")
    values = dict(option.partition("=")[::2] for option in options)
    state = {"dataset_kind": kind, f"dataset_path_{kind}": root} | rdms
    if kind == "things":
        state |= {"things_embedding": values.get("embedding", ""), "things_categories": values.get("categories", "")}
    else:
        state |= {"embeddings_categories": values.get("categories", "")}
    return state


def sidebar_state(dataset: str | None, encoders: Sequence[str] | None, layers: Mapping[str, Sequence[str]] | None,
                  pooling: str | None) -> dict:
    """Session-state keys of the sidebar (views/ui/sidebar.py) for a dataset spec, encoders, layers and pooling."""
    state = dataset_state(dataset) if dataset else {}
    if encoders:
        state["encoders"] = list(encoders)
    for spec, names in (layers or {}).items():
        state[f"layers::{spec}"] = list(names)
    if pooling:
        dim = flat_dim(pooling)
        state["pooling"] = FLAT if dim is not None else pooling
        if dim is not None:
            state["flat_dim"] = dim
    return state


def opening(kind: str, meta: Mapping, store: ResultStore | None = None) -> Opening:
    """Where and how a stored result opens; OpenError when it cannot."""
    store = store or resources.result_store()
    if kind == STEP_KIND:
        if not analyses.known(meta.get("analysis")):
            raise OpenError(f"unknown analysis {meta.get('analysis')!r}")
        entry = analyses.get(meta["analysis"])
        widgets, notes = entry.opening_state(entry.settings.lenient(meta.get("settings") or {}), meta)
        step = meta
    else:
        entry = analyses.owner_of(kind)
        if entry is None:
            raise OpenError(f"results of kind {kind!r} do not open on a page")
        step, widgets, notes = entry.open_stored(kind, meta, store)
    # A page that reads every layer whatever the sidebar's layers leaves the sidebar's as they are.
    layers = None if entry.all_layers else step.get("layers")
    notes = list(notes)
    try:
        sidebar = sidebar_state(step.get("dataset"), step.get("encoders"), layers, step.get("pooling"))
    except OpenError:
        sidebar = sidebar_state(None, step.get("encoders"), layers, step.get("pooling"))
        notes.append(f"Dataset {step.get('dataset')!r} is a name, not a spec: the sidebar's dataset stays as it is.")
    return Opening(entry.name, {**sidebar, **widgets}, tuple(notes))


def open_result(kind: str, key: str) -> None:
    """Button callback: set the sidebar's and the page's widgets from a stored result, then switch to its page.

    Runs before any widget of the next run is drawn, so every key may be set (the pages' widgets keep
    `persist_state="session"` values; those of other pages are plain session state until their page draws them).
    The page script then calls `switch_page(pending_switch())`.
    """
    stored = resources.result_store().get(kind, key)
    _open(kind, stored.meta if stored is not None else OpenError("it is no longer stored"), f"{kind} {key}")


def open_step(meta: Mapping) -> None:
    """Button callback: open a study step that is not stored (never run, or with a model added) on its page, from
    the meta it would store (analysis, settings, dataset, encoders, layers, pooling): pressing the page's Compute
    then computes it."""
    _open(STEP_KIND, meta, f"step {meta.get('label', meta.get('analysis'))}")


def _open(kind: str, meta: Mapping | OpenError, named: str) -> None:
    st.session_state["studies_open_error"] = ""
    try:
        if isinstance(meta, OpenError):
            raise meta
        target = opening(kind, meta)
    except OpenError as error:
        st.session_state["studies_open_error"] = f"Cannot open {named}: {error}."
        return
    for name, value in target.state.items():
        set_choice(name, value)
    # st.switch_page cannot run in a callback here (the navigation's pages are not registered yet at that point of
    # the rerun): the Studies page switches first thing in its script (`pending_switch`), so only the opened page
    # draws these values.
    st.session_state[SWITCH_KEY] = target.page


def pending_switch() -> str | None:
    """The page an "Open on its page" click asked for (once), to `st.switch_page` to from the page's script."""
    return st.session_state.pop(SWITCH_KEY, None)
