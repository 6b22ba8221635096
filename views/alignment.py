"""Alignment: entropic Gromov-Wasserstein optimal transport between two representations of the same items."""
import numpy as np
import pandas as pd
import streamlit as st

from core.analyses.gwot_search import SearchSettings, alignment_result_key, align, load_alignment, save_alignment
from core.analyses.matching import stored_alignment_key
from core.analyses.gwot import (BACKENDS, DEFAULT_EPS, INIT_LABELS, INITS, SEARCHES, Alignment,
                                alignment_report, backend_label, rsa_vs_gwot)
from core.analyses.rdm import (RDM_METRIC_LABELS, RDM_METRICS, RdmSource, layer_source, reference_source, source_rdm,
                               upload_source)
from core.data.datasets import ImageSet
from core.data.demo import KNOWN_ITEM_MATCH
from core.encoders.specs import FINAL_LAYER, ModelLayer
from core.export import array_to_npy, export_filename, table_to_csv
from core.features.extract import feature_keys
from core.features.store import FeatureKey
from core.figures.alignment import (epsilon_search_figure, matching_rates_figure, per_category_figure,
                                    rdm_pair_figure, transport_plan_figure)
from core.jobs import ACTIVE, job_key
from core.provenance import Provenance, provenance_from_keys
from views.ui import resources
from views.ui.alignment_drilldown import alignment_drilldown
from views.ui.background import estimate_text, job_outcomes, job_progress, submit_job
from views.ui.export_row import figure_block, file_download, table_download
from views.ui.extraction import extraction_panel
from views.ui.sidebar import effective_pooling, page_start
from views.ui.studies import add_to_study

selection, image_set = page_start(
    "Alignment",
    "Unsupervised alignment by entropic Gromov-Wasserstein optimal transport (docs/science.md §5, GWTune's "
    "protocol): which item of one representation corresponds to which item of the other, found from the "
    "two RDMs alone, without being told the correspondence.", needs_images=False)
items = image_set.metadata["image_id"].astype(str).to_numpy()
categories = image_set.metadata["category"].astype(str).to_numpy()

statuses = []  # a set of representations only has no images to extract from
if image_set.has_images:
    with st.expander("Features", expanded=False):
        statuses = extraction_panel(image_set, selection)
sources = [reference_source(reference.name, reference.embedding) for reference in image_set.references]
sources += [layer_source(ModelLayer(status.encoder, status.layer), effective_pooling(status.encoder, selection.pooling))
            for status in statuses if status.state == "cached"]
upload = st.file_uploader(
    "Add a source: an N × d embedding or an N × N RDM", type=["npy", "txt", "csv"], key="alignment_upload",
    help=f"Rows are the {len(items)} items of {image_set.name} in the dataset's order (its image_id column: for OASIS "
         "and the demo, the rows of OASIS.csv), or, in a CSV, put each row's image_id in the first column and the "
         "order is checked and restored. "
         "A symmetric matrix with a zero diagonal is used as an RDM; anything else as an embedding.")
if upload is not None:
    try:
        sources.append(upload_source(upload.name, upload.getvalue(), items))
    except ValueError as error:
        st.error(str(error))
sources = {source.label: source for source in sources}
if len(sources) < 2:
    st.info("Alignment needs two sources of the same items: extract an encoder layer (Features above; pick encoders "
            "and layers in the sidebar), use a dataset with a human embedding (the demo has one), or upload a "
            "matrix.")
    st.stop()


@st.cache_resource(max_entries=16, show_spinner="Computing RDM…",
                   hash_funcs={ImageSet: lambda s: s.fingerprint, RdmSource: lambda s: s.key})
def cached_rdm(image_set: ImageSet, source: RdmSource, metric: str, normalise: bool) -> np.ndarray:
    """(N, N) float32 RDM of a source; every input is an argument (a layer's pooling is part of its source)."""
    layer = source.model_layer
    features = None if layer is None else resources.feature_set(
        image_set, resources.encoder_info(layer.spec), layer.layer, source.pooling).features
    return source_rdm(source, image_set.metadata["image_id"].astype(str).to_numpy(), metric, normalise=normalise,
                      features=features)


names = list(sources)
controls = st.columns(3)
source_name = controls[0].selectbox("Source", names, key="alignment_source", persist_state="session",
                                    help="The representation whose items are transported (rows of the plan).")
