"""Studies in the app: study files and their steps' state, stored results reopened on their page, "Add to study".

Three things the Studies page and the analysis pages share:

- reading: every `*.toml` under the repository's `studies/` and `<cache>/studies/`, validated by `load_study`
  (cached per file version), each step's state from `study_status`, the stored results of the ResultStore;
- opening: a stored result -> the session-state keys of the sidebar and of its page (`OPENERS`, one function
  per analysis: the table of which study setting sets which widget), set in a button callback before any
  widget is drawn; the Studies page then calls `st.switch_page` (a callback cannot: the navigation's pages are
  not registered yet when callbacks run). With the same settings the page computes the same stored key, so it
  shows the stored result at once;
- writing: `add_to_study(analysis, settings, selection)` draws a popover that appends the page's current
  settings as a `[[steps]]` table (TOML written by hand: only the keys `ANALYSES[analysis]` knows), validated
  with `load_study` before anything is written (`atomic_write`).
"""
from __future__ import annotations

import math
import re
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd
import streamlit as st

from core.analyses.affect_report import PREDICTIONS_KIND
from core.analyses.gwot import DEFAULT_EPS
from core.analyses.gwot_search import ALIGNMENT_KIND
from core.data.corruptions import DEFAULT_SEED, FAMILIES, parse_corruption
from core.data.transforms import AugmentationPipeline
from core.encoders.specs import FLAT, flat_dim, pooling_name
from core.features.results import ResultStore
from core.paths import atomic_write, cache_root
from core.studies.run import STEP_KIND, StepStatus, study_status
from core.studies.spec import ANALYSES, COMMON, Study, StudyError, load_study
from views.ui.sidebar import Selection, set_choice

REPO_STUDIES = Path(__file__).resolve().parents[2] / "studies"  # example study files, in the repository
RESULT_KINDS = (STEP_KIND, ALIGNMENT_KIND, PREDICTIONS_KIND)  # the stored results the page lists
PAGES = {"affect": "views/affect.py", "probes": "views/probes.py", "similarity": "views/similarity.py",
         "alignment": "views/alignment.py", "manifolds": "views/manifolds.py",
         "inductive_bias": "views/inductive_bias.py"}
PAGE_TITLES = {"affect": "Affect", "probes": "Layer probes", "similarity": "Similarity", "alignment": "Alignment",
               "manifolds": "Manifolds", "inductive_bias": "Inductive bias"}
SWITCH_KEY = "studies_switch_to"  # set by open_result, read once by the Studies page
NEW_FILE = ""  # the study-file picker's "new file" entry
SIMILARITY_MIN_RESAMPLES = 20  # the Similarity page's smallest number of bootstrap resamples


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


def study_or_error(path: Path) -> Study | str:
    """The validated study, or the StudyError's message (file, line, key, what is allowed)."""
    try:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = None  # load_study says it cannot read the file
    return _validated(str(path), stamp, str(cache_root()))


@st.cache_resource(max_entries=32, ttl=600, show_spinner="Validating the study file…")
def _validated(path: str, stamp: tuple | None, cache: str) -> Study | str:
    """`load_study` once per file version (loading datasets and describing encoders takes a while)."""
    try:
        return load_study(path, cache)
    except StudyError as error:
        return str(error)


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
        "settings": "; ".join(f"{key}={compact(value)}" for key, value in status.step.settings.items()
                              if value is not None and key not in COMMON)} for status in step_statuses])


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

def result_store() -> ResultStore:
    return ResultStore(cache_root() / "results")


def stored_entries() -> list[dict]:
    """The meta of every stored study step, alignment and out-of-fold prediction, newest first."""
    store = result_store()
    entries = [meta for kind in RESULT_KINDS for meta in store.entries(kind)]
    return sorted(entries, key=lambda meta: -meta.get("stored_at", 0))


def stored_time(meta: Mapping) -> str:
    stamp = meta.get("stored_at")
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else ""


