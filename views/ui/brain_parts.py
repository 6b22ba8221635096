"""The Brain page's parts beyond one widget each: the bootstrap toggle, the background job that computes and stores
the evaluation (as a study step does: `core.studies.analyses.brain.compute`), a model's RDM for the RDM figure, the
tables with their CSVs, and the 'How to read this' texts."""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
import streamlit as st

from core.analyses.brain import group_label
from core.analyses.rdm import rdm
from core.analyses.registry import Analysis
from core.analyses.representation import Representation
from core.data.datasets import ImageSet
from core.export import export_filename
from core.provenance import Provenance
from core.studies.analyses.brain import BrainSettings, compute, result_tables, store_tables
from views.ui import resources
from views.ui.background import submit_job
from views.ui.export_row import table_download
from views.ui.similarity_controls import bootstrap_input as resamples_input
from views.ui.similarity_sources import layer_features, load_features

HOW_TO_READ = {
    "models": (
        "Each bar is a model's comparator with each subject's RDM, averaged over subjects (rsatoolbox's fixed "
        "evaluation), best first; error bars are 95% percentile CIs of the bootstrap. The grey band is the reference "
        "group's **noise ceiling**: its lower edge is each subject vs the mean of the others, its upper edge each "
        "subject vs the mean of all. A model reaching the lower edge explains as much as the subjects explain each "
        "other; ▵ under a bar marks a model significantly below the lower edge (p < 0.05, two-sided t-test on the "
        "bootstrap variance). Bar colours say what a model is: an encoder layer, a model RDM file or another RDM "
        "group (by its subjects' mean). The grid below marks the pairs whose difference survives FDR correction "
        "(Benjamini-Hochberg over all pairs): blue, the row model beats the column model; red, it loses."),
    "layers": (
        "Each encoder's layers against the reference group, shallow (0) to deep (1), with 95% CI bands: where in "
        "depth the RDM is most like the brain or behaviour. The grey band is the noise ceiling. The highest point "
        "of a curve is an optimistic score (it was picked on these same stimuli, more so with more layers): the "
        "table below picks each encoder's layer on a random half of the stimuli and scores it on the other half "
        "(10 seeded splits; docs/science.md §12) — report that score, or a layer fixed in advance."),
    "rdms": (
        "The reference group's mean RDM and the chosen model's RDM, each as rank percentiles of its pairs (so their "
        "units do not matter), the items ordered and coloured by category; right: model − reference. Blue blocks "
        "are pairs the model finds more similar than the brain does; red, less similar."),
    "mds": (
        "Every RDM as a point (the models and each subject of the reference group), placed by metric MDS "
        "(scikit-learn) so that distances approximate 1 − the comparator between two RDMs. Subjects scattered "
        "widely mean a low noise ceiling; a model inside the subjects' cloud is as good as a subject."),
}


def bootstrap_input(entry: Analysis, toggle_container, number_container) -> int:
    """The number of resamples: a toggle (on by default: inference is the point here), then how many."""
    return resamples_input(entry, toggle_container, number_container, setting="n_bootstrap", label="Bootstrap",
                           on=True, help="Resample subjects, stimuli or both (seeded) for 95% CIs and the tests; off, "
                                         "the t-tests use the spread over subjects (rsatoolbox's eval_fixed).")


def start_brain(image_set: ImageSet, settings: BrainSettings, layers: Mapping[str, Representation], key: str) -> None:
    """Button callback: one background job evaluating every layer and RDM and storing the tables under `key`."""
    features, order = layer_features(image_set, layers)
    cache = resources.result_cache()  # opened here: the job's thread has no Streamlit context

    def work(report):
        store_tables(cache, key, result_tables(compute(settings, image_set, features, order, report), settings.seed))

    submit_job("brain_jobs", key, f"Brain · {', '.join(settings.reference_groups or ())}", work)


def model_rdm(image_set: ImageSet, layers: Mapping[str, Representation], name: str, metric: str) -> np.ndarray:
    """(N, N) RDM of model `name`: a layer's RDM under `metric`, a model file's RDM or a group's mean."""
    if name in layers:
        return rdm(load_features(image_set, layers[name]), metric, dtype=np.float64)
    for item in image_set.model_rdms + image_set.rdm_references:
        if group_label(item.name) == name:
            return item.mean
    raise KeyError(f"no model {name!r}")


def best_layer_section(tables: dict[str, pd.DataFrame], reference: str, method: str) -> None:
    """Each encoder's layer chosen on held-out stimuli, its held-out score beside the in-sample best (not to report)."""
    found = tables["best_layers"]
    rows = found[(found["reference"] == reference) & (found["method"] == method)]
    if rows.empty:
        return
    st.markdown(f"**Best layer per encoder vs {reference}, chosen on held-out stimuli**")
    st.dataframe(rows[["encoder", "layer", "score", "score_sd", "in_sample_layer", "in_sample_score"]],
                 hide_index=True, width="stretch",
                 column_config={"score": st.column_config.NumberColumn("held-out score", format="%.4f",
                                                                       help="Mean over splits of the chosen layer's "
                                                                            "score on the held-out half."),
                                "score_sd": st.column_config.NumberColumn("SD over splits", format="%.4f"),
                                "in_sample_layer": st.column_config.TextColumn(
                                    "in-sample best (do not report)",
                                    help="The best layer on all stimuli: its score is biased upwards."),
                                "in_sample_score": st.column_config.NumberColumn("its in-sample score", format="%.4f")})
    st.caption(rows["rule"].iloc[0])


def table_section(tables: dict[str, pd.DataFrame], dataset: str, provenance: Provenance) -> None:
    """Every model × reference with CI, p-values and ceiling-normalised value; the ceilings; the pairwise tests."""
    st.subheader("Every model × reference")
    shown = tables["models"][["reference", "model", "kind", "method", "mean", "ci_low", "ci_high", "p_vs_zero",
                              "p_vs_lower_ceiling", "ceiling_normalised", "below_lower_ceiling"]]
    numbers = {column: st.column_config.NumberColumn(format="%.4f") for column in
               ("mean", "ci_low", "ci_high", "ceiling_normalised")}
    numbers |= {column: st.column_config.NumberColumn(format="%.2e") for column in ("p_vs_zero", "p_vs_lower_ceiling")}
    st.dataframe(shown, hide_index=True, width="stretch", column_config=numbers)
    for name, label, text in (
            ("models", "Models × references (CSV)", "Every model against every reference group: mean, 95% CI, p vs "
                                                    "0 and vs the lower ceiling, ceiling-normalised value, layer depth."),
            ("noise_ceiling", "Noise ceilings (CSV)", "Lower and upper bound per reference group, with their "
                                                      "bootstrap CIs."),
            ("pairwise", "Pairwise differences (CSV)", "Every pair of models per reference: difference, 95% CI, p, "
                                                       "FDR- and Bonferroni-corrected p."),
            ("per_subject", "Per subject (CSV)", "Each model against each subject's RDM."),
            ("best_layers", "Best layers (CSV)", "Each encoder's layer chosen on held-out stimuli, per reference "
                                                 "and comparator, with its held-out score.")):
        table_download(label, tables[name], provenance, file_stem=export_filename("brain", name, dataset, "", ext=""),
                       help=text, key=f"brain_csv_{name}")
    st.dataframe(tables["noise_ceiling"][["reference", "method", "lower", "upper", "n_subjects", "note"]],
                 hide_index=True)

