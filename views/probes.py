"""Layer probes: where in depth does an encoder hold affective and categorical information?"""

from dataclasses import asdict

import pandas as pd
import streamlit as st

from core.analyses.affect import TARGETS
from core.analyses.cv import CATEGORY_SCHEMES, K_FOLD_SCHEMES, SCHEMES, scheme_label
from core.analyses.probes import ProbeSettings, encoder_curves, fit_rate_key, pending_fits, summary_table
from core.export import export_filename
from core.features.extract import feature_keys
from core.figures.probes import AXES, BANDS, probe_curves_figure
from core.jobs import ACTIVE, job_key
from core.provenance import provenance_from_keys
from views.ui import resources
from views.ui.background import estimates_caption, follow_jobs, job_outcomes, job_progress, submit_job
from views.ui.export_row import figure_block, table_download
from views.ui.extraction import extraction_panel
from views.ui.sidebar import effective_pooling, page_start
from views.ui.studies import add_to_study

selection, image_set = page_start(
    "Layer probes",
    "The Affect page's ridge probe of valence and arousal, and a logistic-regression category probe, at "
    "every block of each encoder (docs/science.md §4). Encoders of different depths share a normalised axis.")
metadata = image_set.metadata
n_categories = metadata["category"].nunique()
probes = (TARGETS if image_set.has_affect else ()) + (("category",) if n_categories > 1 else ())
if not image_set.has_affect:
    st.info(f"**{image_set.name}** has no valence/arousal ratings: only the category probe is shown.")
if n_categories < 2:
    st.warning(f"**{image_set.name}** has one category, so there is no category probe.")
if not probes:
    st.stop()

controls = st.columns(4)
scheme = controls[0].selectbox(
    "Affect cross-validation", list(SCHEMES), format_func=scheme_label, key="probes_scheme", persist_state="session",
    help="As on the Affect page: LOTO holds out one theme group at a time, LOCO a whole category, K-fold "
         "shuffled folds, grouped K-fold K folds of whole themes. The final layer's numbers equal the Affect "
         "page's for the same scheme.")
category_scheme = controls[1].selectbox(
    "Category cross-validation", CATEGORY_SCHEMES, index=CATEGORY_SCHEMES.index("gkfold"),
    format_func=scheme_label, key="probes_category_scheme", persist_state="session",
    help="Leave-One-Category-Out is not offered: the held-out category never appears in training, so a "
         "category probe cannot name it. Grouped K-fold (default) keeps each theme group in one fold with K "
         "refits per layer; LOTO refits once per theme (minutes for wide layers such as raw pixels); K-fold "
         "shuffles images, so a theme's near-duplicates help.")
n_folds = controls[2].number_input("K (folds)", 2, 20, 5, key="probes_k", persist_state="session",
                                   disabled=not set(K_FOLD_SCHEMES) & {scheme, category_scheme},
                                   help="Folds of the K-fold schemes (seed 0): shuffled images, or whole theme groups.")
band = controls[3].radio("Band", list(BANDS), format_func=BANDS.get, key="probes_band", persist_state="session",
                         help="±1 SE over folds (default): SD of the per-fold scores / √(number of folds), the "
                              "uncertainty of the mean; folds share training images, so read it as a guide, not "
                              "a test. Fold spread: ±1 SD of the per-fold scores (wide under LOTO, where a fold "
                              "is one small theme group). Per-fold R² uses the variance of all images, so folds "
                              "average to the pooled R². Bootstrap: 95% CI over images.")
add_to_study("probes", dict(scheme=scheme, category_scheme=category_scheme, n_splits=int(n_folds)), selection)

with st.expander("Features (all layers)", expanded=False):
    statuses = extraction_panel(image_set, selection, layers={spec: "all" for spec in selection.encoders})
ready = [spec for spec in selection.encoders
         if all(status.state == "cached" for status in statuses if status.encoder == spec)]
if not ready:
    st.info("No selected encoder has all its layers extracted yet: open **Features (all layers)** above and press "
            "Extract. One forward pass per batch gives every layer.")
    st.stop()
if len(ready) < len(selection.encoders):
    st.caption(f"Waiting for all layers of: {', '.join(sorted(set(selection.encoders) - set(ready)))}.")

settings = ProbeSettings(scheme, category_scheme, int(n_folds))
store, results = resources.feature_store(), resources.result_cache()
pooling = {spec: effective_pooling(spec, selection.pooling) for spec in ready}
pending = {spec: pending_fits(image_set, resources.encoder_info(spec), settings=settings, probes=probes, pooling=pooling[spec],
                              results=results) for spec in ready}
todo = [spec for spec in ready if pending[spec]]


def probe_job_key(spec: str) -> str:
    parts = [image_set.fingerprint, spec, pooling[spec], repr(settings), ",".join(probes)]
    return job_key("probes", *parts)


def rate_key(spec: str) -> str:
    return fit_rate_key(image_set, spec, pending[spec], settings, pooling[spec])


