"""Studies: the study files and where each step stands, the stored results, and each result opened on its page."""
import streamlit as st

from core.data.datasets import DatasetError
from core.data.roots import data_roots
from core.studies.spec import StudyError
from views.ui import studies, study_openers
from views.ui.sidebar import page_start, switch_page

switch_to = study_openers.pending_switch()
if switch_to:  # "Open on its page" set the sidebar's and the page's values: that page draws them, not this one
    switch_page(switch_to)
page_start(
    "Studies",
    "A study file declares a whole comparison once (datasets, encoders, analysis steps; studies/demo.toml) and runs "
    "headless, locally or on Ray, with `python -m core study run`. Here: every study file and its steps' state, the "
    "results stored on disk, and each result opened on its page with its settings selected.", needs_images=False)

with st.expander("How to read this"):
    st.markdown(
        "**Study files** lists every `*.toml` in the repository's `studies/` folder (examples) and in your "
        f"`{studies.user_studies()}` folder (where **Add to study** on the Affect, Layer probes, Alignment and "
        "Similarity pages writes), each checked as the CLI checks it: a file that cannot run shows its first problem "
        "with the file, line and key; an example whose data is not on this machine says which path to set. Each step "
        "runs once per dataset; **done** means its result is stored (keyed by "
        "its analysis, every setting and the inputs' fingerprints), **pending** that it has not run with these "
        "settings, **failed** that its last run raised the error shown. The app never runs a study: copy the "
        "command lines under each file into a terminal (`--engine ray` runs its tasks on a Ray cluster).\n\n"
        "**Stored results** are the study steps, alignments and out-of-fold affect predictions on disk, newest "
        "first. **Open on its page** selects the result's dataset, encoders, layers and pooling in the sidebar and "
        "its settings on its page, then opens that page: with the same settings the page finds the same stored "
        "result and draws it at once, without running anything.")

st.subheader("Study files")
other = st.text_input("Another study file", key="studies_other_path", persist_state="session",
                      placeholder="/path/to/my_study.toml",
                      help="A study file anywhere on this machine, shown below the ones found in studies/ and in your "
                           "studies folder. The app lists studies and opens their results; it never runs them: studies "
                           "run headless, with the command lines shown under each file.")
if other.strip():
    try:  # on a shared server a browser must not make the app read files outside the data roots
        data_roots().check(other.strip(), "study file")
    except DatasetError as error:
        st.error(str(error))
        other = ""
for path in studies.study_files(other):
    with st.container(border=True):
        study = studies.study_or_error(path)
        if isinstance(study, StudyError):
            st.markdown(f"**{studies.shown_path(path)}**")
            note = studies.missing_data_note(path, study)
            if note:  # an example of the repository, not the user's mistake
                st.info(note)
            else:
                st.error(str(study))
            continue
        states = studies.statuses(study)
        done = sum(status.state == "done" for status in states)
        st.markdown(f"**{studies.shown_path(path)}** · {study.name} · {done} of {len(states)} steps done")
        st.caption(f"{study.description} Datasets: {', '.join(study.datasets)}; encoders: "
                   f"{', '.join(study.encoders)}; pooling: {study.pooling}.".strip())
        st.dataframe(studies.steps_table(states), hide_index=True, width="stretch")
        st.code(studies.run_commands(path), language="bash")

st.subheader("Stored results")
entries = studies.stored_entries()
if not entries:
    st.info("No stored results yet: run a study (the command lines above), or an analysis on its page.")
    st.stop()
st.dataframe(studies.entries_table(entries), hide_index=True, width="stretch")
by_id = {studies.entry_id(meta): meta for meta in entries}
if st.session_state.get("studies_result") not in by_id:  # a result deleted since it was picked
    st.session_state.pop("studies_result", None)
chosen = st.selectbox(
    "Result", list(by_id), key="studies_result", persist_state="session",
    format_func=lambda name: f"{by_id[name].get('label', '')} · {by_id[name]['kind']} · "
                             f"{studies.stored_time(by_id[name])}",
    help="A stored result to open on its page: a study step on its analysis's page, an alignment on the Alignment "
         "page, out-of-fold predictions on the Affect page.")
meta = by_id[chosen]
try:
    target = study_openers.opening(meta["kind"], meta)
except study_openers.OpenError as error:
    target = None
    st.caption(f"Cannot open it on a page: {error}.")
if target is not None:
    st.caption(f"Opens the **{target.title}** page with {len(target.state)} settings selected.")
    for note in target.notes:
        st.warning(note)
st.button("Open on its page", type="primary", on_click=study_openers.open_result, args=(meta["kind"], meta["key"]),
          disabled=target is None,
          help="Selects the result's dataset, encoders, layers and pooling in the sidebar and its settings on its "
               "page, then switches there: the page shows the stored result at once, nothing is re-run.")
if st.session_state.get("studies_open_error"):
    st.error(st.session_state["studies_open_error"])