def entries_table(entries: Sequence[Mapping]) -> pd.DataFrame:
    return pd.DataFrame([{"kind": meta["kind"], "label": meta.get("label", ""), "dataset": meta.get("dataset", ""),
                          "stored": stored_time(meta), "key": meta["key"]} for meta in entries],
                        columns=["kind", "label", "dataset", "stored", "key"])


def entry_id(meta: Mapping) -> str:
    return f"{meta['kind']}/{meta['key']}"


class OpenError(ValueError):
    """A stored result that cannot be opened on a page (says why)."""


@dataclass(frozen=True)
class Opening:
    """Where a stored result opens: the analysis page, the session state to set first, what is not restored."""

    analysis: str
    state: dict
    notes: tuple[str, ...] = ()

    @property
    def page(self) -> str:
        return PAGES[self.analysis]

    @property
    def title(self) -> str:
        return PAGE_TITLES[self.analysis]


# One function per analysis: a study step's settings (every key of ANALYSES[analysis], defaults filled, as stored
# in the step's meta) and that meta -> (the page's widget values by session-state key, notes on what differs).
# The sidebar's dataset, encoders, layers and pooling are set by `sidebar_state` for all of them.

def alignment_widgets(settings: Mapping, meta: Mapping) -> tuple[dict, list[str]]:
    """views/alignment.py: its `stored_key` hashes exactly these (the ε range per metric, as `alignment_settings`)."""
    metric = settings["metric"]
    low, high = settings.get("eps_range") or DEFAULT_EPS[metric]
    targets = list(settings["targets"])
    target = meta.get("target") if meta.get("target") in targets else targets[0]
    return {"alignment_source": settings["source"], "alignment_target": target, "alignment_metric": metric,
            f"eps_low_{metric}": float(low), f"eps_high_{metric}": float(high),
            "alignment_n_eps": int(settings["n_eps"]), "alignment_n_inits": int(settings["n_inits"]),
            "alignment_init": settings["init"], "alignment_search": settings["search"],
            "alignment_warm_start": bool(settings["anneal"]), "alignment_backend": settings["backend"],
            "alignment_normalise": bool(settings["normalise"]), "alignment_max_iter": int(settings["max_iter"]),
            "alignment_compare": [name for name in targets if name != settings["source"]]}, []


def similarity_widgets(settings: Mapping, meta: Mapping) -> tuple[dict, list[str]]:
    """views/similarity.py: its `matrix_key` hashes the rows, columns, measures, RDM metric, k, σ and resamples."""
    encoders = list(meta.get("encoders") or [])
    resamples = int(settings["bootstrap"])
    notes = []
    state = {"similarity_measures": list(settings["measures"]), "similarity_kind": settings["matrix"],
             "similarity_rdm_metric": settings["rdm_metric"], "similarity_k": int(settings["k"]),
             "similarity_rbf_sigma": float(settings["rbf_sigma"]), "similarity_bootstrap": resamples > 0}
    if resamples:
        state["similarity_resamples"] = max(resamples, SIMILARITY_MIN_RESAMPLES)
        if resamples < SIMILARITY_MIN_RESAMPLES:
            notes.append(f"{resamples} bootstrap resamples: the page takes at least {SIMILARITY_MIN_RESAMPLES}, so it "
                         "opens with that many and computes its own matrix.")
    if settings["matrix"] == "pairs":
        state["similarity_sources"] = list(meta.get("rows") or settings.get("sources") or [])
    elif settings["matrix"] == "layers":
        state["similarity_rows_encoder"] = settings.get("rows_encoder") or encoders[0]
        state["similarity_columns_encoder"] = settings.get("columns_encoder") or encoders[min(1, len(encoders) - 1)]
    else:
        references = meta.get("references") or settings.get("references")
        if references:
            state["similarity_references"] = list(references)
    return state, notes


