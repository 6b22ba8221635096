"""Studies in the app: study files and their steps' state, the stored results, "Add to study".

What the Studies page and the analysis pages share, besides opening a stored result on its page
(`views/ui/study_openers.py`) and writing study files (`core/studies/files.py`):

- reading: every `*.toml` under the repository's `studies/` and `<cache>/studies/`, validated by `load_study`
  (cached per file version), each step's state from `study_status`, the stored results of the ResultStore;
- writing: `add_to_study(analysis, settings, selection)` draws a popover that appends the page's current
  settings as a `[[steps]]` table (`core.studies.files.add_step`: only the keys its analysis's Settings declare),
  validated with `load_study` before anything is written (`atomic_write`); the page names what the step cannot
  express (`notes`: shown, the step still written; `unavailable`: the button disabled, with the reason).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import streamlit as st

from core.analyses.gwot_search import ALIGNMENT_KIND
from core.encoders.specs import pooling_name
from core.paths import cache_root
from core.studies.files import add_step, read_header, study_header_toml
from core.studies import analyses
from core.studies.run import STEP_KIND, StepStatus, study_status
from core.studies.spec import COMMON, Study, StudyError, load_study
from views.ui import resources
from views.ui.sidebar import Selection

REPO_STUDIES = Path(__file__).resolve().parents[2] / "studies"  # example study files, in the repository

def result_kinds() -> tuple[str, ...]:
    """The stored results the page lists: study steps, and what the analysis pages store themselves."""
    return (STEP_KIND, *(kind for entry in analyses.analyses() for kind in entry.result_kinds))

NEW_FILE = ""  # the study-file picker's "new file" entry



# --- study files ---------------------------------------------------------------------------------------------------

def user_studies() -> Path:
    """Where "Add to study" writes new study files: `<cache>/studies/`."""
    return cache_root() / "studies"


def study_files(other: str = "") -> list[Path]:
    """Every `*.toml` under the repository's `studies/` and `<cache>/studies/`, then `other` (any path) if given."""
    found = [path for folder in (REPO_STUDIES, user_studies()) if folder.is_dir()
             for path in sorted(folder.glob("*.toml"))]
    if other.strip():
        found.append(Path(other.strip()).expanduser())
    return list(dict.fromkeys(found))


def shown_path(path: Path) -> str:
    """A study file as the CLI would be given it: relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(REPO_STUDIES.parent))
    except ValueError:
        return str(path)


def study_or_error(path: Path) -> Study | StudyError:
    """The validated study, or the StudyError (its message names the file, line, key and what is allowed)."""
    try:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = None  # load_study says it cannot read the file
    return _validated(str(path), stamp, str(cache_root()))


@st.cache_resource(max_entries=32, ttl=600, show_spinner="Validating the study file…")
def _validated(path: str, stamp: tuple | None, cache: str) -> Study | StudyError:
    """`load_study` once per file version (loading datasets and describing encoders takes a while)."""
    try:
        return load_study(path, cache)
    except StudyError as error:
        return error


def missing_data_note(path: Path, error: StudyError) -> str | None:
    """What to set in an example of the repository's studies/ folder whose dataset path does not exist here (the
    key, its line, the path looked for); None for any other problem, and for a user's own study file."""
    if error.missing_path is None or path.resolve().parent != REPO_STUDIES.resolve():
        return None
    return (f"An example that needs data this machine does not have: it looked for `{error.missing_path}`. To run "
            f"it, set `{error.key}` on line {error.line} of `{shown_path(path)}` to where your copy of that data is.")


def statuses(study: Study) -> list[StepStatus]:
    """Every step's state now (done, pending, failed), read from the result store on each rerun."""
    return study_status(study, cache_root())


def compact(value: Any) -> str:
    """A setting's value in a few characters: lists with commas, floats with %g."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(compact, value)) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def steps_table(step_statuses: Sequence[StepStatus]) -> pd.DataFrame:
    """A row per step and dataset: label, analysis, dataset, state, summary (or the error), encoders, settings."""
    return pd.DataFrame([{
        "step": status.step.label, "analysis": status.step.analysis, "dataset": status.step.dataset,
        "state": status.state, "summary": status.error or status.summary,
        "encoders": ", ".join(status.step.encoders),
        "settings": settings_text(status.step.settings)} for status in step_statuses])


def settings_text(settings: Mapping[str, Any]) -> str:
    """`key=value; …` of a step's settings (encoders and layers, and unset keys, left out)."""
    return "; ".join(f"{key}={compact(value)}" for key, value in settings.items()
                     if value is not None and key not in COMMON)