# The demo's human embedding is built from what raw pixels show (core/data/demo.py), so that pair is its known answer.
known_pair = ModelLayer(KNOWN_ITEM_MATCH, FINAL_LAYER).label
default_target = names.index(known_pair) if image_set.name == "demo" and known_pair in names else min(1, len(names) - 1)
target_name = controls[1].selectbox("Target", names, index=default_target, key="alignment_target", persist_state="session",
                                    help="The representation they are transported to (columns). Model-vs-model "
                                         "and model-vs-human are both fine; the same source twice is a sanity check. On the demo the default "
                                         f"is {KNOWN_ITEM_MATCH}: the demo's human embedding is the images' coarse "
                                         "colour layout, so GWOT should recover most items (a known answer).")
metric = controls[2].selectbox("RDM metric", RDM_METRICS, format_func=RDM_METRIC_LABELS.get, key="alignment_metric", persist_state="session",
                               help="Dissimilarity between two items' vectors. Cosine is the usual choice for DNN "
                                    "features, euclidean for SPoSE-style human embeddings.")
settings = st.columns(5)
default_low, default_high = DEFAULT_EPS[metric]
eps_low = settings[0].number_input("ε from", min_value=1e-6, value=default_low, format="%.0e", key=f"eps_low_{metric}", persist_state="session",
                                   help="Smallest entropic regularisation tried. ε is in the units of the squared "
                                        "RDM entries: defaults are [1e-5, 1e-1] for cosine/correlation RDMs and "
                                        "[1, 10] for euclidean human embeddings (docs/science.md §5). Too small for the "
                                        "RDMs' scale and trials fail (reported, discarded).")
eps_high = settings[1].number_input("ε to", min_value=1e-6, value=default_high, format="%.0e",
                                    key=f"eps_high_{metric}", persist_state="session", help="Largest ε tried (a blurrier plan).")
n_eps = settings[2].number_input("Epsilons", 1, 50, 10, key="alignment_n_eps", persist_state="session",
                                 help="Number of ε values, log-spaced over the range.")
init = settings[3].selectbox("Initial plan", INITS, format_func=INIT_LABELS.get, key="alignment_init", persist_state="session",
                             help="GW is non-convex: each init can land in a different local optimum. Random "
                                  "positive: a random matrix scaled to uniform marginals. Permutation: a random "
                                  "one-to-one plan / N. Uniform: p qᵀ (one deterministic init).")
n_inits = settings[4].number_input("Inits per ε", 1, 20, 1, key="alignment_n_inits", persist_state="session", disabled=init == "uniform",
                                   help="Random initial plans per ε (seeds 0, 1, …). The trial with the smallest "
                                        "GW distance over all ε and inits is selected. With annealing (below) one is "
                                        "usually enough; without it, use several.")
more = st.columns(5)
search = more[0].selectbox("Search", SEARCHES, key="alignment_search", persist_state="session",
                           help="grid: all ε log-spaced. sequential: half of them on the grid, the rest between "
                                "the neighbours of the best so far.")
warm_start = more[1].checkbox("Anneal ε", value=True, key="alignment_warm_start", persist_state="session",
                              help="On (default): ε runs from large to small and each init continues from its own "
                                   "plan at the previous ε. Several times faster, and on known answers it finds the "
                                   "true matching where cold starts stall in a local optimum (a shuffled copy of the "
                                   "demo's human embedding: ≥ 95% top-1, tested). At a large ε the problem has a "
                                   "single optimum, so inits tend to follow the same path. Off: every trial starts "
                                   "from its own initial plan (GWTune's protocol, docs/science.md §5); use several inits.")
backend = more[2].selectbox("Backend", BACKENDS, key="alignment_backend", persist_state="session",
                            format_func=backend_label,
                            help="numpy on the CPU, or torch: on the GPU when there is one (much faster for "
                                 "thousands of items), else on the CPU. Same selection either way.")
normalise = more[3].checkbox("Divide RDMs by their max", key="alignment_normalise", persist_state="session",
                             help="Puts both RDMs in [0, 1] so one ε range suits both; off by default.")