def start_probes(specs: list[str]) -> None:
    """Button callback: one background job per encoder, so a long fit survives reruns and page changes."""
    for spec in specs:
        def work(report, spec=spec, encoder=resources.encoder_info(spec)):
            return encoder_curves(image_set, encoder, store, settings=settings, probes=probes, pooling=pooling[spec],
                                  results=results, progress=report)

        submit_job("probe_jobs", probe_job_key(spec), spec, work, rate_key=rate_key(spec))


if todo:
    follow_jobs("probe_jobs", map(probe_job_key, todo))
    registry = resources.job_registry()
    idle = [spec for spec in todo if (status := registry.status(probe_job_key(spec))) is None or status.state not in ACTIVE]
    n_fits = sum(len(pending[spec]) for spec in todo)
    action = st.columns([2, 3], vertical_alignment="center")
    action[0].button(f"Compute probe curves ({n_fits} fits, {len(todo)} encoder{'s' * (len(todo) > 1)})",
                     type="primary", disabled=not idle, on_click=start_probes, args=(idle,), key="probes_compute",
                     help="One fit = one layer × one probe (the affect ridge gives valence and arousal together; the "
                          "category probe is a second fit). Runs in the background with a progress bar, so other "
                          "widgets and pages stay usable; every finished layer is cached, so a rerun, a cancelled "
                          "run or an added encoder fits only what is missing.")
    action[1].caption(estimates_caption({spec: (rate_key(spec), len(pending[spec])) for spec in todo}, "fits"))
    job_progress("probe_jobs", "fits", "Stops after the current fit; the layers fitted so far stay cached and the "
                                       "next run fits only the rest.")
    job_outcomes(map(probe_job_key, todo), "cancelled. The layers fitted so far are kept; Compute probe curves resumes.")
    drawn = [spec for spec in ready if spec not in todo]
    if not drawn:
        st.info("Press **Compute probe curves** to fit the probes at every layer." if idle else
                "The curves appear here when the fits finish; other widgets and pages stay usable meanwhile.")
        st.stop()
    st.caption(f"Not drawn until computed: {', '.join(todo)}.")
else:
    drawn = ready

curves = pd.concat([encoder_curves(image_set, resources.encoder_info(spec), store, settings=settings, probes=probes, pooling=pooling[spec],
                                   results=results) for spec in drawn], ignore_index=True)

how_to_read = (
    "Each line is one encoder, each point one layer (hover for its name). R²: ridge regression of the rating "
    f"from that layer's features, out-of-fold under {scheme_label(scheme)} — the Affect page's probe. Category: "
    f"balanced accuracy of a logistic regression under {scheme_label(category_scheme)}, chance = 1/"
    f"{n_categories} (dotted). Features are standardised and clipped to ±10 training SDs before each probe "
    "(the Affect page explains why). A curve that rises only at the end holds the information late; a flat "
    "curve spreads it across depth.")
encoders = ",".join(drawn)
keys = [key for spec in drawn
        for key in feature_keys(image_set, resources.encoder_info(spec), "all", pooling[spec]).values()]
provenance = provenance_from_keys(keys, {**asdict(settings), "probes": list(probes), "band": band}, store=store,
                                  dataset=image_set.name, dataset_fingerprint=image_set.fingerprint)
depth_tab, index_tab = st.tabs(["Normalised depth", "Layer index"])
for tab, axis in ((depth_tab, "depth"), (index_tab, "layer_index")):
    with tab:
        figure_block(probe_curves_figure(curves, x=axis, band=band, category_chance=1 / n_categories), curves,
                     page="probes", figure=f"curves_{axis}", dataset=image_set.name, encoder=encoders,
                     layer=scheme, provenance=provenance, how_to_read=how_to_read if axis == "depth" else
                     f"As the first tab, with the {AXES[axis]} on the x axis: encoders of different depths no longer "
                     "line up.")

st.subheader("Where does each curve hold its information?")
summaries = summary_table(curves)
st.dataframe(summaries, hide_index=True, width="stretch", column_config={
    column: st.column_config.NumberColumn(format="%.3f")
    for column in ("peak_score", "peak_depth", "centre_of_mass", "late_fraction")})
downloads = st.columns(4)
table_download("Summaries CSV", summaries, provenance, help="The table above.", container=downloads[0],
               file_stem=export_filename("probes", "summaries", image_set.name, ext=""))
table_download("Per-layer CSV", curves, provenance, container=downloads[1],
               file_stem=export_filename("probes", "per_layer", image_set.name, ext=""),
               help="Every encoder x layer x probe: score, bootstrap CI, fold SD, folds.")
with st.expander("How to read this"):
    st.markdown(
        "Scores below zero count as zero here (an R² below 0 says nothing about where information sits). "
        "**peak_depth**: normalised depth of the best layer. **centre_of_mass**: Σ depth·score / Σ score; 0.5 "
        "for a flat curve. **late_fraction**: share of the area under the curve in the last third of depth; "
        "1/3 for a flat curve, 1 when only the last layers carry information. Both are blank for an encoder "
        "with a single layer (pixels). Depth runs from 0 (first block) "
        "to 1 (last layer, the encoder's own pooled embedding `final`), evenly over the listed layers; an encoder "
        "with a single layer (pixels) sits at 1, beside the other encoders' final layers.")