def affect_widgets(settings: Mapping, meta: Mapping) -> tuple[dict, list[str]]:
    """views/affect.py: schemes, K, the geometry scheme (default: the first scheme), z-scored axes, bins."""
    schemes = list(settings["schemes"])
    return {"affect_schemes": schemes, "affect_geometry_scheme": settings.get("geometry_scheme") or schemes[0],
            "affect_zscore": bool(settings["zscore"]), "affect_bins": int(settings["bins"]),
            "affect_k": int(settings["n_splits"])}, []


def probes_widgets(settings: Mapping, meta: Mapping) -> tuple[dict, list[str]]:
    """views/probes.py: the affect and category schemes and K (every layer, whatever the sidebar's layers)."""
    return {"probes_scheme": settings["scheme"], "probes_category_scheme": settings["category_scheme"],
            "probes_k": int(settings["n_splits"])}, []


def manifold_widgets(settings: Mapping, meta: Mapping) -> tuple[dict, list[str]]:
    """views/manifolds.py: views per image, images per class, r_s, the map; CLAMP's default pipeline, as studies use."""
    pipeline = AugmentationPipeline()
    return {"manifold_pairs": _layer_labels(meta), "manifold_m": int(settings["m"]),
            "manifold_per_class": int(settings["images_per_class"]), "manifold_rs": float(settings["radius_scale"]),
            "manifold_map": settings["map"], "manifold_map_param": int(settings["map_parameter"]),
            "manifold_brightness": pipeline.brightness, "manifold_contrast": pipeline.contrast,
            "manifold_saturation": pipeline.saturation, "manifold_hue": pipeline.hue,
            "manifold_crop": pipeline.crop_scale[0]}, []


GRID_SIZES = (2, 3, 4, 6, 7, 8, 14, 16, 28)  # the levels views/inductive_bias.py offers
GAMMAS = (0.2, 0.33, 0.5, 0.67, 1.5, 2.0, 2.5, 3.0)


def bias_widgets(settings: Mapping, meta: Mapping) -> tuple[dict, list[str]]:
    """views/inductive_bias.py: corruptions as families and levels, per-image permutations, the probes' settings."""
    corruptions = [parse_corruption(name) for name in settings["corruptions"]]
    notes = []
    levels: dict[str, list] = {}
    for corruption in corruptions:
        options = GAMMAS if corruption.family == "gamma" else GRID_SIZES
        match = [option for option in options if math.isclose(option, corruption.level)]
        if match:
            levels.setdefault(corruption.family, []).append(match[0])
        else:
            notes.append(f"{corruption.name}: the page offers no such level.")
    per_image = {corruption.per_image for corruption in corruptions if corruption.shuffles}
    if len(per_image) > 1:
        notes.append("The step mixes fixed and per-image permutations; the page uses one kind for all.")
    families = [family for family in FAMILIES if family in levels]
    return {"bias_pairs": _layer_labels(meta), "bias_families": families,
            **{f"bias_levels_{family}": levels[family] for family in families},
            "bias_per_class": int(settings["images_per_class"]), "bias_k": int(settings["k"]),
            "bias_scheme": settings["scheme"], "bias_n_splits": int(settings["n_splits"]),
            "bias_train_on": settings["train_on"], "bias_seed": DEFAULT_SEED,
            "bias_per_image": any(per_image)}, notes


OPENERS: dict[str, Callable[[Mapping, Mapping], tuple[dict, list[str]]]] = {
    "alignment": alignment_widgets, "similarity": similarity_widgets, "affect": affect_widgets,
    "probes": probes_widgets, "manifolds": manifold_widgets, "inductive_bias": bias_widgets}


def _layer_labels(meta: Mapping) -> list[str]:
    """`<spec> · <layer>` of every layer of a stored step, as the pages' encoder · layer pickers name them."""
    layers = meta.get("layers") or {}
    return [f"{spec} · {layer}" for spec in meta.get("encoders") or [] for layer in layers.get(spec, [])]


