"""Stored results reopened on their page: a stored result -> the session-state keys of the sidebar and of its page.

`OPENERS` holds one function per analysis: the table of which study setting sets which widget of its page.
`open_result` sets those keys in a button callback, before any widget is drawn; the Studies page then calls
`st.switch_page(pending_switch())` (a callback cannot: the navigation's pages are not registered yet when callbacks
run). With the same settings the page computes the same stored key, so it shows the stored result at once.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import streamlit as st

from core.analyses.affect_report import PREDICTIONS_KIND
from core.analyses.gwot import DEFAULT_EPS
from core.analyses.gwot_search import ALIGNMENT_KIND
from core.data.corruptions import DEFAULT_SEED, FAMILIES, parse_corruption
from core.data.transforms import AugmentationPipeline
from core.encoders.specs import FLAT, flat_dim
from core.features.results import ResultStore
from core.studies.run import STEP_KIND
from core.studies.spec import ANALYSES
from views.ui import resources
from views.ui.sidebar import set_choice

PAGES = {"affect": "views/affect.py", "probes": "views/probes.py", "similarity": "views/similarity.py",
         "alignment": "views/alignment.py", "manifolds": "views/manifolds.py",
         "inductive_bias": "views/inductive_bias.py"}
PAGE_TITLES = {"affect": "Affect", "probes": "Layer probes", "similarity": "Similarity", "alignment": "Alignment",
               "manifolds": "Manifolds", "inductive_bias": "Inductive bias"}
SWITCH_KEY = "studies_switch_to"  # set by open_result, read once by the Studies page


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
    if resamples:  # the study file's range is the page's (core.studies.spec.MIN_RESAMPLES)
        state["similarity_resamples"] = resamples
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
    store = store or resources.result_store()
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
    stored = resources.result_store().get(kind, key)
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