max_iter = more[4].number_input("Max iterations", 10, 5000, 1000, step=100, key="alignment_max_iter", persist_state="session",
                                help="Outer (mirror-descent) steps per trial; a trial stops earlier when the GW "
                                     "objective changes by < 1e-6 (relative).")
if eps_low > eps_high:
    st.error(f"ε from ({eps_low:g}) is larger than ε to ({eps_high:g}); swap them.")
    st.stop()
search_settings = dict(eps_range=(float(eps_low), float(eps_high)), n_eps=int(n_eps), n_inits=int(n_inits), init=init,
                       search=search, warm_start=warm_start, backend=backend, max_iter=int(max_iter))


def stored_key(source: str, target: str) -> str:
    """Where the alignment of `source` to `target` with these settings is stored: the same items, sources, RDMs and
    search give the same key, here, in a headless study and after a restart (a layer source's key holds its pooling)."""
    return alignment_result_key(image_set.fingerprint, sources[source].key, sources[target].key, metric, normalise,
                                SearchSettings(**search_settings))


def stored_alignment(source: str, target: str) -> Alignment | None:
    """The finished alignment of the pair from the result store (a study's, an earlier session's), or None."""
    return resources.result_memo().get_or_compute(("alignment", stored_key(source, target)),
                                                  lambda: load_alignment(resources.result_store(),
                                                                         stored_key(source, target)))


# What a trial costs depends on the number of items and the search settings, not on which sources.
trial_rate_key = f"align|{len(items)}|{metric}|{repr(sorted(search_settings.items()))}"
n_trials = int(n_eps) * (1 if init == "uniform" else int(n_inits))


def trial_message(trial: dict | None) -> str:
    if trial is None:
        return "starting"
    if not trial["valid"]:
        return f"ε {trial['epsilon']:.3g}: discarded ({trial['note']})"
    return f"ε {trial['epsilon']:.3g}, init {trial['init_seed']}: GW {trial['gw_distance']:.4g}, top-1 {trial['top1']:.1%}"


def start_alignments(targets: list[str]) -> None:
    """Button callback: one background job per target, so a long search survives reruns and page changes."""
    source = cached_rdm(image_set, sources[source_name], metric, normalise)
    for target in targets:
        target_matrix = cached_rdm(image_set, sources[target], metric, normalise)

        def work(report, target=target, target_matrix=target_matrix, key=stored_key(source_name, target)):
            alignment = align(source, target_matrix, **search_settings,
                              progress=lambda done, total, trial: report(done, total, trial_message(trial)))
            save_alignment(resources.result_store(), key, alignment,
                           {"label": f"{source_name} → {target}", "source": source_name, "target": target,
                            "dataset": selection.dataset_spec or image_set.name, "metric": metric,
                            "normalise": normalise, "search_settings": search_settings})
            return alignment

        submit_job("alignment_jobs", job_key("align", stored_key(source_name, target)), f"{source_name} → {target}", work,
                   rate_key=trial_rate_key)


def layer_key(source: RdmSource) -> FeatureKey:
    """The feature key of an encoder-layer source."""
    layer = source.model_layer
    return feature_keys(image_set, resources.encoder_info(layer.spec), [layer.layer], source.pooling)[layer.layer]


def alignment_provenance(targets: list[str]) -> Provenance:
    """What aligning the source to `targets` used: the features of its encoder-layer sources and the settings."""
    keys = [layer_key(sources[name]) for name in [source_name, *targets] if sources[name].model_layer is not None]
    parameters = {"source": sources[source_name].key, "targets": [sources[name].key for name in targets],
                  "metric": metric, "normalise": normalise, **search_settings}
    return provenance_from_keys(keys, parameters, dataset=image_set.name, dataset_fingerprint=image_set.fingerprint,
                                store=resources.feature_store())


registry = resources.job_registry()
key = job_key("align", stored_key(source_name, target_name))
status = registry.status(key)
stored = stored_alignment(source_name, target_name)
running = status is not None and status.state in ACTIVE
st.button("Run alignment", type="primary", on_click=start_alignments, args=([target_name],),
          disabled=stored is not None or running,
          help="Runs in the background, one trial at a time, with a progress bar. Changing other widgets does not "
               "stop it; the result is stored on disk for these exact settings, so it opens at once next time, also "
               "after a restart (and a study's alignment of the same pair and settings opens here too).")
