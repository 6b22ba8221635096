"""The shared sidebar: dataset, encoders, layers, pooling, device, batch size.

Every page draws it (AppTest drops sidebar elements drawn by app.py under st.navigation), and
Streamlit treats the same key on two pages as two widgets, whose state a page switch drops.
So every sidebar widget has `persist_state="session"` (its value follows the session across
pages), and dataset, path, layers and pooling are bound to the URL (`bind="query-params"`), the
encoders written there as `?encoder=<spec>`: a reload or a shared link reproduces them.
"""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from core.data.datasets import SKIPPING_KINDS, DatasetError, ImageSet, with_skip_option
from core.data.image_check import check_images, image_problems_message
from core.data.neural import RDMS_OPTION, describe_groups
from core.data.roots import ROOTS_VARIABLE, data_roots
from core.encoders.catalogue import CATALOGUE, CATALOGUE_BY_SPEC, PARADIGM_HELP, PARADIGMS, entries_of
from core.encoders.specs import (DEFAULT_DIM, FINAL_LAYER, FLAT, MAX_DIM, MIN_DIM, POOLINGS, SPEC_HELP,
                                 EncoderSpecError, parse_spec)
from core.jobs import ACTIVE
from views.ui import resources
from views.ui.background import PAGE_KEY, jobs_panel
from views.ui.settings import IN_URL, in_url, set_by_callback, set_choice

DATASET_KINDS = {
    "demo": "Demo (procedural, offline)",
    "oasis": "OASIS folder",
    "things": "THINGS folder",
    "folder": "Image folder (one sub-folder per category)",
    "manifest": "Manifest CSV",
    "embeddings": "Embeddings (no images)",
    "neural": "Neural / behavioural RDMs (e.g. the 92-image set)",
}
PATH_INPUTS = {  # dataset kind -> (placeholder, help) of its Path input; "folder"'s serves oasis, things, manifest
    "folder": ("/data/oasis", "Folder (or CSV file for a manifest) on the machine running RepScope."),
    "embeddings": ("/data/gwtune/THINGS",
                   "A folder (every .npy/.txt/.csv matrix in it is one representation of the same N items, named by "
                   "its file stem) or comma-separated files. Each matrix is (N, d) or (1, N, d); a CSV may carry item "
                   "ids in its first column. A one-hot category CSV in the folder (id column + 0/1 columns) gives the "
                   "items' ids and categories."),
    "neural": ("/data/kriegeskorte92",
               "A folder holding rdms/<group>.npy per reference group: (N, N) or a condensed N(N-1)/2 vector for one "
               "subject, (S, N, N) for S subjects, (S, R, N, N) for R sessions per subject (averaged per subject), "
               "or rdms/<group>/<subject>.npy; rdms/model_<name>.npy are model RDMs, not references. The items: "
               "stimuli.csv (a `path` column to the images, `category`, one row per RDM row) or images/ sorted by "
               "name; with neither, the set holds RDMs only. README: Datasets."),
}
# Pages that read only a dataset's representations; the others need its images.
REPRESENTATION_PAGES = ("Alignment", "Similarity", "Explore")
DEFAULT_ENCODERS = ("bundled:efficientnet_lite0", "pixels:32")
DEFAULT_BATCH_SIZE = 32
KEEP = {"persist_state": "session"}  # every sidebar widget: survives page switches
SHARE = IN_URL  # ... and lives in the URL
LOOPBACK = ("localhost", "127.0.0.1", "::1")  # .streamlit/config.toml binds to localhost; "" = every interface
FOREGROUND_CHECK_MAX = 2000  # images checked while the page waits (OASIS: 1.6 s for 900)
SKIP_LABEL = "Skip unreadable images"


@dataclass(frozen=True)
class Selection:
    """What the sidebar selected; `render_sidebar(page)` at the top of every page returns it."""

    image_set: ImageSet | None
    dataset_error: str
    encoders: tuple[str, ...]
    layers: dict  # encoder spec -> tuple of layer names
    pooling: str
    device: str
    batch_size: int
    dataset_spec: str = ""  # the dataset spec string, e.g. "demo" or "oasis:/data/oasis"

    def pooling_of(self, spec: str) -> str:
        """The pooling encoder `spec` uses for the sidebar's choice: its own default where it cannot do that one
        (flat as "flat:<dim>"; EncoderInfo.effective_pooling is the one rule). Pages ask here, never resolve it."""
        return resources.encoder_info(spec).effective_pooling(self.pooling)


