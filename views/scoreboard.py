"""Scoreboard: a study's answer in one view, every model × every measure from its stored steps (docs/science.md §9)."""
import streamlit as st

from core.analyses.scoreboard import agreement, paired_test, stability
from core.studies.context import slug
from core.figures.scoreboard import bars_table, grouped_bars_figure, heatmap_figure, heatmap_table, rank_figure, \
    scatter_figure
from views.ui import scoreboard_parts as parts
from views.ui import resources, studies, study_openers
from views.ui.background import job_outcomes, job_progress
from views.ui.export_row import built_once, figure_block, table_download
from views.ui.settings import in_url
from views.ui.sidebar import page_start, switch_page

switch_to = study_openers.pending_switch()
if switch_to:  # "Open step on its page" set that page's values: that page draws them, not this one
    switch_page(switch_to)
_, image_set = page_start(
    "Scoreboard",
    "A study's answer in one view: every model of a study file (or every stored result of this dataset) on every "
    "measure its stored steps hold, grouped by training paradigm, with 95% CIs, paired tests and rank stability. "
    "Nothing is computed here: the numbers are the stored results, and a cell never computed or failed says so.",
    needs_images=False)
if st.session_state.get("studies_open_error"):
    st.error(st.session_state.pop("studies_open_error"))

SOURCES = {"study": "A study file", "dataset": "Every stored result of this dataset"}
source = st.radio("Results of", list(SOURCES), format_func=SOURCES.get, horizontal=True,
                  **in_url("scoreboard.source", index=0),
                  help="A study file's steps, or every study step stored in the cache on the sidebar's dataset (any "
                       "study file that ran it), gathered into one table: a row per encoder any of them scored.")
study = stored = None
if source == "study":
    paths = {studies.shown_path(path): path for path in studies.study_files()}
    if not paths:
        st.info(f"No study files: write one (see studies/demo.toml) into {studies.user_studies()} and run it.")
        st.stop()
    chosen = st.selectbox("Study file", list(paths), **in_url("scoreboard.study"),
                          help="A study file of the repository's studies/ folder or of your studies folder. Its "
                               "stored steps fill the table; run it with `python -m core study run FILE`.")
    study_path = paths[chosen]
    study = studies.study_or_error(study_path)
    if isinstance(study, Exception):
        st.error(studies.missing_data_note(study_path, study) or str(study))
        st.stop()
    n_perm = st.number_input("Permutations of a null", 100, 10000, step=100,
                             **in_url("scoreboard.n_perm", value=1000),
                             help="Item permutations behind each similarity and brain cell's null (seed 0). Nulls are "
                                  "computed on demand below and stored; with others stored for another number, they "
                                  "are not shown.")
    board = parts.with_nulls(parts.scoreboard_of(study_path, study), study, int(n_perm))
    name, stem = study.name, study_path.stem
    version = (str(study_path), parts.status_key(studies.statuses(study)))
else:
    stored = parts.dataset_steps(image_set)
    if not stored:
        st.info(f"No study step is stored on **{image_set.name}**: run a study on it (`python -m core study run "
                "FILE`), or pick a study file above.")
        st.stop()
    board = parts.dataset_board_of(image_set, stored)
    name, stem = image_set.name, f"dataset_{slug(image_set.name)}"
    version = (image_set.fingerprint, tuple(item.key for item in stored))
counts = board.cells["status"].value_counts()
st.caption(f"{name}: {len(board.models)} models × {len(board.measures)} measures"
           + (f" from {len(stored)} stored steps" if stored else "") + "; "
           + ", ".join(f"{count} {status}" for status, count in counts.items()) + " cells.")

table, measures = parts.shown_table(board)
event = st.dataframe(parts.styled(board, table), hide_index=True, key="scoreboard_table", on_select="rerun",
                     selection_mode=["single-column", "single-cell"], width="stretch")
st.caption(board.rule)
parts.added_message()
with st.expander("How to read this"):
    st.markdown(parts.HOW_TO_READ["table"])
table_download("Scoreboard (CSV)", board.table(), None, file_stem=f"scoreboard_{stem}",
               help="As `study scoreboard --csv` writes it: a row per model × reference (its `reference` and "
                    "`status`); per measure, named without its reference, its value, _ci_low, _ci_high and _status "
                    "(measures of the model alone repeat on each of its rows); with nulls, _null_p, _null_z, "
                    "_null_q95.", key="scoreboard_csv")
st.download_button("Scoreboard (LaTeX)", data=board.latex(), file_name=f"scoreboard_{stem}.tex",
                   mime="text/x-tex", key="scoreboard_tex", on_click="ignore",
                   help="A paper-ready table (DataFrame.to_latex): cells as value [lo, hi], the layer rule in the "
                        "caption.")