add_to_study("alignment", dict(source=source_name, targets=[target_name], metric=metric, normalise=normalise,
                               anneal=warm_start, **search_settings), selection)
if stored is None and not running:
    st.caption(f"Estimate for {n_trials} trials: " + (estimate_text(trial_rate_key, n_trials, "trials") or
                                                       "none yet (the first run measures the rate)."))
job_progress("alignment_jobs", "trials", "Stops after the current trial.")
job_outcomes([key], "Cancelled.")
if stored is None:
    if status is None:
        st.info("Pick a source and a target, then press **Run alignment**.")
    st.stop()

source_matrix = cached_rdm(image_set, sources[source_name], metric, normalise)
target_matrix = cached_rdm(image_set, sources[target_name], metric, normalise)
report = alignment_report(stored, source_matrix, target_matrix, categories)
# The Similarity page shows this pair's matching from here: GWOT is never re-run there.
resources.result_cache().set(
    stored_alignment_key(image_set.fingerprint, f"{source_name}|{sources[source_name].pooling}",
                         f"{target_name}|{sources[target_name].pooling}"),
    {"top1_matching": float(report.rates["rate"].iloc[0]), "category_matching": float(report.rates["rate"].iloc[-1]),
     "gw_distance": float(report.alignment.gw_distance), "epsilon": float(report.alignment.epsilon),
     "rdm_metric": metric, "normalise": bool(normalise)})
alignment, summary = report.alignment, report.rates
plan, trials = alignment.transport_plan, alignment.trials
pair = (source_name, target_name)
label = f"{source_name}→{target_name}"
provenance = alignment_provenance([target_name])
metrics = st.columns(5)
metrics[0].metric("Top-1 matching", f"{summary['rate'].iloc[0]:.1%}", help=f"Chance {summary['chance'].iloc[0]:.2%}")
metrics[1].metric("Category matching", f"{summary['rate'].iloc[-1]:.1%}",
                  help=f"Chance {summary['chance'].iloc[-1]:.1%} = Σ (category share)²")
metrics[2].metric("Selected ε", f"{alignment.epsilon:.3g}", help="Smallest GW distance over all valid trials.")
metrics[3].metric("GW distance", f"{alignment.gw_distance:.4g}", help="Without the entropy term (ot.gromov.gwloss).")
metrics[4].metric("RSA (Spearman)", f"{report.rsa:.3f}",
                  help="Spearman correlation of the two RDMs' upper triangles: the supervised contrast, which knows "
                       "the correspondence.")
for warning in report.warnings:
    st.warning(warning.message)
discarded = trials[~trials["valid"]]
if len(discarded):
    st.warning(f"{len(discarded)} of {len(trials)} trials were discarded ({discarded['note'].iloc[0]}, …): ε too "
               "small for these RDMs' scale. They are crossed in the epsilon search.")

figure_block(rdm_pair_figure(source_matrix, target_matrix, categories, pair), None, page="alignment",
             figure="rdms", dataset=image_set.name, encoder=label, provenance=provenance, how_to_read=(
                 "Both RDMs with items ordered by category (white lines: category boundaries). GWOT compares the "
                 "two matrices' shapes only: it never sees which row of one is which row of the other. Matrices "
                 "over 600 items are shown block-averaged; downloads hold the full arrays."))
plan_column, rates_column = st.columns([3, 2])
with plan_column:
    log_colour = st.toggle("Log colour scale", key="alignment_log_colour", persist_state="session",
                           help="log₁₀ of N·T, floored at 1e-4: shows where the small mass goes.")
    plan_click = figure_block(
        transport_plan_figure(plan, categories, log_colour=log_colour, names=pair, items=items), None,
        page="alignment", figure="transport_plan", dataset=image_set.name, encoder=label, provenance=provenance,
        select_key="alignment_plan_click", selection_mode=("points",), how_to_read=(
            "Row i is where source item i sends its mass, scaled by N so a row sums to 1 (N·T). A sharp "
            "diagonal means items are matched to themselves (top-1); mass inside the diagonal blocks "
            "means matched to the right category. Click a row's darkest cell to see where that item goes "
            "(below); plans over 600 items are block-averaged, pick the item in the box below instead."))