def render_sidebar(page: str) -> Selection:
    """Draw the shared sidebar (same keys on every page, so choices carry over) and return the choice; `page` (the
    page's title) is where the jobs this run starts say they were asked for."""
    _unconfined_warning()
    st.session_state[PAGE_KEY] = page
    with st.sidebar:
        selection = _choices()
        jobs_panel()  # last, below the choices: which jobs hold the server's slots, whatever page this is
    return selection


def _choices() -> Selection:
    """The sidebar's dataset, encoders, layers and extraction settings (drawn inside `st.sidebar`)."""
    st.header("Data")
    image_set, dataset_error, dataset_spec = _dataset_controls()
    if image_set is not None and not image_set.has_images:
        st.caption(f"**Encoders** and **Extraction** are hidden: {image_set.name} holds representations only, no "
                   "images for an encoder to see. Your encoders, layers and pooling are kept for when you pick a "
                   "dataset with images.")
        return _kept_selection(image_set, dataset_spec)
    st.header("Encoders")
    encoders = _encoder_controls()
    layers = {spec: _layer_control(spec) for spec in encoders}
    st.header("Extraction")
    pooling = st.selectbox(
        "Pooling of block outputs", POOLINGS, key="pooling", **SHARE,
        help="How a block's output becomes one vector per image. auto = the architecture's default: "
             "cls (class token) for ViTs, gap (global average) for CNNs. mean = average of patch tokens "
             "(ViTs). flat = the whole token sequence or feature map, flattened and reduced by a seeded sparse "
             "random projection (one per layer, the same for every image and run) to the dimension below: "
             "spatial detail kept, memory bounded. An encoder that cannot do the chosen pooling uses its "
             "default. The `final` layer always uses the model's own pooled embedding (docs/science.md §1.2).")
    if pooling == FLAT:
        flat_dimension = st.number_input(
            "Flat dimension", MIN_DIM, MAX_DIM, step=512, **in_url("flat_dim", value=DEFAULT_DIM),
            help="Columns of the random projection of `flat` features. Euclidean and cosine distances between "
                 "images are kept to within a few % at 4096 (Johnson-Lindenstrauss); correlation distances are "
                 "not. Blocks smaller than this are stored unprojected (docs/science.md §1.2).")
        pooling = f"{FLAT}:{int(flat_dimension)}"
    devices = ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else []) + \
              (["mps"] if torch.backends.mps.is_available() else [])
    device = st.selectbox("Device", devices, key="device", **KEEP,
                          help="auto = CUDA GPU when present (bf16/fp16 autocast), else CPU.")
    batch_size = st.number_input("Batch size", 1, 1024, DEFAULT_BATCH_SIZE, step=8, key="batch_size", **KEEP,
                                 help="Images per forward pass. Lower it if you run out of memory.")
    return Selection(image_set, dataset_error, tuple(encoders), layers, pooling, device, int(batch_size),
                     dataset_spec)


def _kept_selection(image_set: ImageSet, dataset_spec: str) -> Selection:
    """The hidden Encoders and Extraction sections' choices as the session keeps them (their widgets' defaults before
    any). Pages of a dataset without images extract nothing, but "Add to study" still names the encoders: a study
    file needs them."""
    state = st.session_state
    encoders = tuple(state.get("encoders", DEFAULT_ENCODERS))
    layers = {spec: tuple(state.get(f"layers::{spec}", (FINAL_LAYER,))) for spec in encoders}
    pooling = state.get("pooling", POOLINGS[0])
    if pooling == FLAT:
        pooling = f"{FLAT}:{int(state.get('flat_dim', DEFAULT_DIM))}"
    return Selection(image_set, "", encoders, layers, pooling, state.get("device", "auto"),
                     int(state.get("batch_size", DEFAULT_BATCH_SIZE)), dataset_spec)


def _unconfined_warning() -> None:
    """A banner when the server listens beyond this machine while any path typed here can be read."""
    address = (st.get_option("server.address") or "").strip()
    try:
        confined = data_roots().confined
    except DatasetError as error:  # a malformed repscope.toml / secrets.toml: say so on every page
        st.error(str(error))
        return
    if address not in LOOPBACK and not confined:
        st.warning(f"This server listens on {address or 'every network interface'}, so anyone who reaches it can "
                   "make it read any file it can (dataset paths, manifests, weight files). Set "
                   f"{ROOTS_VARIABLE} to the data folders (README: Serving to a group) and restart.", icon="⚠️")


