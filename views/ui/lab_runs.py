"""The Objective lab page's runs: their loss curves while they train, the table of runs, and opening finished runs
on an analysis page (or deleting one)."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd
import streamlit as st

from core.data.datasets import ImageSet
from core.encoders.specs import parse_spec
from core.features.extract import layer_statuses
from core.figures.lab import loss_curves_figure, loss_curves_table, run_label
from core.lab.runs import LabRun, RunState, TrainConfig, TrainPlan, delete_run, load_run, run_states
from core.provenance import Provenance
from core.studies import analyses
from views.ui import resources
from views.ui.background import has_jobs, since_text
from views.ui.export_row import figure_block
from views.ui.extraction import start_extraction
from views.ui.settings import set_choice
from views.ui.sidebar import Selection

JOBS = "lab_jobs"  # the training jobs this session shows: those it asked for and those it follows
SWITCH_KEY = "lab_switch_to"  # the page an Open callback asks for, switched to by the page script
OPENED = [analyses.get(name) for name in ("manifolds", "affect", "alignment", "inductive_bias")]
PAGES = {entry.title: entry.page for entry in OPENED}  # the analysis pages a run opens on, by title
# Pages whose figures use the cached clean features; Manifolds and Inductive bias extract their own views.
NEEDS_FEATURES = {analyses.get(name).title for name in ("affect", "alignment")}
# The encoder · layer pickers of the pages that extract their own views: Open puts the runs' final layer there.
LAYER_PICKERS = [analyses.get(name).widget_key("layers") for name in ("manifolds", "inductive_bias")]


def loss_curves(image_set: ImageSet, configs: Mapping[str, TrainConfig], cache: Path) -> None:
    """Loss curves of the selected objectives' runs, redrawn every 2 s while training (history.json per epoch)."""
    @st.fragment(run_every=2.0 if has_jobs(JOBS) else None)
    def curves() -> None:
        runs = stored_runs(configs, cache)
        if not runs:
            return
        table = loss_curves_table({run_label(run.config.objective, run.run_id): run.history for run in runs})
        figure_block(loss_curves_figure(table), table, page="lab", figure="loss_curves", dataset=image_set.name,
                     provenance=runs_provenance(image_set, runs),
                     how_to_read="Mean loss of each optimisation step, logged once per epoch. Losses of different "
                                 "objectives are not comparable with each other; compare their geometry on the "
                                 "analysis pages instead.")

    curves()


def stored_runs(configs: Mapping[str, TrainConfig], cache: Path) -> list[LabRun]:
    """The selected runs that have a folder (training, stopped or finished)."""
    return [load_run(cache, config.run_id) for config in configs.values()
            if (cache / "lab" / config.run_id / "config.json").is_file()]


def runs_provenance(image_set: ImageSet, runs: list[LabRun], **parameters) -> Provenance:
    """What produced a lab figure: not stored features but each run's whole TrainConfig (and `parameters`)."""
    return Provenance(image_set.name, image_set.fingerprint, parameters={**parameters, "runs": {
        run_label(run.config.objective, run.run_id): {
            "spec": run.spec, **asdict(run.config), "epochs_done": run.epochs_done,
            "weights": f"sha256:{run.result['backbone_sha256']}" if run.finished else "in training"}
        for run in runs}}, skipped_images=image_set.skipped_labels)


def train_label(plan: TrainPlan) -> str:
    """The Train button's words: what pressing it starts or joins, or why there is nothing to press."""
    if plan.start:
        return f"Train {len(plan.start)} objective(s)" + (f", join {len(plan.join)} running" if plan.join else "")
    if plan.join:
        return f"Join {len(plan.join)} running run(s)"
    if plan.joined:
        return f"Training {len(plan.joined)} objective(s)…"
    return "All selected objectives are trained"


def train_help(plan: TrainPlan) -> str:
    """The Train button's help: how runs train, and which of the selected ones train already."""
    text = ("One run per objective, in the background (queued while the server's job slots are busy): changing "
            "widgets or pages does not stop them. A run stopped midway resumes from its last finished epoch.")
    if plan.join:
        text += (f" Already running for another session: {', '.join(c.objective for c in plan.join)}; pressing "
                 "joins their jobs (one job per run) instead of starting them again, and lets this session "
                 "cancel them too.")
    if plan.joined:
        text += f" Training for this session: {', '.join(c.objective for c in plan.joined)}."
    return text