def study_command(action: str, path: Path, *more: str) -> str:
    """`python -m core [--cache C] study <action> <file> …`, with --cache when the app's cache is not the default."""
    cache = "" if cache_root().resolve() == (REPO_STUDIES.parent / "cache").resolve() else f" --cache {cache_root()}"
    return " ".join([f"python -m core{cache} study {action} {shown_path(path)}", *more])


def run_commands(path: Path) -> str:
    """The command lines that run a study, show its state and export it (the app never runs a study)."""
    return "\n".join(["# run every step not stored yet: in this process, or as Ray tasks (or --ray-address HEAD:6379)",
                      study_command("run", path), study_command("run", path, "--engine ray"),
                      "# done / pending / failed, per step", study_command("status", path),
                      "# every figure (PNG/SVG/PDF/HTML), table (CSV) and a methods.md, zipped",
                      study_command("export", path, f"{path.stem or 'study'}_results.zip")])


# --- stored results ------------------------------------------------------------------------------------------------

def stored_entries() -> list[dict]:
    """The meta of every stored study step, alignment and out-of-fold prediction, newest first."""
    store = resources.result_store()
    entries = [meta for kind in result_kinds() for meta in store.entries(kind)]
    return sorted(entries, key=lambda meta: -meta.get("stored_at", 0))


def stored_time(meta: Mapping) -> str:
    stamp = meta.get("stored_at")
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else ""


def entry_settings(meta: Mapping) -> str:
    """What tells two stored results apart: a step's settings, an alignment's metric and search, a scheme."""
    if isinstance(meta.get("settings"), Mapping):
        return settings_text(meta["settings"])
    if meta.get("kind") == ALIGNMENT_KIND:
        search = meta.get("search_settings")
        return settings_text({"metric": meta.get("metric"), "normalise": meta.get("normalise"),
                              **(search if isinstance(search, Mapping) else {})})
    return settings_text({"scheme": meta.get("scheme")})


def entries_table(entries: Sequence[Mapping]) -> pd.DataFrame:
    return pd.DataFrame([{"kind": meta["kind"], "label": meta.get("label", ""),
                          "dataset": meta.get("dataset") or meta.get("dataset_name", ""),
                          "settings": entry_settings(meta), "stored": stored_time(meta), "key": meta["key"]}
                         for meta in entries],
                        columns=["kind", "label", "dataset", "settings", "stored", "key"])


def entry_id(meta: Mapping) -> str:
    return f"{meta['kind']}/{meta['key']}"


# --- writing study files ------------------------------------------------------------------------------------------

def selection_layers(selection: Selection) -> tuple[list[str], list[str]]:
    """(encoders with layers selected, one layer list for them): a study names one list for all its encoders."""
    encoders = [spec for spec in selection.encoders if selection.layers.get(spec)]
    lists = [list(selection.layers[spec]) for spec in encoders]
    union = list(dict.fromkeys(layer for layers in lists for layer in layers))
    return encoders, union


def study_target(choice: str, new_name: str) -> Path:
    """The file to write: the picked one, or `<cache>/studies/<name>.toml` for a new name."""
    if choice != NEW_FILE:
        return Path(choice)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", new_name.strip()).strip("._")
    if not stem:
        raise StudyError("Name the new study (letters, digits, _ . -).")
    return user_studies() / f"{stem}.toml"


@dataclass(frozen=True)
class Added:
    """What "Add to study" wrote: the file, the new step's number, notes on how it differs from the page."""

    path: Path
    step: int
    created: bool
    notes: tuple[str, ...] = ()


