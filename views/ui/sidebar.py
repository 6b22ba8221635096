"""The shared sidebar: dataset, encoders, layers, pooling, device, batch size.

Every page draws it (AppTest drops sidebar elements drawn by app.py under st.navigation), and
Streamlit treats the same key on two pages as two widgets: a page switch runs without the old
page's widgets, so their state is gone when the next page draws its own. The choices therefore
live in `st.session_state[KEPT]`, a dict no widget owns: a widget whose key is absent at the
start of a run (page switch) is restored from it, a present one (rerun on the same page, a
callback or test writing the key) is copied into it. Dataset, encoders, layers and pooling are
also written to the URL (`?dataset=…&encoder=…`), so a reload or a shared link reproduces them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import streamlit as st
import torch

from core.datasets import DatasetError, ImageSet
from core.encoders import CATALOGUE, SPEC_HELP, EncoderSpecError, parse_spec
from views.ui import resources

DATASET_KINDS = {
    "demo": "Demo (procedural, offline)",
    "oasis": "OASIS folder",
    "things": "THINGS folder",
    "folder": "Image folder (one sub-folder per category)",
    "manifest": "Manifest CSV",
}
DEFAULT_ENCODERS = ("bundled:efficientnet_lite0", "pixels:32")
CATALOGUE_LABELS = {entry.spec: entry.label for entry in CATALOGUE}
POOLINGS = ("auto", "cls", "mean", "gap")
DEFAULT_BATCH_SIZE = 32
KEPT = "sidebar_choices"  # session-state dict of every sidebar choice, owned by no widget


@dataclass(frozen=True)
class Selection:
    """What the sidebar selected; `render_sidebar()` at the top of every page returns it."""

    image_set: ImageSet | None
    dataset_error: str
    encoders: tuple[str, ...]
    layers: dict  # encoder spec -> tuple of layer names
    pooling: str
    device: str
    batch_size: int
    dataset_spec: str = ""  # the dataset spec string, e.g. "demo" or "oasis:/data/oasis"


def render_sidebar() -> Selection:
    """Draw the shared sidebar (choices kept across pages, see the module docstring) and return the choice."""
    _start_session_from_url()
    with st.sidebar:
        st.header("Data")
        image_set, dataset_error, dataset_spec = _dataset_controls()
        st.header("Encoders")
        encoders = _encoder_controls()
        layers = {spec: _layer_control(spec) for spec in encoders}
        st.header("Extraction")
        pooling = st.selectbox(
            "Pooling of block outputs", POOLINGS, key=_kept("pooling", POOLINGS[0], POOLINGS),
            help="How a block's output becomes one vector per image. auto = the architecture's default: "
                 "cls (class token) for ViTs, gap (global average) for CNNs. mean = average of patch tokens "
                 "(ViTs). An encoder that cannot do the chosen pooling uses its default. The `final` layer "
                 "always uses the model's own pooled embedding.")
        devices = ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else []) + \
                  (["mps"] if torch.backends.mps.is_available() else [])
        device = st.selectbox("Device", devices, key=_kept("device", devices[0], devices),
                              help="auto = CUDA GPU when present (bf16/fp16 autocast), else CPU.")
        batch_size = st.number_input("Batch size", 1, 1024, step=8, key=_kept("batch_size", DEFAULT_BATCH_SIZE),
                                     help="Images per forward pass. Lower it if you run out of memory.")
    _write_url(dataset_spec, encoders, layers, pooling)
    return Selection(image_set, dataset_error, tuple(encoders), layers, pooling, device, int(batch_size),
                     dataset_spec)


def set_choice(name: str, value: Any) -> None:
    """Set a sidebar choice ("encoders", "pooling", "device", "batch_size", "layers::<spec>") from a callback."""
    st.session_state.setdefault(KEPT, {})[name] = value
    st.session_state[name] = value


def _kept(name: str, default: Any, options: Sequence | None = None) -> str:
    """Widget key `name`, its value restored from KEPT on a page switch or adopted into KEPT otherwise.

    A kept value no longer among `options` (a layer list that changed, a device gone) falls back to
    `default`; a multiselect's list keeps the values that are still offered.
    """
    kept = st.session_state.setdefault(KEPT, {})
    value = st.session_state[name] if name in st.session_state else kept.get(name, default)
    if options is not None:
        if isinstance(value, (list, tuple)):
            value = [item for item in value if item in options]
        elif value not in options:
            value = default
    kept[name] = st.session_state[name] = value
    return name


def _start_session_from_url() -> None:
    """A new browser session (first visit, reload, shared link) starts from the URL's choices."""
    if KEPT in st.session_state:
        return
    kept = st.session_state[KEPT] = {}
    params = st.query_params
    if "dataset" in params:
        kind, _, rest = params["dataset"].partition(":")
        if kind in DATASET_KINDS:
            kept["dataset_kind"] = kind
            path, *options = rest.split("|")
            if kind != "demo":
                kept[f"dataset_path_{kind}"] = path
            for option in options:
                name, _, value = option.partition("=")
                if name in ("embedding", "categories"):
                    kept[f"things_{name}"] = value
    if "encoder" in params and "encoders" not in st.session_state:
        kept["encoders"] = params.get_all("encoder")
        kept["extra_encoders"] = [spec for spec in kept["encoders"] if spec not in CATALOGUE_LABELS]
    for entry in params.get_all("layers"):  # "<spec>=<layer>,<layer>"
        spec, _, names = entry.rpartition("=")
        if spec:
            kept[f"layers::{spec}"] = names.split(",") if names else []
    if params.get("pooling") in POOLINGS:
        kept["pooling"] = params["pooling"]