def _dataset_controls() -> tuple[ImageSet | None, str, str]:
    kind = st.selectbox("Dataset", list(DATASET_KINDS), format_func=DATASET_KINDS.get, key="dataset_kind", **SHARE,
                        help="Demo works offline. OASIS: folder with OASIS.csv and images/. THINGS: folder with "
                             "object_images/<concept>/. Image folder: root/<category>/<image>. Manifest: a CSV "
                             "with a `path` column plus label/target columns. Embeddings: representations without "
                             "images (e.g. GWTune's THINGS embeddings), one N × d matrix per file, for the "
                             + " and ".join(REPRESENTATION_PAGES) + " pages. Neural / behavioural RDMs: a folder "
                             "with per-subject RDMs in rdms/ and the stimuli (stimuli.csv or images/), like the "
                             "92-image set of Kriegeskorte et al. 2008; without stimuli it holds RDMs only.")
    path = embedding = categories = ""
    if kind != "demo":
        placeholder, help_text = PATH_INPUTS.get(kind, PATH_INPUTS["folder"])
        path = st.text_input("Path", key=f"dataset_path_{kind}", **SHARE, placeholder=placeholder,
                             help=help_text).strip()
    if kind == "embeddings":
        categories = st.text_input(
            "Category file (optional)", key="embeddings_categories", **SHARE,
            help="One-hot CSV (item id first, then one 0/1 column per category; first 1 = the category) or an "
                 "id,category CSV. Its id column gives the item ids, in the matrices' row order; without one the "
                 "folder's own category CSV is used, if any, else ids are item_0000, item_0001, …").strip()
    if kind == "things":
        embedding = st.text_input("Human embedding (optional)", key="things_embedding", **SHARE,
                                  help="SPoSE .txt (whitespace matrix) or .npy, shape (N, d) or (1, N, d), "
                                       "rows in unique-id order.").strip()
        categories = st.text_input("Category file (optional)", key="things_categories", **SHARE,
                                   help="27-category TSV (0/1 columns) or one-hot CSV indexed by unique id.").strip()
    rdms = "" if kind == "demo" else st.text_input(
        "RDM files (optional)", key="dataset_rdms", **SHARE,
        help="Comma-separated RDM files (or folders of one file per subject) of these same items, in their order: "
             "each is a neural / behavioural reference group named by its file stem; model_<name> files are "
             "model RDMs.").strip()
    skipping = kind in SKIPPING_KINDS and st.checkbox(
        SKIP_LABEL, key="skip_unreadable", **SHARE,
        help="Leave the images that cannot be decoded (corrupt, truncated, not an image) out of the dataset instead "
             "of stopping at them. Each image is decoded once when the dataset loads; the skipped files are listed "
             "here and named in the provenance of every export. Results with and without skipping are kept apart "
             "(the dataset's fingerprint names the skipped files).")
    if kind != "demo" and not path:
        return None, "Enter the dataset path in the sidebar.", ""
    spec = "demo" if kind == "demo" else f"{kind}:{path}"
    options = {"categories": categories} if kind == "embeddings" else {"embedding": embedding, "categories": categories}
    options[RDMS_OPTION] = rdms
    spec += "".join(f"|{name}={value}" for name, value in options.items() if value)
    spec = with_skip_option(spec, skipping)
    try:
        image_set = resources.image_set(spec)
    except DatasetError as error:
        st.error(str(error))
        return None, str(error), spec
    if not image_set.has_images:
        held = ", ".join(filter(None, (f"{len(image_set.references)} representations" if image_set.references else "",
                                       f"{len(image_set.rdm_references)} RDM groups" if image_set.rdm_references
                                       else "")))
        st.caption(f"{image_set.name}: {len(image_set)} items, {held}, {len(image_set.categories)} categories, "
                   f"no images")
        _rdm_caption(image_set)
        return image_set, "", spec
    targets = "valence/arousal" if image_set.has_affect else "no V-A ratings"
    st.caption(f"{image_set.name}: {len(image_set)} images, {len(image_set.categories)} categories, {targets}")
    _rdm_caption(image_set)
    if image_set.skipped:
        st.warning(f"Left out {len(image_set.skipped)} unreadable image(s) ({SKIP_LABEL}): "
                   f"{'; '.join(image_set.skipped_labels)}. Every export's provenance names them.")
    elif not skipping:
        _image_check(image_set)
    return image_set, "", spec


