"""Similarity: model × model and layer × layer matrices over a family of measures, with CIs, controls, ceilings."""
from dataclasses import asdict

import pandas as pd
import streamlit as st

from core.analyses.matching import stored_alignment_key
from core.analyses.rdm import RDM_METRIC_LABELS, RDM_METRICS
from core.analyses.similarity import (CONTROLS, MEASURES, NoiseCeiling, SimilarityMatrix, SimilaritySettings, compare, controls,
                                      matrix_key, measure_agreement, noise_ceiling, paired_test)
from core.export import export_filename
from core.figures.similarity import agreement_figure, depth_curves_figure, similarity_heatmap
from core.jobs import job_key
from core.provenance import provenance_from_keys
from views.ui import resources
from views.ui.background import job_outcomes, job_progress, submit_job
from views.ui.export_row import figure_block, table_download
from views.ui.similarity_sources import (dataset_sources, depth_table, load_features, similarity_store,
                                         upload_source)
from views.ui.sidebar import page_start
from views.ui.studies import add_to_study

KINDS = {"pairs": "All pairs of the chosen sources", "layers": "Layer × layer of two encoders",
         "reference": "Every layer vs a reference"}
DEFAULT_MEASURES = ["cka_linear", "rsa_spearman", "mutual_knn"]

selection, image_set = page_start(
    "Similarity",
    "How alike two representations of the same items are, by a family of measures (docs/science.md §8): RSA, "
    "linear / RBF / debiased CKA, Procrustes, mutual k-NN and CKNNA, with bootstrap CIs over items, controls "
    "and noise ceilings. Conclusions that hold across measures are the ones to trust.", needs_images=False)
items = image_set.metadata["image_id"].astype(str).to_numpy()

sources = dataset_sources(image_set, selection)
uploads = st.file_uploader(
    "Add representations: N × d embeddings", type=["npy", "txt", "csv"], accept_multiple_files=True,
    key="similarity_uploads",
    help=f"Each file: the {len(items)} items of {image_set.name} in the dataset's order, one row each ((1, N, d) "
         "GWTune arrays too), or a CSV with each row's image_id first (the order is then restored).")
for upload in uploads or []:
    try:
        sources |= upload_source(upload.name, upload.getvalue(), items)
    except ValueError as error:
        st.error(str(error))
if len(sources) < 2:
    st.info("Similarity needs two representations of the same items: extract encoder layers (Features above; pick "
            "encoders and layers in the sidebar), use a dataset with human embeddings (the demo has one; an "
            "`embeddings:` dataset holds several), or upload N × d matrices.")
    st.stop()

controls_row = st.columns([3, 2])
measures = controls_row[0].multiselect(
    "Measures", list(MEASURES), default=DEFAULT_MEASURES, format_func=lambda name: MEASURES[name].label,
    key="similarity_measures", persist_state="session",
    help="Each is computed on every cell. RSA compares RDMs (by the RDM metric below); CKA compares centred "
         "kernels; Procrustes is a distance (0 = identical up to rotation and scale); mutual k-NN and CKNNA "
         "look only at each item's k nearest neighbours. 'How to read this' under each matrix says what each is "
         "invariant to and where its chance level lies.")
kind = controls_row[1].radio("Matrix", list(KINDS), format_func=KINDS.get, key="similarity_kind",
                             persist_state="session",
                             help="All pairs among chosen sources; the blocks of one encoder against the blocks of "
                                  "another; or every extracted layer against one reference (a depth curve; with "
                                  "two or more references, their mean and the noise ceiling).")
settings_row = st.columns(5)
rdm_metric = settings_row[0].selectbox("RDM metric", RDM_METRICS, format_func=RDM_METRIC_LABELS.get,
                                       key="similarity_rdm_metric", persist_state="session",
                                       help="Dissimilarity behind every RSA measure: cosine for DNN features, "
                                            "euclidean for SPoSE-style human embeddings.")