def _write_url(dataset_spec: str, encoders: Sequence[str], layers: dict, pooling: str) -> None:
    """Mirror the choices into the URL (only when they changed: each write is a message to the browser)."""
    wanted = {"dataset": dataset_spec or "demo", "encoder": list(encoders),
              "layers": [f"{spec}={','.join(names)}" for spec, names in layers.items()], "pooling": pooling}
    current = {key: st.query_params.get_all(key) for key in wanted}
    if any(current[key] != (value if isinstance(value, list) else [value]) for key, value in wanted.items()):
        st.query_params.from_dict(wanted)


def effective_pooling(spec: str, pooling: str) -> str:
    """The pooling an encoder will use for the sidebar choice (its default if unsupported)."""
    _, poolings = resources.encoder_layers(spec)
    return pooling if pooling in poolings else poolings[0]


def _dataset_controls() -> tuple[ImageSet | None, str, str]:
    kind = st.selectbox("Dataset", list(DATASET_KINDS), format_func=DATASET_KINDS.get,
                        key=_kept("dataset_kind", "demo", list(DATASET_KINDS)),
                        help="Demo works offline. OASIS: folder with OASIS.csv and images/. THINGS: folder with "
                             "object_images/<concept>/. Image folder: root/<category>/<image>. Manifest: a CSV "
                             "with a `path` column plus label/target columns.")
    path = embedding = categories = ""
    if kind != "demo":
        path = st.text_input("Path", key=_kept(f"dataset_path_{kind}", ""), placeholder="/data/oasis",
                             help="Folder (or CSV file for a manifest) on the machine running RepScope.").strip()
    if kind == "things":
        embedding = st.text_input("Human embedding (optional)", key=_kept("things_embedding", ""),
                                  help="SPoSE .txt (whitespace matrix) or .npy, shape (N, d) or (1, N, d), "
                                       "rows in unique-id order.").strip()
        categories = st.text_input("Category file (optional)", key=_kept("things_categories", ""),
                                   help="27-category TSV (0/1 columns) or one-hot CSV indexed by unique id.").strip()
    if kind != "demo" and not path:
        return None, "Enter the dataset path in the sidebar.", ""
    spec = "demo" if kind == "demo" else f"{kind}:{path}"
    options = {"embedding": embedding, "categories": categories}
    spec += "".join(f"|{name}={value}" for name, value in options.items() if value)
    try:
        image_set = resources.image_set(spec)
    except DatasetError as error:
        st.error(str(error))
        return None, str(error), spec
    targets = "valence/arousal" if image_set.has_affect else "no V-A ratings"
    st.caption(f"{image_set.name}: {len(image_set)} images, {len(image_set.categories)} categories, {targets}")
    return image_set, "", spec