picked_column = next(iter(event.selection.columns), None) if event else None
cells = list(event.selection.cells) if event else []
if cells:
    row, column = cells[0]
    if column in table.columns[2:]:
        picked = table["model"].iloc[row], measures[list(table.columns[2:]).index(column)]
        if study is not None:
            parts.cell_detail(board, *picked, study_path, study)
        else:
            parts.stored_cell_detail(board, *picked, stored)
column_measure = measures[list(table.columns[2:]).index(picked_column)] if picked_column in table.columns[2:] else None
if column_measure:
    st.session_state["scoreboard.measure"] = column_measure  # a clicked column draws its bars
measure = st.selectbox("Measure drawn", measures, format_func=lambda name: board.measures[name].label,
                       **in_url("scoreboard.measure"),
                       help="Its grouped bar chart (click a column of the table to pick it there).")
common = dict(page="scoreboard", dataset=name, provenance=None)
key = version
figure_block(built_once((key, "bars", measure), lambda: grouped_bars_figure(board, measure)),
             bars_table(board, measure), figure=f"bars_{measure}", how_to_read=parts.HOW_TO_READ["bars"], **common)
with_samples = [name for name in measures if len(board.samples.get(name, {})) >= 2]
if measure in with_samples:
    pair = st.columns(2)
    first = pair[0].selectbox("Paired test: model", list(board.samples[measure]), **in_url("scoreboard.first"),
                              help="Its score minus the other's on the stored resamples (the same items for both).")
    second = pair[1].selectbox("minus model", [name for name in board.samples[measure] if name != first],
                               **in_url("scoreboard.second"), help="The model subtracted.")
    test = paired_test(board, measure, first, second)
    st.markdown(f"{first} − {second} = **{test.difference:.4g}** [95% CI {test.ci_low:.4g}, {test.ci_high:.4g}], "
                f"two-sided bootstrap p = {test.p_value:.3g} over {test.n_bootstrap} resamples.")

values, z = heatmap_table(board)
figure_block(built_once((key, "heatmap"), lambda: heatmap_figure(board)), values.reset_index(), figure="heatmap",
             how_to_read=parts.HOW_TO_READ["heatmap"], **common)
axes = st.columns(2)
x = axes[0].selectbox("Scatter: x", measures, format_func=lambda name: board.measures[name].label,
                      **in_url("scoreboard.x"), help="The measure on the horizontal axis.")
y = axes[1].selectbox("Scatter: y", measures, format_func=lambda name: board.measures[name].label,
                      **in_url("scoreboard.y", index=min(1, len(measures) - 1)), help="The measure on the vertical axis.")
figure_block(built_once((key, "scatter", x, y), lambda: scatter_figure(board, x, y)), None, figure=f"scatter_{x}_{y}",
             how_to_read=parts.HOW_TO_READ["scatter"], **common)
if with_samples:
    ranked = st.selectbox("Rank stability of", with_samples, format_func=lambda name: board.measures[name].label,
                          **in_url("scoreboard.ranked"),
                          help="Measures whose stored result kept bootstrap resamples of at least two models.")
    ranks = stability(board, ranked).table()
    figure_block(built_once((key, "ranks", ranked), lambda: rank_figure(ranks, board.measures[ranked].label)),
                 ranks.reset_index(), figure=f"ranks_{ranked}", how_to_read=parts.HOW_TO_READ["ranks"], **common)
else:
    st.caption("Rank stability needs stored bootstrap resamples (e.g. a similarity step with `bootstrap = 1000`).")
st.subheader("Permutation nulls")
if study is None:
    st.caption("Permutation nulls are computed for a study file's similarity steps: pick the study file above.")
elif board.nulls is None:
    job = resources.job_registry().status(parts.nulls_key(study, int(n_perm)))
    st.button("Compute permutation nulls", on_click=parts.start_nulls, args=(study, int(n_perm)),
              disabled=job is not None and job.state in ("queued", "running"),
              help="The null of every similarity cell against the study's reference embedding and of every brain "
                   "cell against its reference group's subjects, from the cached features, in the background; "
                   "stored, so it shows at once next time.")
    job_progress("scoreboard_jobs", "cells", "Stops after the current cell.")
    job_outcomes([parts.nulls_key(study, int(n_perm))], "Cancelled.")
else:
    st.dataframe(parts.null_verdicts(board), hide_index=True, width="stretch")
    with st.expander("How to read this"):
        st.markdown(parts.HOW_TO_READ["nulls"])
w, rho = agreement(board)
st.markdown(f"**Do the measures rank the models alike?** Kendall's W = {w:.3f} over the measures every model has "
            "(1: identical rankings, 0: no agreement); Spearman ρ between measures across models (NaN: < 3 models)."
            if w == w else "**Agreement of measures**: Kendall's W needs two models with every measure.")
st.dataframe(rho.round(3), width="stretch")
