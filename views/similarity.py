"""Similarity: model × model and layer × layer matrices over a family of measures, with CIs, controls, ceilings."""
from dataclasses import asdict

import numpy as np
import pandas as pd
import streamlit as st

from core.analyses.rdm import RDM_METRIC_LABELS
from core.analyses.representation import rdm_group_representations
from core.analyses.similarity import MEASURES, NoiseCeiling, SimilarityMatrix, measure_agreement
from core.figures.similarity import agreement_figure, depth_curves_figure, similarity_heatmap
from core.jobs import job_key
from core.provenance import provenance_from_keys
from core.studies import analyses
from core.studies.analyses.similarity import MATRIX_KINDS, depth_curves, matrix_axes, stored_matrix_key
from views.ui import resources
from views.ui.background import compute_row
from views.ui.export_row import built_once, figure_block
from views.ui.settings import setting_input, settings_from
from views.ui.sidebar import page_start
from views.ui.similarity_controls import axis_pickers, bootstrap_input, uploaded_representations
from views.ui.similarity_results import how_to_read, paired_test_section, pairs_table, start_matrix, stored_alignments
from views.ui.similarity_sources import dataset_sources

entry = analyses.get("similarity")
selection, image_set = page_start(
    "Similarity",
    "How alike two representations of the same items are, by a family of measures (docs/science.md §8): RSA, "
    "linear / RBF / debiased CKA, Procrustes, mutual k-NN and CKNNA, with bootstrap CIs over items, controls "
    "and noise ceilings. Conclusions that hold across measures are the ones to trust.", needs_images=False)

sources = dataset_sources(image_set, selection) | rdm_group_representations(image_set.rdm_references)
sources |= uploaded_representations(entry, image_set)
if len(sources) < 2:
    st.info("Similarity needs two representations of the same items: extract encoder layers (Features above; pick "
            "encoders and layers in the sidebar), use a dataset with human embeddings (the demo has one; an "
            "`embeddings:` dataset holds several) or RDM groups (a `neural:` folder: RSA only), or upload N × d "
            "matrices.")
    st.stop()

controls_row, settings_row = st.columns([3, 2]), st.columns(5)
measures = setting_input(entry, "measures", "Measures", container=controls_row[0],
                         format_func=lambda name: MEASURES[name].label,
                         help="'How to read this' under each matrix says what each is invariant to and where its "
                              "chance level lies.")
kind = setting_input(entry, "matrix", "Matrix", container=controls_row[1], widget="radio", format_func=MATRIX_KINDS.get)
rdm_metric = setting_input(entry, "rdm_metric", "RDM metric", container=settings_row[0],
                           format_func=RDM_METRIC_LABELS.get)
k = setting_input(entry, "k", "k (neighbours)", container=settings_row[1])
rbf_sigma = setting_input(entry, "rbf_sigma", "RBF σ fraction", container=settings_row[2], step=0.1)
resamples = bootstrap_input(entry, settings_row[3], settings_row[4])
if not measures:
    st.info("Pick at least one measure.")
    st.stop()
encoders = list(dict.fromkeys(source.encoder for source in sources.values() if source.encoder))
settings = settings_from(entry, measures=measures, matrix=kind, rdm_metric=rdm_metric, k=k, rbf_sigma=rbf_sigma,
                         bootstrap=resamples, **axis_pickers(entry, kind, sources, encoders))
rows, columns, references = axes = matrix_axes(settings, sources, encoders)
if not rows or not columns:
    st.info("Choose what to compare above.")
    st.stop()

key = stored_matrix_key(settings, sources, rows, columns)
job = job_key("similarity", key)
matrix: SimilarityMatrix | None = resources.result_memo().get_or_compute(
    ("similarity", key), lambda: resources.similarity_store().get(key))  # None (not stored yet) is not kept
compute_row(entry, settings, selection, jobs="similarity_jobs", job=job, done=matrix is not None,
            start=start_matrix, args=(image_set, settings, sources, axes, job), unit="steps",
            pending=f"{len(rows)} × {len(columns)} cells × {len(measures)} measures"
                    + (f", {resamples} resamples" if resamples else ""))

for warning in matrix.warnings:
    st.warning(warning)
results = resources.result_cache()
control_table = pd.DataFrame(results.get(f"{key}|controls") or [], columns=["representation", "control", "measure",
                                                                              "value"])
ceilings = results.get(f"{key}|ceiling") or {}
keys = [sources[name].feature_key for name in dict.fromkeys(rows + columns) if sources[name].feature_key]
provenance = provenance_from_keys(keys, {"measures": list(measures), "kind": kind, "rows": rows, "columns": columns,
                                         **asdict(settings.measure_settings), "n_bootstrap": resamples, "seed": 0},
                                  dataset=image_set.name, dataset_fingerprint=image_set.fingerprint,
                                  skipped_images=image_set.skipped_labels,
                                  store=resources.feature_store())
table = matrix.table()

for measure in measures:
    cells = table[table["measure"] == measure]
    if matrix.rdm_only and not np.isfinite(cells["value"]).any():
        st.info(f"**{MEASURES[measure].label}**: {'; '.join(note for note in dict.fromkeys(cells['note']) if note)}"
                " — only the RSA measures compare RDMs (docs/science.md §8).")
        continue
    if kind == "reference":
        curves = depth_curves(matrix, measure, sources, references)
        ceiling = ceilings.get(measure)
        ceiling = None if ceiling is None else NoiseCeiling(**{**ceiling, "references": tuple(ceiling["references"])})
        figure_block(built_once((key, measure, "depth"), lambda: depth_curves_figure(curves, measure, ceiling)),
                     curves, page="similarity",
                     figure=f"depth_{measure}", dataset=image_set.name, provenance=provenance,
                     how_to_read=how_to_read(measure) + " Each curve is a layer's value against the reference (the "
                     "mean over references when there are several); the grey band is their noise ceiling: lower = "
                     "each reference vs the mean of the others, upper = vs the mean of all.")
    else:
        shown = control_table[control_table["measure"] == measure].set_index(["representation", "control"])["value"]
        figure_block(built_once((key, measure, "matrix"), lambda: similarity_heatmap(matrix, measure, shown)),
                     table[table["measure"] == measure],
                     page="similarity", figure=f"matrix_{measure}", dataset=image_set.name, provenance=provenance,
                     how_to_read=how_to_read(measure))

if len(measures) >= 2 and kind != "reference":
    agreement = measure_agreement(matrix)
    figure_block(built_once((key, "agreement"), lambda: agreement_figure(agreement)),
                 agreement.reset_index(names="measure"), page="similarity",
                 figure="agreement", dataset=image_set.name, provenance=provenance, how_to_read=(
                     "Spearman ρ between two measures' values across the matrix's distinct pairs (distances "
                     "negated). Near 1: the measures rank the pairs alike, so a conclusion drawn from one holds "
                     "for the other; low or negative: which pair is 'more similar' depends on the measure."))

pairs_table(table, ceilings, image_set.name, provenance)
stored_alignments(image_set, matrix, sources, provenance)
paired_test_section(matrix)