def dataset_state(spec: str) -> dict:
    """The sidebar's dataset widgets for a dataset spec (`demo`, `oasis:/data/oasis`, `things:/x|embedding=/e.npy`)."""
    if spec == "demo":
        return {"dataset_kind": "demo"}
    kind, separator, argument = spec.partition(":")
    if not separator or kind not in ("oasis", "things", "folder", "manifest", "embeddings"):
        raise OpenError(f"dataset {spec!r} is not a dataset spec the sidebar can select")
    if kind not in ("things", "embeddings"):
        return {"dataset_kind": kind, f"dataset_path_{kind}": argument}
    root, *options = argument.split("|")
    values = dict(option.partition("=")[::2] for option in options)
    state = {"dataset_kind": kind, f"dataset_path_{kind}": root}
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
    store = store or result_store()
    if kind == STEP_KIND:
        return _step_opening(meta)
    if kind == ALIGNMENT_KIND:
        step = _step_of_alignment(store, meta["key"])
        if step is not None:
            return _step_opening({**step, "target": meta.get("target")})
        return _page_alignment_opening(meta)
    if kind == PREDICTIONS_KIND:
        return _predictions_opening(meta)
    raise OpenError(f"results of kind {kind!r} do not open on a page")


def _step_opening(meta: Mapping) -> Opening:
    analysis = meta.get("analysis")
    if analysis not in OPENERS:
        raise OpenError(f"unknown analysis {analysis!r}")
    settings = {**{key: option.default for key, option in ANALYSES[analysis].items()}, **(meta.get("settings") or {})}
    widgets, notes = OPENERS[analysis](settings, meta)
    # The Layer probes page reads every layer whatever the sidebar's layers; leave those as they are.
    layers = None if analysis == "probes" else meta.get("layers")
    state = {**sidebar_state(meta.get("dataset"), meta.get("encoders"), layers, meta.get("pooling")), **widgets}
    return Opening(analysis, state, tuple(notes))


def _step_of_alignment(store: ResultStore, key: str) -> dict | None:
    """The stored study step whose alignment this is (its `matching` table names every alignment it stored)."""
    for meta in store.entries(STEP_KIND):
        if meta.get("analysis") != "alignment" or "matching" not in meta.get("tables", ()):
            continue
        stored = store.get(STEP_KIND, meta["key"])
        try:
            keys = set(stored.table("matching")["alignment_key"]) if stored else set()
        except (OSError, ValueError, KeyError):
            continue
        if key in keys:
            return dict(stored.meta)
    return None


def _model_layer(label: str) -> tuple[str, str] | None:
    """(spec, layer) of an encoder-layer source `<spec> · <layer>`; None for `human · …` and `upload · …`."""
    if label.startswith(("human · ", "upload · ")) or " · " not in label:
        return None
    spec, _, layer = label.rpartition(" · ")
    return spec, layer


def _page_alignment_opening(meta: Mapping) -> Opening:
    """An alignment the Alignment page stored: its pair and metric (and its search, where the meta records it)."""
    source, target, metric = meta.get("source"), meta.get("target"), meta.get("metric", "cosine")
    if not source or not target:
        raise OpenError("this alignment does not record its source and target")
    if any(name.startswith("upload · ") for name in (source, target)):
        raise OpenError("an uploaded matrix is not stored; upload it again on the Alignment page")
    search = meta.get("search_settings")
    notes = []
    settings = {key: option.default for key, option in ANALYSES["alignment"].items()}
    settings |= {"source": source, "targets": [target], "metric": metric}
    if search:
        settings |= {"eps_range": search["eps_range"], "n_eps": search["n_eps"], "n_inits": search["n_inits"],
                     "init": search["init"], "search": search["search"], "anneal": search["warm_start"],
                     "backend": search["backend"], "max_iter": search["max_iter"],
                     "normalise": bool(meta.get("normalise", False))}
        widgets, _ = alignment_widgets(settings, {"target": target})
    else:
        widgets = {"alignment_source": source, "alignment_target": target, "alignment_metric": metric}
        notes.append("Stored by the Alignment page without its search settings: the pair and the RDM metric are "
                     "restored, the ε range, inits and the rest keep their current values (the page shows the stored "
                     "alignment when they match the ones it was run with).")
    layers: dict[str, list[str]] = {}
    for label in (source, target):
        found = _model_layer(label)
        if found:
            layers.setdefault(found[0], []).append(found[1])
    dataset = meta.get("dataset")
    try:
        sidebar = sidebar_state(dataset, list(layers), layers, None)
    except OpenError:
        sidebar = sidebar_state(None, list(layers), layers, None)
        notes.append(f"Dataset {dataset!r} is a name, not a spec: the sidebar's dataset stays as it is.")
    return Opening("alignment", {**sidebar, **widgets}, tuple(notes))