k = settings_row[1].number_input("k (neighbours)", 1, 1000, 10, key="similarity_k", persist_state="session",
                                 help="Mutual k-NN and CKNNA: neighbours per item by cosine similarity "
                                      "(Huh et al. 2024 use 10). Capped below N − 1 with a warning.")
rbf_sigma = settings_row[2].number_input("RBF σ fraction", 0.05, 10.0, 0.8, step=0.1, key="similarity_rbf_sigma",
                                         persist_state="session",
                                         help="RBF CKA's bandwidth as a fraction of the median pairwise distance of "
                                              "each representation (Kornblith et al.: 0.8).")
bootstrap = settings_row[3].toggle("Bootstrap CIs", key="similarity_bootstrap", persist_state="session",
                                   help="Resample the items with replacement (seeded) for 95% percentile CIs on "
                                        "every cell and the paired tests; pairs of copies of one item are dropped.")
n_bootstrap = settings_row[4].number_input("Resamples", 20, 10000, 1000, step=100, key="similarity_resamples",
                                           persist_state="session", disabled=not bootstrap,
                                           help="1,000 is the usual choice; each resample costs about one matrix.")
if not measures:
    st.info("Pick at least one measure.")
    st.stop()

references: list[str] = []
if kind == "pairs":
    chosen = st.multiselect("Sources", list(sources), default=list(sources)[:12], key="similarity_sources",
                            persist_state="session", help="Representations compared pairwise (rows = columns).")
    rows = columns = chosen
elif kind == "layers":
    encoders = list(dict.fromkeys(source.encoder for source in sources.values() if source.encoder))
    if not encoders:
        st.info("Layer × layer needs extracted encoder layers: pick encoders and several layers in the sidebar and "
                "extract them (Features above).")
        st.stop()
    pick = st.columns(2)
    first = pick[0].selectbox("Rows: encoder", encoders, key="similarity_rows_encoder", persist_state="session",
                              help="Its extracted layers are the rows, shallow to deep.")
    second = pick[1].selectbox("Columns: encoder", encoders, index=min(1, len(encoders) - 1),
                               key="similarity_columns_encoder", persist_state="session",
                               help="Its extracted layers are the columns; the same encoder twice gives its "
                                    "layer-to-layer similarity.")
    rows = [name for name, source in sources.items() if source.encoder == first]
    columns = [name for name, source in sources.items() if source.encoder == second]
else:
    candidates = [name for name, source in sources.items() if not source.encoder]
    if not candidates:
        st.info("A depth curve needs a reference that is not an encoder layer: a human embedding of the dataset or "
                "an upload.")
        st.stop()
    references = st.multiselect("Reference(s)", candidates, default=candidates, key="similarity_references",
                                persist_state="session",
                                help="One reference: its column. Several (e.g. the four THINGS participant groups): "
                                     "each layer's mean over them, with their noise ceiling behind the curves.")
    rows = [name for name, source in sources.items() if source.encoder]
    columns = references
if not rows or not columns:
    st.info("Choose what to compare above.")
    st.stop()

settings = SimilaritySettings(rdm_metric=rdm_metric, k=int(k), rbf_sigma=float(rbf_sigma))
resamples = int(n_bootstrap) if bootstrap else 0
fingerprints = {name: sources[name].fingerprint for name in dict.fromkeys(rows + columns)}
key = matrix_key({name: fingerprints[name] for name in rows}, {name: fingerprints[name] for name in columns},
                 measures, settings, resamples, 0)
store, results = similarity_store(), resources.result_cache()
registry = resources.job_registry()
job = job_key("similarity", key)