def append_step(target: Path, analysis: str, settings: Mapping[str, Any], selection: Selection,
                name: str = "") -> Added:
    """Append the page's settings to `target` as a step (creating the file with the sidebar's header if new);
    the whole text is validated with `load_study` first, and nothing is written when it does not validate."""
    encoders, layers = selection_layers(selection)
    notes = []
    if len({tuple(selection.layers[spec]) for spec in encoders}) > 1:
        notes.append(f"The sidebar's encoders have different layers; a study step takes one list for all its "
                     f"encoders, so the step extracts {', '.join(layers)} of each.")
    created = not target.exists()
    extra: dict[str, Any] = {}
    header_toml = None
    if created:
        header_toml = study_header_toml(name or target.stem, [selection.dataset_spec], encoders, layers,
                                        selection.pooling)
    else:
        header = read_header(target)
        if header.get("encoders") != encoders:
            extra["encoders"] = encoders
        if not analyses.get(analysis).all_layers and header.get("layers", ["final"]) != layers:
            extra["layers"] = layers
        datasets = header.get("datasets", [header.get("dataset")])
        if selection.dataset_spec not in datasets:
            notes.append(f"This study runs on {', '.join(map(str, datasets))}, not on the sidebar's dataset "
                         f"{selection.dataset_spec}.")
        if _pooling(header.get("pooling", "auto")) != selection.pooling:
            notes.append(f"This study's pooling is {header.get('pooling', 'auto')}, not the sidebar's "
                         f"{selection.pooling}.")
    study = add_step(target, analysis, settings, extra=extra, header=header_toml, cache=cache_root(),
                     comment=f"added from the {analyses.get(analysis).title} page on {time.strftime('%Y-%m-%d %H:%M')}")
    return Added(target, study.steps[-1].index + 1, created, tuple(notes))


def _pooling(value: Any) -> str:
    try:
        return pooling_name(value)
    except (ValueError, TypeError):
        return str(value)


def _add_step(analysis: str, settings: dict, selection: Selection) -> None:
    """Button callback of "Add to study": write the step, or keep the StudyError to show; nothing half-written."""
    message_key = f"study_add_message_{analysis}"
    try:
        target = study_target(st.session_state.get("study_add_file", NEW_FILE),
                              st.session_state.get("study_add_name", ""))
        added = append_step(target, analysis, settings, selection, st.session_state.get("study_add_name", "").strip())
    except StudyError as error:
        st.session_state[message_key] = ("error", f"Nothing written: {error}")
        return
    st.session_state["study_add_file"] = str(added.path)  # the next step goes to the same file
    verb = "Created" if added.created else "Appended to"
    st.session_state[message_key] = ("success", f"{verb} `{added.path}`: step {added.step} ({analysis}). Run it "
                                                f"with `{study_command('run', added.path)}`."
                                     + "".join(f"\n\n{note}" for note in added.notes))


def add_to_study(analysis: str, settings: Mapping[str, Any], selection: Selection, *, notes: Sequence[str] = (),
                 unavailable: str = "") -> None:
    """A popover that appends the page's current `settings` as a `analysis` step of a study file (see module doc).

    `notes` say how the step will differ from the page (shown above the button); `unavailable` says why the page's
    settings cannot be a study step at all (the button is then disabled, so no step computing something else is
    written)."""
    with st.popover("Add to study", help="Save this page's current settings as a step of a study file, to run "
                                         "later with every other step, headless (`python -m core study run`)."):
        files = [path for folder in (user_studies(), REPO_STUDIES) if folder.is_dir()
                 for path in sorted(folder.glob("*.toml"))]
        options = [NEW_FILE, *map(str, files)]
        if st.session_state.get("study_add_file") not in options:
            st.session_state.pop("study_add_file", None)
        choice = st.selectbox(
            "Study file", options, key="study_add_file", persist_state="session",
            format_func=lambda value: "New study file…" if value == NEW_FILE else shown_path(Path(value)),
            help=f"A study file of yours (in {user_studies()}), an example of the repository's studies/ folder "
                 "(allowed, but better copied), or a new file in your folder.")
        if choice == NEW_FILE:
            st.text_input("New study name", value="my_study", key="study_add_name", persist_state="session",
                          help="File name of the new study (<name>.toml in your studies folder) and its `name`. It "
                               "starts with the sidebar's dataset, encoders, layers and pooling. An existing name "
                               "gets the step appended.")
        for note in notes:
            st.warning(note)
        if unavailable:
            st.warning(unavailable)
        st.button("Add this step", key=f"study_add_{analysis}", on_click=_add_step,
                  args=(analysis, dict(settings), selection), disabled=bool(unavailable),
                  help=f"Appends a [[steps]] table with analysis = \"{analysis}\" and this page's settings; the file "
                       "is checked as the CLI would check it before anything is written."
                       + (f" Disabled: {unavailable}" if unavailable else ""))
        kind, message = st.session_state.get(f"study_add_message_{analysis}", ("", ""))
        if kind == "success":
            st.success(message)
        elif kind == "error":
            st.error(message)