def _predictions_opening(meta: Mapping) -> Opening:
    """Out-of-fold predictions: the Affect page with their encoder, layer, scheme (label `<spec> [<layer>] · …`)."""
    match = re.match(r"^(?P<spec>.+) \[(?P<layer>[^\]]+)\] · ", meta.get("label", ""))
    scheme = meta.get("scheme")
    if not match or not scheme:
        raise OpenError("these predictions do not record their encoder, layer and scheme")
    spec, layer = match["spec"], match["layer"]
    state = {**sidebar_state(meta.get("dataset"), [spec], {spec: [layer]}, None),
             "affect_schemes": [scheme], "affect_geometry_scheme": scheme}
    return Opening("affect", state, ("Out-of-fold predictions record neither their dataset nor K: the Affect page "
                                     "opens on the sidebar's dataset and K, and reads these predictions where they "
                                     "match.",))


def open_result(kind: str, key: str) -> None:
    """Button callback: set the sidebar's and the page's widgets from a stored result, then switch to its page.

    Runs before any widget of the next run is drawn, so every key may be set (the pages' widgets keep
    `persist_state="session"` values; those of other pages are plain session state until their page draws them).
    The page script then calls `st.switch_page(pending_switch())`.
    """
    st.session_state["studies_open_error"] = ""
    stored = result_store().get(kind, key)
    try:
        if stored is None:
            raise OpenError("it is no longer stored")
        target = opening(kind, stored.meta)
    except OpenError as error:
        st.session_state["studies_open_error"] = f"Cannot open {kind} {key}: {error}."
        return
    for name, value in target.state.items():
        set_choice(name, value)
    # st.switch_page cannot run in a callback here (the navigation's pages are not registered yet at that point of
    # the rerun): the Studies page switches once its sidebar is drawn with these values (`pending_switch`).
    st.session_state[SWITCH_KEY] = target.page


def pending_switch() -> str | None:
    """The page an "Open on its page" click asked for (once), to `st.switch_page` to from the page's script."""
    return st.session_state.pop(SWITCH_KEY, None)


# --- writing study files ------------------------------------------------------------------------------------------

def toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    named = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    return '"' + "".join(named.get(char) or (f"\\u{ord(char):04X}" if ord(char) < 0x20 or ord(char) == 0x7F
                                             else char) for char in text) + '"'


def toml_value(value: Any) -> str:
    """A value in TOML syntax: booleans lowercase, floats by repr (round-trip exact), strings quoted, lists."""
    if hasattr(value, "item") and not isinstance(value, (list, tuple, str)):
        value = value.item()  # numpy scalars
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) in a study file")


def step_settings(analysis: str, settings: Mapping[str, Any]) -> dict:
    """The page's settings a step of `analysis` takes (keys of ANALYSES[analysis]), in its order, None left out."""
    known = ANALYSES[analysis]
    return {key: settings[key] for key in known if settings.get(key) is not None}