def run_matrix() -> None:
    """Button callback: one background job computing the matrix, its controls and (several references) the ceiling."""
    arrays = {name: load_features(image_set, sources[name]) for name in dict.fromkeys(rows + columns)}

    def work(report):
        matrix = compare({name: arrays[name] for name in rows}, {name: arrays[name] for name in columns}, measures,
                         settings, n_bootstrap=resamples, fingerprints=fingerprints, progress=report)
        control_rows = {name: arrays[name] for name in rows}
        results.set(f"{key}|controls", controls(control_rows, measures, settings).to_dict("records"))
        if len(references) >= 2:
            ceiling = noise_ceiling({name: arrays[name] for name in references}, measures, settings)
            results.set(f"{key}|ceiling", {name: asdict(value) for name, value in ceiling.items()})
        store.put(key, matrix)  # last: a stored matrix means its controls and ceiling are there too
        return matrix

    submit_job("similarity_jobs", job, f"{len(rows)} × {len(columns)} · {', '.join(measures)}", work)


matrix: SimilarityMatrix | None = store.get(key)
status = registry.status(job)
st.button("Compute", type="primary", on_click=run_matrix, disabled=matrix is not None or (
    status is not None and status.state in ("queued", "running")),
          help="Runs in the background with progress; the matrix is stored on disk, so the same sources and "
               "settings open at once next time (also after a restart).")
add_to_study("similarity", dict(
    measures=measures, matrix=kind, rdm_metric=rdm_metric, k=int(k), rbf_sigma=float(rbf_sigma), bootstrap=resamples,
    **(dict(sources=rows) if kind == "pairs" else dict(rows_encoder=first, columns_encoder=second) if kind == "layers"
       else dict(references=references))), selection)
job_progress("similarity_jobs", "steps", "Stops after the current resample.")
job_outcomes([job], "Cancelled.")
if matrix is None:
    st.info(f"{len(rows)} × {len(columns)} cells × {len(measures)} measures" +
            (f", {resamples} resamples" if resamples else "") + ": press **Compute**.")
    st.stop()

for warning in matrix.warnings:
    st.warning(warning)
control_table = pd.DataFrame(results.get(f"{key}|controls") or [], columns=["representation", "control", "measure",
                                                                              "value"])
ceilings = results.get(f"{key}|ceiling") or {}
keys = [sources[name].feature_key for name in dict.fromkeys(rows + columns) if sources[name].feature_key]
provenance = provenance_from_keys(keys, {"measures": measures, "kind": kind, "rows": rows, "columns": columns,
                                         **asdict(settings), "n_bootstrap": resamples, "seed": 0},
                                  dataset=image_set.name, dataset_fingerprint=image_set.fingerprint,
                                  store=resources.feature_store())
table = matrix.table()


def how_to_read(measure: str) -> str:
    info = MEASURES[measure]
    return (f"**{info.label}** — identity {info.identity:g} (a representation vs itself); "
            f"{'higher' if info.higher_is_similar else 'lower'} = more alike. Invariant to {info.invariant_to}. "
            f"Chance: {info.chance}. The control columns compare each row with itself ({CONTROLS['self']}), "
            f"{CONTROLS['rotation']} (should equal the identity for rotation-invariant measures) and "
            f"{CONTROLS['shuffle']} (chance). Hover a cell for its 95% CI when bootstrapped.")


for measure in measures:
    shown = control_table[control_table["measure"] == measure].set_index(["representation", "control"])["value"]
    if kind == "reference":
        curves = depth_table(matrix, measure, sources, references)
        ceiling = ceilings.get(measure)
        ceiling = None if ceiling is None else NoiseCeiling(**{**ceiling, "references": tuple(ceiling["references"])})
        figure_block(depth_curves_figure(curves, measure, ceiling), curves, page="similarity",
                     figure=f"depth_{measure}", dataset=image_set.name, provenance=provenance,
                     how_to_read=how_to_read(measure) + " Each curve is a layer's value against the reference (the "
                     "mean over references when there are several); the grey band is their noise ceiling: lower = "
                     "each reference vs the mean of the others, upper = vs the mean of all.")
    else:
        figure_block(similarity_heatmap(matrix, measure, shown), table[table["measure"] == measure],
                     page="similarity", figure=f"matrix_{measure}", dataset=image_set.name, provenance=provenance,
                     how_to_read=how_to_read(measure))