def _rdm_caption(image_set: ImageSet) -> None:
    """The set's RDM reference groups (subjects, how sessions were read) and model RDMs, when it has any."""
    parts = ([f"RDM references: {describe_groups(image_set.rdm_references)}"] if image_set.rdm_references else []) \
        + ([f"model RDMs: {', '.join(model.name for model in image_set.model_rdms)}"] if image_set.model_rdms else [])
    if parts:
        st.caption("; ".join(parts))


def _image_check(image_set: ImageSet) -> None:
    """Name every unreadable image when the dataset loads (decoding ~550 images/s: large sets in the background)."""
    if len(image_set) <= FOREGROUND_CHECK_MAX:
        problems = resources.image_problems(image_set.fingerprint, image_set)
    else:
        # Its own worker: the shared registry's one worker may be busy extracting for minutes.
        registry, key = resources.check_registry(), f"check|{image_set.fingerprint}"
        status = registry.status(key) or registry.submit(
            key, f"checking {image_set.name}",
            lambda report: check_images(image_set, report))
        if status.state in ACTIVE:
            st.fragment(_check_progress, run_every=1.0)(key)
            return
        if status.state == "failed":
            st.error(f"The image check of {image_set.name} failed: {status.error}")
            return
        problems = registry.result(key)
    if problems:
        st.warning(f"{image_problems_message(problems)} Or tick **{SKIP_LABEL}** above to leave them out.")


def _check_progress(key: str) -> None:
    """Progress of a background image check; reruns the page once it ends, so its result shows."""
    status = resources.check_registry().status(key)
    if status.state in ACTIVE:
        st.caption(f"Checking the images in the background: {status.done}/{status.total or '?'}; unreadable "
                   "files are listed here when it ends.")
    else:
        st.rerun(scope="app")


def _encoder_controls() -> list[str]:
    if "extra_encoders" not in st.session_state:
        st.session_state["extra_encoders"] = []
    lab = resources.finished_lab_specs()  # trained on the Objective lab page
    # The URL carries spec strings (`?encoder=…`), not the ✓/✗ labels a bound multiselect would store.
    linked = [spec for spec in st.query_params.get_all("encoder") if _valid_spec(spec)]
    paradigms = st.pills(
        "Paradigms", PARADIGMS, selection_mode="multi", key="encoder_paradigms", **KEEP,
        help="Which catalogue encoders the list below offers, by how they were trained (none picked = all): "
             + "; ".join(f"**{name}**: {text}" for name, text in PARADIGM_HELP.items()) + ".")
    offered = entries_of(paradigms) if paradigms else CATALOGUE
    # Specs added by hand, in a link, or by a callback (lab Open, tests) are offered, not dropped.
    options = list(dict.fromkeys([entry.spec for entry in offered] + lab + st.session_state["extra_encoders"]
                                 + linked + list(st.session_state.get("encoders", []))))

    def label(spec: str) -> str:
        ok, _ = resources.encoder_availability(spec)
        entry = CATALOGUE_BY_SPEC.get(spec)
        return f"{'✓' if ok else '✗'} {entry.label} · {entry.paradigm}" if entry else f"{'✓' if ok else '✗'} {spec}"

    # Callbacks write this key (add an encoder, Open on its page), so the default applies only before it exists.
    set_by_callback("encoders")  # (and their mark is spent here: this widget passes no default once it has a value)
    default = None if "encoders" in st.session_state else (linked or list(DEFAULT_ENCODERS))
    chosen = st.multiselect(
        "Encoders", options, default=default, format_func=label, key="encoders", **KEEP,
        help="✓ = usable offline right now; ✗ = pretrained weights not cached here (needs network once, or "
             "a local file via file:...). Untrained twins are random-init controls; pixels:N is raw pixels.")
    if st.query_params.get_all("encoder") != chosen:
        st.query_params["encoder"] = chosen
    unusable: dict[str, list[str]] = {}  # one line per reason, not per encoder (a paradigm adds ten at once)
    for spec in chosen:
        ok, reason = resources.encoder_availability(spec)
        if not ok:
            unusable.setdefault(reason, []).append(f"`{spec}`")
    for reason, names in unusable.items():
        st.caption(f"✗ {', '.join(names)}: {reason}")
    with st.form("add_encoder", clear_on_submit=True, border=False):
        st.text_input("Add an encoder by spec", placeholder="timm:convnext_tiny.fb_in1k", help=SPEC_HELP,
                      key="new_encoder_spec")
        st.form_submit_button("Add", help="Validate the spec and add it to the list above.", on_click=_add_encoder)
    if st.session_state.get("encoder_spec_error"):
        st.error(st.session_state["encoder_spec_error"])
    add_columns = st.columns([3, 2], vertical_alignment="bottom")
    add_columns[0].selectbox("Add a whole paradigm", PARADIGMS, key="paradigm_to_add", **KEEP,
                             help="Every catalogue encoder of this paradigm joins the list above (✗ ones need their "
                                  "weights downloaded once).")
    add_columns[1].button("Add all", key="add_paradigm", on_click=_add_paradigm,
                          help="Add every catalogue encoder of the chosen paradigm to the selection.")
    return chosen


