"""The Objective lab page's learning dynamics: the probe set's geometry over epochs for the selected runs, redrawn
every 2 s while one trains (each epoch's geometry is stored with its run as it ends)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import streamlit as st

from core.data.datasets import ImageSet
from core.figures.lab import run_label
from core.figures.lab_dynamics import (centroid_map, centroid_map_figure, class_distances_figure, dynamics_table,
                                       measure_figure)
from core.lab.dynamics import MEASURES, SPACES, read_dynamics
from core.lab.runs import TrainConfig, lab_dir
from views.ui.background import has_jobs
from views.ui.export_row import figure_block
from views.ui.lab_runs import JOBS, runs_provenance, stored_runs
from views.ui.settings import in_url

LABELS = {key: label for key, label, _ in MEASURES}
HELP = {key: text for key, _, text in MEASURES}
SHOWN = ("radius_mean", "neighbours_mean", "uniformity", "intra_class_variance_mean", "inter_class_distance_mean",
         "linear_probe_accuracy")  # the seeds' figures (CLAMP Fig. 3, Zhong et al. Fig. A.1) and a probe accuracy
SPACE_HELP = ("backbone: the features every analysis page reads from the run's encoder. embedding: the projection "
              "head's output, the space the loss acts on (SimCLR, CLAMP, language; supervised has none: its head "
              "gives class logits).")
MAP_HOW_TO_READ = (
    "Each point is one probe image's sub-manifold centroid (the mean of its augmented views, CLAMP-normalised), each "
    "circle its radius, coloured by category. The 2-D axes are a PCA fitted on the **last** stored epoch's "
    "centroids and applied to every epoch, so all epochs share one frame: at epoch 0 the untrained network maps "
    "everything close together (the collapsed start), and training spreads the sub-manifolds apart. Circles are "
    "drawn at radius × s, s = median 2-D / feature-space distance between each last-epoch centroid and its map "
    "neighbour (the Manifolds page's rule): relative sizes, a projection distorts distances. Drag the epoch slider "
    "or press Play.")


def dynamics_section(image_set: ImageSet, configs: Mapping[str, TrainConfig], cache: Path) -> None:
    """The dynamics figures of the selected runs: each measure over epochs, then one run's class distances at an
    epoch and its centroid map over epochs; widgets in the URL, figures live while a run trains."""
    controls = st.columns([2, 4, 2, 1])
    space = controls[0].radio("Space", SPACES, horizontal=True, **in_url("lab.dynamics_space", index=0),
                              help=SPACE_HELP)
    measures = controls[1].multiselect(
        "Measures", list(LABELS), format_func=LABELS.get, **in_url("lab.dynamics_measures", default=list(SHOWN)),
        help="One figure each, epoch on the x-axis, one line per run in its objective's colour. Uniformity adds "
             "each class's uniformity as thin lines (Zhong et al. Fig. A.1).")
    labels = {run_label(objective, config.run_id): config for objective, config in configs.items()}
    if not labels:
        st.info("Pick objectives to see their learning dynamics.")
        return
    run = controls[2].selectbox("Run (class distances, map)", list(labels), **in_url("lab.dynamics_run", index=0),
                                help="The run whose class-distance matrix and centroid map are drawn below.")
    epoch = controls[3].number_input(
        "Epoch", 0, max(config.epochs for config in configs.values()),
        **in_url("lab.dynamics_epoch", value=max(config.epochs for config in configs.values())),
        help="The epoch of the class-distance matrix (0 = before training); the latest stored epoch up to it is "
             "drawn while the run trains.")

    @st.fragment(run_every=2.0 if has_jobs(JOBS) else None)
    def figures() -> None:
        runs = stored_runs(configs, cache)
        found = {run_label(item.config.objective, item.run_id): [geometry for geometry in
                                                                 read_dynamics(lab_dir(cache) / item.run_id)
                                                                 if geometry.space == space] for item in runs}
        found = {name: geometries for name, geometries in found.items() if geometries}
        if not found:
            st.info(f"No {space} dynamics stored yet for the selected runs: each run measures its probe set before "
                    "training and at the end of every epoch (objectives without a projection head have no embedding).")
            return
        provenance = runs_provenance(image_set, [item for item in runs if run_label(item.config.objective,
                                                                                     item.run_id) in found],
                                     space=space)
        table = dynamics_table(found)
        columns = st.columns(2)
        for index, measure in enumerate([measure for measure in measures if (table["measure"] == measure).any()]):
            with columns[index % 2]:
                figure_block(measure_figure(table, measure, LABELS[measure]), table[table["measure"] == measure],
                             page="lab", figure=f"dynamics_{measure}_{space}", dataset=image_set.name,
                             provenance=provenance, how_to_read=HELP[measure] + " Epoch 0 is the network before any "
                             "training step; every epoch is measured on the same held-out probe images and views.")
        geometries = found.get(run)
        if geometries is None:
            st.info(f"{run} has no {space} dynamics stored yet.")
            return
        shown = [geometry for geometry in geometries if geometry.epoch <= epoch] or geometries[:1]
        columns = st.columns([2, 3])
        with columns[0]:
            figure_block(class_distances_figure(shown[-1], run), None, page="lab",
                         figure=f"class_distances_{space}_epoch{shown[-1].epoch}", dataset=image_set.name,
                         provenance=provenance,
                         how_to_read="d(f_t, D_i, D_j) = E‖f(x₀) − f(x₁)‖² between the views of class i and class "
                                     "j of the probe set (Zhong et al.); the diagonal is the intra-class term. "
                                     "Contrastive objectives grow both; supervised training shrinks the diagonal "
                                     "against the rest.")
        with columns[1]:
            points, scale = centroid_map(geometries)
            figure_block(centroid_map_figure(points, scale, run, space), points, page="lab",
                         figure=f"centroid_map_{space}", dataset=image_set.name, provenance=provenance,
                         how_to_read=MAP_HOW_TO_READ)

    figures()