with rates_column:
    figure_block(matching_rates_figure(summary), summary, page="alignment", figure="matching_rates",
                 dataset=image_set.name, encoder=label, provenance=provenance, how_to_read=(
                     "Top-k: fraction of source items whose k largest plan entries include their own target item. "
                     "Category: the largest entry falls in the item's category. Red dashes: chance (k/N and "
                     "Σ category share²). Always the selected trial's plan, never the best over trials."))
alignment_drilldown(image_set, plan, plan_click, plan_key=stored_key(source_name, target_name), sources=sources,
                    names=pair, label=label, provenance=provenance)
figure_block(epsilon_search_figure(trials, alignment.selected), trials, page="alignment", figure="epsilon_search",
             dataset=image_set.name, encoder=label, provenance=provenance, how_to_read=(
                 "Every trial of the search. The selected trial (star) has the smallest GW distance without the "
                 "entropy term, among valid trials; top-1 is shown for information and never used to select. "
                 "Crossed: discarded trials (NaN, or plan mass off by more than 1e-5)."))
figure_block(per_category_figure(report.per_category), report.per_category, page="alignment", figure="per_category",
             dataset=image_set.name, encoder=label, provenance=provenance, how_to_read=(
                 "The same rates within each category's source items; the dash is the category's chance (its "
                 "share of the items). Sorted by category matching."))

downloads = st.columns(3)
plan_stem = export_filename("alignment", "transport_plan", image_set.name, label, ext="")
file_download("Plan (NPY)", f"{plan_stem}.npy", lambda: array_to_npy(plan), provenance, file_stem=f"{plan_stem}_npy",
              container=downloads[0], help="A zip: the selected (N, N) plan, rows and columns in the dataset's item "
                                           "order, and provenance.json.")
file_download("Plan (CSV)", f"{plan_stem}.csv", container=downloads[1], provenance=provenance,
              data=lambda: table_to_csv(pd.DataFrame(plan, columns=items).set_axis(items).rename_axis("image_id")
                                        .reset_index()),
              file_stem=f"{plan_stem}_csv", help="A zip: the same plan with image_id row and column labels, and "
                                                 "provenance.json.")
table_download("Trials (CSV)", trials, provenance, container=downloads[2],
               file_stem=export_filename("alignment", "trials", image_set.name, label, ext=""),
               help="Every (ε, init) trial: GW distance, top-1, time, iterations, converged, valid.")

st.subheader("RSA vs GWOT across targets")
others = [name for name in names if name != source_name]
compared = st.multiselect("Targets to compare", others, default=others[:6], key="alignment_compare", persist_state="session",
                          help="Every target is aligned with the settings above. RSA needs the correspondence; "
                               "GWOT finds it. A target with high RSA but low top-1 shares the coarse geometry "
                               "but not the item-level structure.")


def outcome(target: str) -> Alignment | str:
    """The finished alignment of the source to `target`, or the state of its search."""
    found = stored_alignment(source_name, target)
    if found is not None:
        return found
    job = registry.status(job_key("align", stored_key(source_name, target)))
    return "not run" if job is None else job.state


outcomes = {target: outcome(target) for target in compared}
missing = [target for target, result in outcomes.items() if not isinstance(result, Alignment)]
comparison = rsa_vs_gwot(source_name, source_matrix,
                         {target: cached_rdm(image_set, sources[target], metric, normalise) for target in compared},
                         outcomes, categories)
st.dataframe(comparison, hide_index=True, width="stretch", column_config={
    column: st.column_config.NumberColumn(format="%.3f") for column in ("rsa", "gw_distance")})
st.caption(f"Chance: top-1 {summary['chance'].iloc[0]:.2%}, top-5 {summary['chance'].iloc[1]:.2%}, top-10 "
           f"{summary['chance'].iloc[2]:.2%}, category {summary['chance'].iloc[-1]:.1%}.")
compare_buttons = st.columns(2)
compare_buttons[0].button(f"Align to {len(missing)} more target(s)", on_click=start_alignments, args=(missing,),
                          disabled=not missing, help="Background jobs, one per target, with the settings above.")
table_download("Comparison (CSV)", comparison, alignment_provenance(compared), container=compare_buttons[1],
               file_stem=export_filename("alignment", "rsa_vs_gwot", image_set.name, source_name, ext=""),
               help="The table above.")