def _encoder_controls() -> list[str]:
    kept = st.session_state[KEPT]
    extra = kept.setdefault("extra_encoders", [])  # specs added by hand, offered on every page
    lab = resources.finished_lab_specs()  # trained on the Objective lab page
    options = list(dict.fromkeys([entry.spec for entry in CATALOGUE] + lab + extra))
    # A spec selected elsewhere (lab Open, a link, a test) joins the options rather than being dropped.
    for spec in st.session_state.get("encoders", kept.get("encoders", [])):
        if spec not in options:
            options.append(spec)
            extra.append(spec)

    def label(spec: str) -> str:
        ok, _ = resources.encoder_availability(spec)
        return f"{'✓' if ok else '✗'} {CATALOGUE_LABELS.get(spec, spec)}"

    chosen = st.multiselect(
        "Encoders", options, format_func=label, key=_kept("encoders", list(DEFAULT_ENCODERS), options),
        help="✓ = usable offline right now; ✗ = pretrained weights not cached here (needs network once, or "
             "a local file via file:...). Untrained twins are random-init controls; pixels:N is raw pixels.")
    for spec in chosen:
        ok, reason = resources.encoder_availability(spec)
        if not ok:
            st.caption(f"✗ `{spec}`: {reason}")
    with st.form("add_encoder", clear_on_submit=True, border=False):
        st.text_input("Add an encoder by spec", placeholder="timm:convnext_tiny.fb_in1k", help=SPEC_HELP,
                      key="new_encoder_spec")
        st.form_submit_button("Add", help="Validate the spec and add it to the list above.", on_click=_add_encoder)
    if st.session_state.get("encoder_spec_error"):
        st.error(st.session_state["encoder_spec_error"])
    return chosen


def _add_encoder() -> None:
    """Form callback: runs before the widgets are drawn, so it may change the encoder selection."""
    st.session_state["encoder_spec_error"] = ""
    typed = st.session_state.get("new_encoder_spec", "").strip()
    try:
        spec = str(parse_spec(typed))
        resources.encoder_layers(spec)
    except (EncoderSpecError, ValueError, RuntimeError) as error:
        st.session_state["encoder_spec_error"] = str(error)
        return
    kept = st.session_state.setdefault(KEPT, {})
    extra = kept.setdefault("extra_encoders", [])
    if spec not in extra and spec not in CATALOGUE_LABELS:
        extra.append(spec)
    selected = st.session_state.get("encoders", kept.get("encoders", list(DEFAULT_ENCODERS)))
    if spec not in selected:
        set_choice("encoders", [*selected, spec])


def _layer_control(spec: str) -> tuple[str, ...]:
    try:
        layers, _ = resources.encoder_layers(spec)
    except (ValueError, RuntimeError) as error:
        st.error(f"{spec}: {error}")
        return ()
    chosen = st.multiselect(
        f"Layers of {CATALOGUE_LABELS.get(spec, spec)}", layers, key=_kept(f"layers::{spec}", [layers[-1]], layers),
        help="Blocks from shallow to deep; `final` is the model's pooled (CLIP: projected) embedding. "
             "All selected layers come out of one forward pass.")
    return tuple(name for name in layers if name in chosen)


def page_start(title: str, caption: str) -> tuple[Selection, ImageSet]:
    """Sidebar, title and caption of an analysis page; stops the page with the reason when no dataset loads."""
    selection = render_sidebar()
    st.title(title)
    st.caption(caption)
    if selection.image_set is None:
        st.info(selection.dataset_error)
        st.stop()
    return selection, selection.image_set
