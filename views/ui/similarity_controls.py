"""The Similarity page's widgets beyond one setting each: uploads, the bootstrap toggle and the matrix's axes."""
from __future__ import annotations

import streamlit as st

from core.analyses.registry import Analysis
from core.analyses.representation import Representation, upload_representation
from core.data.datasets import ImageSet
from core.studies.analyses.similarity import MIN_RESAMPLES, axis_defaults
from views.ui.settings import in_url, setting_input
from views.ui.similarity_sources import item_ids

MAX_RESAMPLES, PAGE_RESAMPLES = 10000, 1000  # the page's bounds and default once the bootstrap is on


def uploaded_representations(entry: Analysis, image_set: ImageSet) -> dict[str, Representation]:
    """N × d embeddings uploaded for the dataset's items, by label; each one that cannot be read says why."""
    items = item_ids(image_set)
    uploads = st.file_uploader(
        "Add representations: N × d embeddings", type=["npy", "txt", "csv"], accept_multiple_files=True,
        key=entry.widget_key("uploads"),
        help=f"Each file: the {len(items)} items of {image_set.name} in the dataset's order, one row each ((1, N, d) "
             "GWTune arrays too), or a CSV with each row's image_id first (the order is then restored).")
    found = {}
    for upload in uploads or []:
        try:
            representation = upload_representation(upload.name, upload.getvalue(), items, rdm_allowed=False)
        except ValueError as error:
            st.error(str(error))
            continue
        found[representation.label] = representation
    return found


def bootstrap_input(entry: Analysis, toggle_container, number_container, *, setting: str = "bootstrap",
                    label: str = "Bootstrap CIs", on: bool = False,
                    help: str = "Resample the items with replacement (seeded) for 95% percentile CIs on every cell "
                                "and the paired tests; pairs of copies of one item are dropped.") -> int:
    """The number of bootstrap resamples of `setting`: a toggle (`on` by default or not), then how many (the
    setting's 0 = no bootstrap is the toggle off, so the number starts at the page's usual 1,000 rather than 0)."""
    on = toggle_container.toggle(label, **in_url(entry.widget_key("bootstrap_on"), value=on), help=help)
    resamples = number_container.number_input(
        "Resamples", MIN_RESAMPLES, MAX_RESAMPLES, **in_url(entry.widget_key(setting), value=PAGE_RESAMPLES),
        step=100, disabled=not on, help=entry.settings.describe(setting).help)
    return int(resamples) if on else 0


def axis_pickers(entry: Analysis, kind: str, sources: dict[str, Representation], encoders: list[str]) -> dict:
    """The matrix's axes the page picks for `kind` (as settings: sources, rows and columns encoders, or references),
    starting at `axis_defaults`; stops the page with advice when there is nothing to pick or nothing is picked."""
    defaults = axis_defaults(sources, encoders)

    def picked(name: str, label: str, options: list[str], container=st, **kwargs):
        return setting_input(entry, name, label, container=container, options=options, default=defaults[name],
                             **kwargs)

    if kind == "pairs":
        chosen = {"sources": picked("sources", "Sources", list(sources))}
    elif kind == "layers":
        if not encoders:
            st.info("Layer × layer needs extracted encoder layers: pick encoders and several layers in the sidebar "
                    "and extract them (Features above).")
            st.stop()
        pick = st.columns(2)
        chosen = {"rows_encoder": picked("rows_encoder", "Rows: encoder", encoders, pick[0]),
                  "columns_encoder": picked("columns_encoder", "Columns: encoder", encoders, pick[1],
                                            help="The same encoder twice gives its layer-to-layer similarity.")}
    else:
        if not defaults["references"]:
            st.info("A depth curve needs a reference that is not an encoder layer: a human embedding of the dataset, one "
                    "of its RDM groups (RSA only) or an upload.")
            st.stop()
        chosen = {"references": picked("references", "Reference(s)", defaults["references"],
                                       help="E.g. the four THINGS participant groups.")}
    if not all(chosen.values()):
        st.info("Choose what to compare above.")
        st.stop()
    return chosen
