"""The Scoreboard page's parts: the scoreboard of a study file (cached per file version and stored steps) or of every
stored step of a dataset, the table as shown (value [lo, hi], status styling, errors on hover), a picked cell's
detail with its step one click away (a missing cell: the step that would fill it, on its page or added to the study
file), and the "how to read this" texts."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from core.analyses.scoreboard import Scoreboard, cell_text
from core.paths import cache_root
from core.studies.run import STEP_KIND, StepStatus
from core.data.datasets import ImageSet
from core.studies import analyses
from core.studies.files import add_step
from core.studies.scoreboard import StoredStep, dataset_scoreboard, stored_steps, study_scoreboard
from core.studies.spec import StudyError
from core.studies.scoreboard_nulls import compute_nulls, stored_nulls
from core.studies.study import Step, Study
from views.ui import studies, study_openers
from views.ui.background import submit_job

NULL_SEED = 0  # the permutations' seed (fixed: a stored null is found again)

STATUS_STYLE = {"missing": "background-color: #F2F2F2; color: #888888; font-style: italic",
                "failed": "background-color: #FBE3E1; color: #A4262C",
                "n/a": "background-color: #FAFAFA; color: #AAAAAA"}
HOW_TO_READ = {
    "table": "A row per model (grouped by training paradigm; controls and references apart), a column per measure the "
             "study's stored steps hold (↑: higher is better, ↓: lower is better). Each cell is the stored number with "
             "its 95% CI in brackets where the step stored one (a bootstrap). **missing**: no step computed it (the "
             "model is not in the step, or the step never ran); **failed**: the step raised an error (the cell "
             "starts with it; click the cell to read all of it); **n/a**: the stored value is undefined for this model. Click a column to draw it; click a "
             "cell to see where it comes from and open its step on its page (a missing cell: the step that would fill it, "
             "opened on its page or added to the study file).",
    "bars": "One bar per model, coloured by paradigm and sorted within each paradigm (best first), with the 95% CI "
            "where stored; the dashed line is the measure's chance level (GWOT top-1: 1/N; category matching: the "
            "share of item pairs in one category). Overlapping CIs are not a test: use the paired test below.",
    "heatmap": "Each column z-scored over the models (sign flipped for lower-is-better measures, so blue is better "
               "throughout), with the stored value written in the cell; blank: not ok. Read across a row for a "
               "model's profile, down a column for who leads on a measure.",
    "scatter": "Every model with both measures as a point (error bars: stored 95% CIs). Models off the diagonal trend "
               "are where the measures disagree, e.g. high RSA but low GWOT top-1 (the geometry correlates but the "
               "items do not match one to one).",
    "nulls": "Each similarity and brain cell against its permutation null: the reference's items permuted (seeded, "
             "the number of permutations above; a brain cell: every subject's RDM permuted alike), the measure "
             "recomputed each time with the Similarity page's code (brain: the mean over subjects of the step's "
             "comparator, as on the Brain page). p = (1 + "
             "#{null ≥ observed}) / (1 + permutations); z = (observed − null mean) / null sd; the null's 95th "
             "percentile is the value the cell must beat. Width and depth inflate some measures (CKA of wide random "
             "features is high): a cell that does not beat its null says nothing about shared structure.",
    "ranks": "Each model's median rank over the stored bootstrap resamples (the same items drawn for every model) "
             "with its 95% rank interval, and how often it ranks 1st. Overlapping intervals: the ranking between "
             "those models is not settled by these data.",
}


def status_key(state: list[StepStatus]) -> tuple:
    """What the scoreboard of a study depends on besides the file: each step's key and state."""
    return tuple((status.key, status.state) for status in state)


@st.cache_resource(max_entries=8, ttl=600, show_spinner="Reading the stored results…")
def dataset_board(fingerprint: str, _image_set: ImageSet, steps: tuple, cache: str) -> Scoreboard:
    """The scoreboard of every stored step on a dataset, once per set of stored steps (`steps`: keys and times)."""
    return dataset_scoreboard(_image_set, cache)


def dataset_steps(image_set: ImageSet) -> list[StoredStep]:
    return stored_steps(image_set, cache_root())


def dataset_board_of(image_set: ImageSet, stored: list[StoredStep]) -> Scoreboard:
    version = tuple((item.key, item.meta.get("stored_at", item.meta.get("failed_at"))) for item in stored)
    return dataset_board(image_set.fingerprint, image_set, version, str(cache_root()))


@st.cache_resource(max_entries=8, ttl=600, show_spinner="Reading the stored results…")
def board_of(path: str, _study: Study, steps: tuple, cache: str) -> Scoreboard:
    """The study's scoreboard, once per file and set of stored steps (`steps`: status_key)."""
    return study_scoreboard(_study, cache)