if len(measures) >= 2 and kind != "reference":
    agreement = measure_agreement(matrix)
    figure_block(agreement_figure(agreement), agreement.reset_index(names="measure"), page="similarity",
                 figure="agreement", dataset=image_set.name, provenance=provenance, how_to_read=(
                     "Spearman ρ between two measures' values across the matrix's distinct pairs (distances "
                     "negated). Near 1: the measures rank the pairs alike, so a conclusion drawn from one holds "
                     "for the other; low or negative: which pair is 'more similar' depends on the measure."))

st.subheader("Every pair × measure")
st.dataframe(table, hide_index=True, width="stretch", column_config={
    column: st.column_config.NumberColumn(format="%.4f") for column in ("value", "ci_low", "ci_high")})
table_download("Pairs × measures (CSV)", table, provenance,
               file_stem=export_filename("similarity", "pairs", image_set.name, "", ext=""),
               help="Every cell of the matrix for every measure, with its 95% CI when bootstrapped.")
if ceilings:
    st.dataframe(pd.DataFrame(ceilings.values())[["measure", "lower", "upper"]], hide_index=True)


def stored_alignments() -> pd.DataFrame:
    """GWOT matching of every (row, column) pair the Alignment page has aligned (read, never re-run)."""
    records = []
    for row in matrix.rows:
        for column in matrix.columns:
            found = results.get(stored_alignment_key(image_set.fingerprint, f"{row}|{sources[row].pooling}",
                                                     f"{column}|{sources[column].pooling}"))
            if found and row != column:
                records.append({"row": row, "column": column, **found})
    return pd.DataFrame(records)


alignments = stored_alignments()
st.subheader("GWOT matching (stored alignments)")
if alignments.empty:
    st.caption("No pair of this matrix has been aligned on the Alignment page yet; GWOT is never re-run here. "
               "Align a pair there and its top-1 and category matching appear in this table.")
else:
    st.dataframe(alignments, hide_index=True, width="stretch")
    table_download("GWOT matching (CSV)", alignments, provenance,
                   file_stem=export_filename("similarity", "gwot_matching", image_set.name, "", ext=""),
                   help="Top-1 and category matching of the selected trial of each stored alignment, its settings.")

if matrix.resamples is not None and len(matrix.rows) >= 2:
    st.subheader("Paired test: which row is closer to a column?")
    test_row = st.columns(4)
    first_row = test_row[0].selectbox("Model A", matrix.rows, key="similarity_test_a", persist_state="session",
                                      help="The two rows are compared over the same bootstrap resamples.")
    second_row = test_row[1].selectbox("Model B", matrix.rows, index=1, key="similarity_test_b",
                                       persist_state="session", help="Compared with model A.")
    against = test_row[2].selectbox("Reference", matrix.columns, key="similarity_test_reference",
                                    persist_state="session", help="The column both are compared to.")
    test_measure = test_row[3].selectbox("Measure", matrix.measures, format_func=lambda n: MEASURES[n].label,
                                         key="similarity_test_measure", persist_state="session",
                                         help="For a distance (Procrustes) a negative difference means A is closer.")
    test = paired_test(matrix, test_measure, first_row, second_row, against)
    st.metric(f"{MEASURES[test_measure].label}: A − B", f"{test.difference:+.4f}",
              help=f"95% CI [{test.ci_low:.4f}, {test.ci_high:.4f}] over {test.n_bootstrap} resamples; two-sided "
                   f"p = {test.p_value:.3g} (2 × the smaller share of resampled differences on either side of 0).")
    st.caption(f"95% CI [{test.ci_low:.4f}, {test.ci_high:.4f}] · p = {test.p_value:.3g} · {test.n_bootstrap} "
               "resamples")
