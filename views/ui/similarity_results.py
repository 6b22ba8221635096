"""The Similarity page's computation in the background and what it shows beside the figures: the pairs table, the
Alignment page's stored GWOT matching of the matrix's pairs, the paired bootstrap test."""
from __future__ import annotations

from typing import Mapping

import pandas as pd
import streamlit as st

from core.analyses.matching import stored_alignment_key
from core.analyses.representation import Representation
from core.analyses.similarity import CONTROLS, MEASURES, SimilarityMatrix, paired_test
from core.data.datasets import ImageSet
from core.export import export_filename
from core.provenance import Provenance
from core.studies.analyses.similarity import MatrixSettings, compute_matrix
from views.ui import resources
from views.ui.background import submit_job
from views.ui.export_row import table_download
from views.ui.settings import in_url
from views.ui.similarity_sources import load_features


def start_matrix(image_set: ImageSet, settings: MatrixSettings, sources: Mapping[str, Representation],
                 axes: tuple[list[str], list[str], list[str]], job: str) -> None:
    """Button callback: one background job computing and storing the matrix, its controls and (several references)
    the noise ceiling, as a study step does (`compute_matrix`); cancelled, it stops after the current resample."""
    rows, columns, _ = axes
    arrays = {name: load_features(image_set, sources[name]) for name in dict.fromkeys(rows + columns)}
    # Opened here: the job's thread has no Streamlit context.
    store, scores = resources.similarity_store(), resources.result_cache()
    submit_job("similarity_jobs", job, f"{len(rows)} × {len(columns)} · {', '.join(settings.measures)}",
               lambda report: compute_matrix(settings, sources, arrays, axes, store, scores, progress=report))


def how_to_read(measure: str) -> str:
    """What a measure's matrix or curve shows: its identity, direction, invariances, chance and the controls."""
    info = MEASURES[measure]
    return (f"**{info.label}** — identity {info.identity:g} (a representation vs itself); "
            f"{'higher' if info.higher_is_similar else 'lower'} = more alike. Invariant to {info.invariant_to}. "
            f"Chance: {info.chance}. The control columns compare each row with itself ({CONTROLS['self']}), "
            f"{CONTROLS['rotation']} (should equal the identity for rotation-invariant measures) and "
            f"{CONTROLS['shuffle']} (chance). Hover a cell for its 95% CI when bootstrapped.")


def pairs_table(table: pd.DataFrame, ceilings: dict, dataset: str, provenance: Provenance) -> None:
    """Every cell × measure with its CI, its CSV, and the noise ceiling when there is one."""
    st.subheader("Every pair × measure")
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        column: st.column_config.NumberColumn(format="%.4f") for column in ("value", "ci_low", "ci_high")})
    table_download("Pairs × measures (CSV)", table, provenance,
                   file_stem=export_filename("similarity", "pairs", dataset, "", ext=""),
                   help="Every cell of the matrix for every measure, with its 95% CI when bootstrapped.")
    if ceilings:
        st.dataframe(pd.DataFrame(ceilings.values())[["measure", "lower", "upper"]], hide_index=True)


def stored_alignments(image_set: ImageSet, matrix: SimilarityMatrix, sources: Mapping[str, Representation],
                      provenance: Provenance) -> None:
    """GWOT matching of every (row, column) pair the Alignment page has aligned (read, never re-run)."""
    records = []
    for row in matrix.rows:
        for column in matrix.columns:
            found = resources.result_cache().get(stored_alignment_key(
                image_set.fingerprint, f"{row}|{sources[row].pooling}", f"{column}|{sources[column].pooling}"))
            if found and row != column:
                records.append({"row": row, "column": column, **found})
    st.subheader("GWOT matching (stored alignments)")
    if not records:
        st.caption("No pair of this matrix has been aligned on the Alignment page yet; GWOT is never re-run here. "
                   "Align a pair there and its top-1 and category matching appear in this table.")
        return
    alignments = pd.DataFrame(records)
    st.dataframe(alignments, hide_index=True, width="stretch")
    table_download("GWOT matching (CSV)", alignments, provenance,
                   file_stem=export_filename("similarity", "gwot_matching", image_set.name, "", ext=""),
                   help="Top-1 and category matching of the selected trial of each stored alignment, its settings.")


def paired_test_section(matrix: SimilarityMatrix) -> None:
    """Which of two rows is closer to a column, over the same bootstrap resamples (needs a bootstrapped matrix)."""
    if matrix.resamples is None or len(matrix.rows) < 2:
        return
    st.subheader("Paired test: which row is closer to a column?")
    test_row = st.columns(4)
    first_row = test_row[0].selectbox("Model A", matrix.rows, **in_url("similarity.test_a"),
                                      help="The two rows are compared over the same bootstrap resamples.")
    second_row = test_row[1].selectbox("Model B", matrix.rows, **in_url("similarity.test_b", index=1),
                                       help="Compared with model A.")
    against = test_row[2].selectbox("Reference", matrix.columns, **in_url("similarity.test_reference"),
                                    help="The column both are compared to.")
    test_measure = test_row[3].selectbox("Measure", matrix.measures, format_func=lambda n: MEASURES[n].label,
                                         **in_url("similarity.test_measure"),
                                         help="For a distance (Procrustes) a negative difference means A is closer.")
    test = paired_test(matrix, test_measure, first_row, second_row, against)
    st.metric(f"{MEASURES[test_measure].label}: A − B", f"{test.difference:+.4f}",
              help=f"95% CI [{test.ci_low:.4f}, {test.ci_high:.4f}] over {test.n_bootstrap} resamples; two-sided "
                   f"p = {test.p_value:.3g} (2 × the smaller share of resampled differences on either side of 0).")
    st.caption(f"95% CI [{test.ci_low:.4f}, {test.ci_high:.4f}] · p = {test.p_value:.3g} · {test.n_bootstrap} "
               "resamples")