def scoreboard_of(path: Path, study: Study) -> Scoreboard:
    return board_of(str(path), study, status_key(studies.statuses(study)), str(cache_root()))


def shown_table(board: Scoreboard) -> tuple[pd.DataFrame, list[str]]:
    """(the table as shown: a row per model, paradigm, then a text cell per measure; the measure of each shown
    column after the first two)."""
    indexed = board.cells.set_index(["model", "measure"])
    nulls = {} if board.nulls is None else board.nulls.set_index(["model", "measure"]).to_dict("index")
    rows = []
    for model in board.models:
        row = {"model": model, "paradigm": indexed.loc[model]["paradigm"].iloc[0]}
        for name, measure in board.measures.items():
            text = cell_text(indexed, model, name)
            row[_header(measure)] = f"failed: {indexed.loc[(model, name), 'error']}" if text == "failed" else text
            null = nulls.get((model, name))
            if null is not None:  # beside the cell: the null's p, and whether the cell beats it
                row[_header(measure)] += f" · null p {null['null_p']:.3f}" + (
                    "" if null["beats_null"] else ", does not beat its null")
        rows.append(row)
    return pd.DataFrame(rows), list(board.measures)


def styled(board: Scoreboard, table: pd.DataFrame):
    """The shown table with missing / failed / n/a cells styled (a failed cell's text carries its error)."""
    indexed = board.cells.set_index(["model", "measure"])
    headers = {_header(measure): name for name, measure in board.measures.items()}
    styles = pd.DataFrame("", index=table.index, columns=table.columns)
    for row, model in enumerate(table["model"]):
        for header, name in headers.items():
            status = indexed.loc[(model, name), "status"] if (model, name) in indexed.index else "n/a"
            styles.iloc[row, table.columns.get_loc(header)] = STATUS_STYLE.get(status, "")
    return table.style.apply(lambda _: styles, axis=None)


def cell_detail(board: Scoreboard, model: str, measure: str, study_path: Path, study: Study) -> None:
    """What a picked cell is and where it comes from, with its step (or the step that would fill it) one click
    away."""
    cell = _cell_header(board, model, measure, "no step of this study measures it for this model")
    if cell is None:
        return
    step = next(step for step in study.steps if step.label == cell["step"])
    state = {status.step.label: status for status in studies.statuses(study)}[step.label]
    if cell["status"] == "missing" and model not in step.encoders:
        fill_actions(step, model, study.pooling, study_path)
    elif state.state == "done":
        open_button(state.key, step.label)
    else:
        st.button(f"Open step {step.label} on its page", on_click=study_openers.open_step,
                  args=(opening_meta(step, study.pooling),), key="scoreboard_open", type="primary",
                  help="Selects the step's dataset, encoders, layers and settings on its page and opens it: press "
                       "its Compute button there to compute what this step would.")
        st.caption(f"The step is {state.state}: run it with the command below (the app never runs a study).")
        st.code(studies.study_command("run", study_path), language="bash")


def stored_cell_detail(board: Scoreboard, model: str, measure: str, stored: list[StoredStep]) -> None:
    """A picked cell of the dataset's scoreboard: the stored step it comes from, one click away (with the model
    added where the step left it out)."""
    cell = _cell_header(board, model, measure, "no stored step of this dataset measures it for this model")
    if cell is None:
        return
    found = next(item for item in stored if item.label == cell["step"])
    if cell["status"] == "missing" and model not in found.step.encoders:
        study_file = Path(found.meta.get("study_file", ""))
        fill_actions(found.step, model, found.meta.get("pooling", "auto"),
                     study_file if study_file.suffix == ".toml" and study_file.is_file() else None)
    else:
        open_button(found.key, found.label)


def _cell_header(board: Scoreboard, model: str, measure: str, why_not: str):
    """Say what the cell is (its value, CI, status, layer, step); the cell, or None where there is none."""
    found = board.cells[(board.cells["model"] == model) & (board.cells["measure"] == measure)]
    described = board.measures[measure]
    if found.empty:
        st.info(f"**{model}** · {described.label}: not applicable ({why_not}).")
        return None
    cell = found.iloc[0]
    value = "" if cell["status"] != "ok" else f" = {cell['value']:.4g}" + (
        f" [{cell['ci_low']:.4g}, {cell['ci_high']:.4g}]" if np.isfinite(cell["ci_low"]) else "")
    st.markdown(f"**{model}** · {described.label}{value} · status **{cell['status']}**"
                + (f" at layer `{cell['layer']}`" if cell["layer"] else "") + f" · from step *{cell['step']}*")
    if cell["error"]:
        (st.error if cell["status"] == "failed" else st.caption)(cell["error"])
    return cell


