"""Alignment: entropic Gromov-Wasserstein optimal transport between two representations of the same items."""
import streamlit as st

from core.analyses.gwot import DEFAULT_EPS, INIT_LABELS, alignment_report, backend_label
from core.analyses.rdm import RDM_METRIC_LABELS
from core.data.demo import KNOWN_ITEM_MATCH
from core.encoders.specs import FINAL_LAYER, ModelLayer
from core.jobs import ACTIVE
from core.studies import analyses
from core.studies.analyses.alignment import MIN_EPSILON
from views.ui import resources
from views.ui.alignment_drilldown import alignment_drilldown
from views.ui.alignment_results import (alignment_downloads, alignment_metrics, pair_figures, rsa_vs_gwot_table,
                                       search_figures)
from views.ui.alignment_runs import JOBS, SourceAlignments
from views.ui.alignment_sources import page_representations
from views.ui.background import estimate_text, job_outcomes, job_progress
from views.ui.settings import in_url, setting_input, settings_from
from views.ui.sidebar import page_start
from views.ui.studies import add_to_study

selection, image_set = page_start(
    "Alignment",
    "Unsupervised alignment by entropic Gromov-Wasserstein optimal transport (docs/science.md §5, GWTune's "
    "protocol): which item of one representation corresponds to which item of the other, found from the "
    "two RDMs alone, without being told the correspondence.", needs_images=False)
entry = analyses.get("alignment")
representations = page_representations(image_set, selection)
if len(representations) < 2:
    st.info("Alignment needs two sources of the same items: extract an encoder layer (Features above; pick encoders "
            "and layers in the sidebar), use a dataset with a human embedding (the demo has one) or with neural / "
            "behavioural RDMs (a `neural:` folder), or upload a matrix.")
    st.stop()

names = list(representations)
controls = st.columns(3)
source_name = setting_input(entry, "source", "Source", container=controls[0], options=names)
# The demo's human embedding is built from what raw pixels show (core/data/demo.py), so that pair is its known answer.
known_pair = ModelLayer(KNOWN_ITEM_MATCH, FINAL_LAYER).label
default_target = names.index(known_pair) if image_set.name == "demo" and known_pair in names else min(1, len(names) - 1)
target_name = controls[1].selectbox(
    "Target", names, **in_url(entry.widget_key("target"), index=default_target),
    help="The representation they are transported to (columns). Model-vs-model and model-vs-human are both fine; "
         f"the same source twice is a sanity check. On the demo the default is {KNOWN_ITEM_MATCH}: the demo's human "
         "embedding is the images' coarse colour layout, so GWOT should recover most items (a known answer).")
metric = setting_input(entry, "metric", "RDM metric", container=controls[2], format_func=RDM_METRIC_LABELS.get)
search_controls = st.columns(5)
default_low, default_high = DEFAULT_EPS[metric]  # the ε range is held per metric: each has its own scale
eps_low = search_controls[0].number_input(
    "ε from", min_value=MIN_EPSILON, format="%.0e", **in_url(entry.widget_key(f"eps_low.{metric}"), value=default_low),
    help=entry.settings.describe("eps_range").help)
eps_high = search_controls[1].number_input(
    "ε to", min_value=MIN_EPSILON, format="%.0e", **in_url(entry.widget_key(f"eps_high.{metric}"), value=default_high),
    help="Largest ε tried (a blurrier plan).")
n_eps = setting_input(entry, "n_eps", "Epsilons", container=search_controls[2])
init = setting_input(entry, "init", "Initial plan", container=search_controls[3], format_func=INIT_LABELS.get)
n_inits = setting_input(entry, "n_inits", "Inits per ε", container=search_controls[4], disabled=init == "uniform")
more = st.columns(5)
search = setting_input(entry, "search", "Search", container=more[0])
anneal = setting_input(entry, "anneal", "Anneal ε", container=more[1], widget="checkbox",
                       help="Tested: a shuffled copy of the demo's human embedding is recovered at ≥ 95% top-1. At "
                            "a large ε the problem has a single optimum, so inits tend to follow the same path.")
backend = setting_input(entry, "backend", "Backend", container=more[2], format_func=backend_label)
normalise = setting_input(entry, "normalise", "Divide RDMs by their max", container=more[3], widget="checkbox")
max_iter = setting_input(entry, "max_iter", "Max iterations", container=more[4], step=100)
if eps_low > eps_high:
    st.error(f"ε from ({eps_low:g}) is larger than ε to ({eps_high:g}); swap them.")
    st.stop()
settings = settings_from(entry, source=source_name, targets=(target_name,), metric=metric, normalise=normalise,
                         eps_range=(float(eps_low), float(eps_high)), n_eps=n_eps, n_inits=n_inits, init=init,
                         search=search, anneal=anneal, backend=backend, max_iter=max_iter)
alignments = SourceAlignments(image_set, selection.dataset_spec or image_set.name, settings, representations)

status = resources.job_registry().status(alignments.job(target_name))
stored = alignments.stored(target_name)
running = status is not None and status.state in ACTIVE
st.button("Run alignment", type="primary", on_click=alignments.start, args=([target_name],),
          disabled=stored is not None or running,
          help="Runs in the background, one trial at a time, with a progress bar. Changing other widgets does not "
               "stop it; the result is stored on disk for these exact settings, so it opens at once next time, also "
               "after a restart (and a study's alignment of the same pair and settings opens here too).")
add_to_study("alignment", settings, selection)
if stored is None and not running:
    n_trials = settings.search_settings.n_trials
    st.caption(f"Estimate for {n_trials} trials: " + (estimate_text(alignments.rate_key, n_trials, "trials") or
                                                       "none yet (the first run measures the rate)."))
job_progress(JOBS, "trials", "Stops after the current trial.")
job_outcomes([alignments.job(target_name)], "Cancelled.")
if stored is None:
    if status is None:
        st.info("Pick a source and a target, then press **Run alignment**.")
    st.stop()

rdms = alignments.rdm(source_name), alignments.rdm(target_name)
report = alignment_report(stored, *rdms, image_set.metadata["category"].astype(str).to_numpy())
alignments.publish_matching(target_name, report)
pair, label = (source_name, target_name), f"{source_name}→{target_name}"
provenance = alignments.provenance([target_name])
alignment_metrics(report)
plan_click = pair_figures(image_set, report, rdms, pair, label, provenance)
alignment_drilldown(image_set, report.alignment.transport_plan, plan_click, plan_key=alignments.key(target_name),
                    representations=representations, names=pair, label=label, provenance=provenance)
search_figures(image_set, report, label, provenance)
alignment_downloads(image_set, report.alignment, label, provenance)

st.subheader("RSA vs GWOT across targets")
others = [name for name in names if name != source_name]
compared = st.multiselect("Targets to compare", others, **in_url(entry.widget_key("compare"), default=others[:6]),
                          help="Every target is aligned with the settings above. RSA needs the correspondence; "
                               "GWOT finds it. A target with high RSA but low top-1 shares the coarse geometry "
                               "but not the item-level structure.")
rsa_vs_gwot_table(image_set, alignments, compared, report.rates)