def _valid_spec(spec: str) -> bool:
    try:
        parse_spec(spec)
    except EncoderSpecError:
        return False
    return True


def _add_encoder() -> None:
    """Form callback: runs before the widgets are drawn, so it may change the encoder selection."""
    st.session_state["encoder_spec_error"] = ""
    typed = st.session_state.get("new_encoder_spec", "").strip()
    try:
        spec = str(parse_spec(typed))
        resources.encoder_info(spec)
    except (EncoderSpecError, ValueError, RuntimeError) as error:
        st.session_state["encoder_spec_error"] = str(error)
        return
    if spec not in st.session_state["extra_encoders"] and spec not in CATALOGUE_BY_SPEC:
        st.session_state["extra_encoders"].append(spec)
    selected = st.session_state.get("encoders", list(DEFAULT_ENCODERS))
    if spec not in selected:
        set_choice("encoders", [*selected, spec])


def _add_paradigm() -> None:
    """Button callback: append every catalogue encoder of the chosen paradigm to the selection."""
    paradigm = st.session_state.get("paradigm_to_add", PARADIGMS[0])
    selected = st.session_state.get("encoders", list(DEFAULT_ENCODERS))
    set_choice("encoders", list(dict.fromkeys([*selected, *(entry.spec for entry in entries_of([paradigm]))])))
    if st.session_state.get("encoder_paradigms") and paradigm not in st.session_state["encoder_paradigms"]:
        set_choice("encoder_paradigms", [*st.session_state["encoder_paradigms"], paradigm])


def _encoder_label(spec: str) -> str:
    return CATALOGUE_BY_SPEC[spec].label if spec in CATALOGUE_BY_SPEC else spec


def _layer_control(spec: str) -> tuple[str, ...]:
    try:
        layers = resources.encoder_info(spec).layers
    except (ValueError, RuntimeError) as error:
        st.error(f"{spec}: {error}")
        return ()
    chosen = st.multiselect(
        f"Layers of {_encoder_label(spec)}", layers, **in_url(f"layers::{spec}", default=[layers[-1]]),
        help="Blocks from shallow to deep; `final` is the model's pooled (CLIP: projected) embedding. "
             "All selected layers come out of one forward pass (docs/science.md §1.2).")
    return tuple(name for name in layers if name in chosen)


def page_start(title: str, caption: str, *, needs_images: bool = True) -> tuple[Selection, ImageSet]:
    """Sidebar, title and caption of an analysis page; stops the page with the reason when no dataset loads,
    or when the page needs images and the dataset has none."""
    selection = render_sidebar(title)
    st.title(title)
    st.caption(caption)
    if selection.image_set is None:
        st.info(selection.dataset_error)
        st.stop()
    if needs_images:
        require_images(selection.image_set, title)
    return selection, selection.image_set


def require_images(image_set: ImageSet, page: str) -> None:
    """Stop a page that needs images, saying why, when the dataset holds representations only."""
    if not image_set.has_images:
        groups = f", {len(image_set.rdm_references)} RDM groups" if image_set.rdm_references else ""
        st.info(f"The dataset **{image_set.name}** holds representations only ({len(image_set.references)} "
                f"embeddings{groups} of {len(image_set)} items), no images, so the **{page}** page cannot run on "
                "it. The " + " and ".join(f"**{name}**" for name in REPRESENTATION_PAGES)
                + " pages use its representations.")
        st.stop()


def switch_page(page: str) -> None:
    """Open another page from a page's script, keeping the sidebar's choices and the settings just selected.

    `st.switch_page` clears the URL, which Streamlit refuses while parameters are bound to widgets (every setting
    is); starting the new page from an empty query is allowed, and its widgets write their values (kept in
    session state) back into its URL.
    """
    st.switch_page(page, query_params={})