def open_button(key: str, label: str) -> None:
    st.button(f"Open step {label} on its page", on_click=study_openers.open_result, args=(STEP_KIND, key),
              key="scoreboard_open", type="primary",
              help="Selects the step's dataset, encoders, layers and settings on its page and opens it: the stored "
                   "result is drawn at once. A model missing from the step can be added there (Add to study writes "
                   "it into a study file).")


def fill_actions(step: Step, model: str, pooling: str, study_path: Path | None) -> None:
    """The one click that fills a cell missing because `step` left `model` out: its page with the model added, or
    the step with the model appended to the study file (run it headless)."""
    st.button(f"Open {step.analysis} with {model} added", on_click=study_openers.open_step,
              args=(opening_meta(step, pooling, model),), key="scoreboard_open", type="primary",
              help="Selects the step's dataset, encoders (this model added), layers and settings on its page and "
                   "opens it: press its Compute button there to score the model.")
    if study_path is not None:
        st.button("Add to study", on_click=add_model_step, args=(study_path, step, model), key="scoreboard_add",
                  help=f"Appends this step with {model} added to {study_path.name} as a new [[steps]] table (checked "
                       "as the CLI checks it before anything is written); run the study to fill the cell.")


def added_message() -> None:
    """What the last "Add to study" wrote (or why nothing), once."""
    kind, message = st.session_state.pop("scoreboard_add_message", ("", ""))
    if kind:
        (st.success if kind == "success" else st.error)(message)


def step_layers(step: Step) -> list[str]:
    """One layer list for a step's encoders (a study step names one list for all): the union of theirs."""
    return list(dict.fromkeys(layer for spec in step.encoders for layer in step.layers.get(spec, ())))


def opening_meta(step: Step, pooling: str, model: str = "") -> dict:
    """What `step` would store of itself (core.studies.run.step_meta), `model` added: what its page opens with."""
    encoders = list(dict.fromkeys([*step.encoders, *([model] if model else [])]))
    layers = {spec: list(step.layers.get(spec, ())) or step_layers(step) for spec in encoders}
    return {"label": step.label, "analysis": step.analysis, "settings": dict(step.stored_settings),
            "dataset": step.dataset, "encoders": encoders, "layers": layers, "pooling": pooling}


def add_model_step(path: Path, step: Step, model: str) -> None:
    """Button callback: append `step` with `model` added to the study file `path` (nothing written where the result
    does not validate)."""
    extra = {"encoders": list(dict.fromkeys([*step.encoders, model]))}
    if not analyses.get(step.analysis).all_layers and step_layers(step):
        extra["layers"] = step_layers(step)
    try:
        study = add_step(path, step.analysis, dict(step.settings), extra=extra, cache=cache_root(),
                         comment=f"added from the Scoreboard: {step.label} with {model}")
    except StudyError as error:
        st.session_state["scoreboard_add_message"] = ("error", f"Nothing written: {error}")
        return
    st.session_state["scoreboard_add_message"] = (
        "success", f"Appended step {study.steps[-1].index + 1} to `{path}`. Run it with "
                   f"`{studies.study_command('run', path)}`.")


def _header(measure) -> str:
    return f"{measure.label} {'↑' if measure.higher_better else '↓'}"



def nulls_key(study: Study, n_perm: int) -> str:
    """The background job of a study's permutation nulls."""
    return f"scoreboard_nulls|{study.path}|{n_perm}"


def start_nulls(study: Study, n_perm: int) -> None:
    """Button callback: one background job computing (and storing) the null of every similarity and brain cell."""
    cache = str(cache_root())  # read here: the job's thread has no Streamlit context
    submit_job("scoreboard_jobs", nulls_key(study, n_perm), f"Permutation nulls · {study.name}",
               lambda report: compute_nulls(study, cache, n_perm, NULL_SEED, report))


def with_nulls(board: Scoreboard, study: Study, n_perm: int) -> Scoreboard:
    """The board with the stored nulls of its similarity and brain cells (as it is where none are stored)."""
    nulls = stored_nulls(study, cache_root(), n_perm, NULL_SEED)
    return board if nulls is None else replace(board, nulls=nulls)


def null_verdicts(board: Scoreboard) -> pd.DataFrame:
    """A row per cell with a null: model, measure, observed, p, z, the null's 95th percentile and a verdict."""
    table = board.nulls[["model", "measure", "observed", "null_p", "null_z", "null_q95", "beats_null"]].copy()
    table["verdict"] = np.where(table["beats_null"], "beats its null (p < 0.05)", "does not beat its null")
    return table.drop(columns="beats_null")
