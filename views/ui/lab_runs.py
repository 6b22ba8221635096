"""The Objective lab page's runs: their loss curves while they train, the table of runs, and opening finished runs
on an analysis page (or deleting one)."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Mapping

import pandas as pd
import streamlit as st

from core.data.datasets import ImageSet
from core.encoders.specs import parse_spec
from core.features.extract import layer_statuses
from core.figures.lab import loss_curves_figure, loss_curves_table
from core.lab.runs import TrainConfig, delete_run, load_run
from core.provenance import Provenance
from core.studies import analyses
from views.ui import resources
from views.ui.background import has_jobs
from views.ui.export_row import figure_block
from views.ui.extraction import start_extraction
from views.ui.sidebar import Selection, set_choice

JOBS = "lab_jobs"  # the session's training jobs
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
        runs = [load_run(cache, config.run_id) for config in configs.values()
                if (cache / "lab" / config.run_id / "config.json").is_file()]
        if not runs:
            return
        table = loss_curves_table({f"{run.config.objective} · {run.run_id}": run.history for run in runs})
        # Not stored features: what produced a curve is its run's whole TrainConfig.
        provenance = Provenance(image_set.name, image_set.fingerprint, parameters={"runs": {
            f"{run.config.objective} · {run.run_id}": {
                "spec": run.spec, **asdict(run.config), "epochs_done": run.epochs_done,
                "weights": f"sha256:{run.result['backbone_sha256']}" if run.finished else "in training"}
            for run in runs}}, skipped_images=image_set.skipped_labels)
        figure_block(loss_curves_figure(table), table, page="lab", figure="loss_curves", dataset=image_set.name,
                     provenance=provenance,
                     how_to_read="Mean loss of each optimisation step, logged once per epoch. Losses of different "
                                 "objectives are not comparable with each other; compare their geometry on the "
                                 "analysis pages instead.")

    curves()


def runs_panel(selection: Selection, image_set: ImageSet, cache: Path) -> None:
    """The table of every run, then Open (the chosen finished runs on an analysis page) and Delete (one run)."""
    runs = resources.lab_runs()
    if not runs:
        st.info("No runs yet: pick objectives and press **Train**.")
        return
    table = pd.DataFrame([{"spec": run.spec, "objective": run.config.objective, "backbone": run.config.backbone,
                           "dataset": run.config.dataset, "image_size": run.config.image_size,
                           "epochs": f"{run.epochs_done}/{run.config.epochs}", "finished": run.finished,
                           "images": run.result.get("images"), "seconds": run.result.get("seconds"),
                           "final_loss": run.result.get("final_loss")} for run in runs])
    st.dataframe(table, hide_index=True, width="stretch")
    done = [run.spec for run in runs if run.finished]

    def open_runs(specs: list[str], page: str) -> None:
        """Callback: put the runs' encoders (final layer) in the sidebar and on the Manifolds and Inductive bias
        pages; for a page that needs cached features, start extracting the runs' `final` layer; then switch."""
        set_choice("encoders", list(dict.fromkeys([*selection.encoders, *specs])))
        for key in LAYER_PICKERS:
            st.session_state[key] = [f"{spec} · final" for spec in specs]
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
    actions[3].button("Delete", on_click=remove_run, args=(chosen[0] if len(chosen) == 1 else "",),
                      disabled=len(chosen) != 1 or has_jobs(JOBS),
                      help="Deletes the one chosen run's folder (checkpoints, weights, history). Its cached features "
                           "stay until the cache is cleared.")