def runs_table(states: list[RunState]) -> pd.DataFrame:
    """One row per run: its settings, where it stands (state, finished epochs, progress, since when) and results."""
    return pd.DataFrame([{
        "spec": state.spec, "objective": state.objective, "state": state.state,
        "epochs": f"{state.epochs_done}/{state.config.epochs if state.config else '?'}", "progress": state.progress,
        "since": since_text(state.since) if state.since is not None else "",
        "backbone": state.config.backbone if state.config else None,
        "dataset": state.config.dataset if state.config else None,
        "image_size": state.config.image_size if state.config else None,
        "finished": state.state == "finished",
        **{column: state.run.result.get(column) if state.run else None
           for column in ("images", "seconds", "final_loss")}} for state in states])


def runs_panel(selection: Selection, image_set: ImageSet, cache: Path, configs: Iterable[TrainConfig]) -> None:
    """The table of every run, on disk or training on this server (whichever session started it; redrawn every 2 s
    while one trains), then Open (the chosen finished runs on an analysis page) and Delete (one run). `configs`: the
    page's selected runs, whose settings a queued run without a folder yet is listed with."""
    configs = list(configs)
    states = _runs_and_jobs(configs)

    @st.fragment(run_every=2.0 if any(state.active for state in states) else None)
    def table() -> None:
        states = _runs_and_jobs(configs)  # read again on each of the fragment's own reruns
        if not states:
            st.info("No runs yet: pick objectives and press **Train**.")
            return
        st.dataframe(runs_table(states), hide_index=True, width="stretch", column_config={
            "state": st.column_config.TextColumn(help="queued (waits for a job slot), training, stopping, stopped "
                                                      "(midway: Train resumes it) or finished"),
            "epochs": st.column_config.TextColumn(help="Finished epochs / epochs"),
            "progress": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="percent",
                                                        help="Images trained over all epochs (while training)"),
            "since": st.column_config.TextColumn(help="When its job started training (or was queued)")})

    table()
    runs = [state.run for state in states if state.run is not None]
    if not runs:
        return
    done = [run.spec for run in runs if run.finished]

    def open_runs(specs: list[str], page: str) -> None:
        """Callback: put the runs' encoders (final layer) in the sidebar and on the Manifolds and Inductive bias
        pages; for a page that needs cached features, start extracting the runs' `final` layer; then switch."""
        set_choice("encoders", list(dict.fromkeys([*selection.encoders, *specs])))
        for key in LAYER_PICKERS:
            set_choice(key, [f"{spec} · final" for spec in specs])
        if page in NEEDS_FEATURES:
            store = resources.feature_store()
            missing = [spec for spec in specs if layer_statuses(image_set, resources.encoder_info(spec), ["final"],
                                                                store)[0].state == "missing"]
            if missing:
                start_extraction(image_set, missing, {spec: ["final"] for spec in missing}, selection)
                st.session_state["extraction_notice"] = (
                    f"Extracting the `final` layer of {', '.join(missing)} on {image_set.name} in the background; "
                    f"{page}'s figures include {'it' if len(missing) == 1 else 'them'} once done (progress under "
                    f"**Features**).")
        st.session_state[SWITCH_KEY] = PAGES[page]

    def remove_run(spec: str) -> None:
        delete_run(cache, parse_spec(spec).arch)  # a lab spec's arch is its run id
        set_choice("encoders", [s for s in selection.encoders if s != spec])

    actions = st.columns([3, 2, 1, 1])
    chosen = actions[0].multiselect("Runs", [run.spec for run in runs], default=done, key="lab.chosen_runs",
                                    persist_state="session",
                                    help="Finished runs to open on an analysis page (side by side), or one to delete.")
    page = actions[1].selectbox("Analysis page", list(PAGES), key="lab.open_page", persist_state="session",
                                help="Opens the page with these encoders selected in the sidebar (final layer).")
    ready = [spec for spec in chosen if spec in done]
    actions[2].button("Open", on_click=open_runs, args=(ready, page), disabled=not ready,
                      help="Adds the chosen finished runs to the sidebar's encoders and opens the page; for Affect and "
                           "Alignment it first starts extracting the runs' final layer in the background.")
    training = {state.spec for state in states if state.active}
    actions[3].button("Delete", on_click=remove_run, args=(chosen[0] if len(chosen) == 1 else "",),
                      disabled=len(chosen) != 1 or chosen[0] in training,
                      help="Deletes the one chosen run's folder (checkpoints, weights, history); not while it trains. "
                           "Its cached features stay until the cache is cleared.")


def _runs_and_jobs(configs: list[TrainConfig]) -> list[RunState]:
    """Every run on disk and every training job of this server, whichever session asked for it."""
    return run_states(resources.lab_runs(), resources.job_registry().statuses(), configs)