def selection_layers(selection: Selection) -> tuple[list[str], list[str]]:
    """(encoders with layers selected, one layer list for them): a study names one list for all its encoders."""
    encoders = [spec for spec in selection.encoders if selection.layers.get(spec)]
    lists = [list(selection.layers[spec]) for spec in encoders]
    union = list(dict.fromkeys(layer for layers in lists for layer in layers))
    return encoders, union


def header_text(name: str, selection: Selection, encoders: Sequence[str], layers: Sequence[str]) -> str:
    """The top of a new study file: name, the sidebar's dataset, encoders, layers and pooling."""
    return "\n".join([
        "# Written by RepScope's \"Add to study\"; run it headless (the app never runs a study):",
        "#   python -m core study run <this file> [--engine ray]",
        f"name = {toml_string(name)}",
        f"datasets = {toml_value([selection.dataset_spec])}",
        f"encoders = {toml_value(list(encoders))}",
        f"layers = {toml_value(list(layers) or ['final'])}",
        f"pooling = {toml_string(selection.pooling)}", ""])


def step_text(analysis: str, settings: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> str:
    """One `[[steps]]` table: the analysis, step-level encoders/layers where given, then its settings."""
    lines = [f"# added from the {PAGE_TITLES[analysis]} page on {time.strftime('%Y-%m-%d %H:%M')}", "[[steps]]",
             f"analysis = {toml_string(analysis)}"]
    lines += [f"{key} = {toml_value(value)}" for key, value in {**(extra or {}), **step_settings(analysis, settings)}
              .items()]
    return "\n".join(lines) + "\n"


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
    if created:
        text = header_text(name or target.stem, selection, encoders, layers)
    else:
        try:
            text = target.read_text()
            header = tomllib.loads(text)
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise StudyError(f"{target}: cannot add a step to it: {error}") from None
        if header.get("encoders") != encoders:
            extra["encoders"] = encoders
        if analysis != "probes" and header.get("layers", ["final"]) != layers:
            extra["layers"] = layers
        datasets = header.get("datasets", [header.get("dataset")])
        if selection.dataset_spec not in datasets:
            notes.append(f"This study runs on {', '.join(map(str, datasets))}, not on the sidebar's dataset "
                         f"{selection.dataset_spec}.")
        if _pooling(header.get("pooling", "auto")) != selection.pooling:
            notes.append(f"This study's pooling is {header.get('pooling', 'auto')}, not the sidebar's "
                         f"{selection.pooling}.")
        text = text if text.endswith("\n") or not text else text + "\n"
    text += "\n" + step_text(analysis, settings, extra)
    study = _validate(target, text)
    atomic_write(target, lambda temporary: temporary.write_text(text))
    return Added(target, study.steps[-1].index + 1, created, tuple(notes))


def _pooling(value: Any) -> str:
    try:
        return pooling_name(value)
    except (ValueError, TypeError):
        return str(value)


def _validate(target: Path, text: str) -> Study:
    """`load_study` on the text in a temporary file named like the target; its errors name the target."""
    with tempfile.TemporaryDirectory(prefix="repscope-study-") as folder:
        trial = Path(folder) / target.name
        trial.write_text(text)
        try:
            return load_study(trial, cache_root())
        except StudyError as error:
            raise StudyError(str(error).replace(str(trial), str(target))) from None


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


def add_to_study(analysis: str, settings: Mapping[str, Any], selection: Selection) -> None:
    """A popover that appends the page's current `settings` as a `analysis` step of a study file (see module doc)."""
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
        st.button("Add this step", key=f"study_add_{analysis}", on_click=_add_step,
                  args=(analysis, dict(settings), selection),
                  help=f"Appends a [[steps]] table with analysis = \"{analysis}\" and this page's settings; the file "
                       "is checked as the CLI would check it before anything is written.")
        kind, message = st.session_state.get(f"study_add_message_{analysis}", ("", ""))
        if kind == "success":
            st.success(message)
        elif kind == "error":
            st.error(message)
