"""Brain page figures: model comparison (sorted bars, CIs, ceiling band, below-ceiling markers, FDR pairs), layer
curves, RDMs by category, second-order MDS."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.analyses.brain import evaluate, model_table, pairwise_table, rdm_candidates, second_order_mds
from core.data.neural import RdmReference
from core.figures.brain import (layer_curves_figure, mds_figure, model_comparison_figure, rdm_triplet_figure,
                                significance_matrix, sorted_models)


def group(name: str, seed: int, n_items: int = 12, n_subjects: int = 4, base=None) -> RdmReference:
    rng = np.random.default_rng(seed)
    base = rng.random(n_items * (n_items - 1) // 2) if base is None else base
    stack = []
    for _ in range(n_subjects):
        square = np.zeros((n_items, n_items))
        square[np.triu_indices(n_items, 1)] = base + 0.3 * rng.random(base.shape)
        stack.append(square + square.T)
    return RdmReference(name, np.array(stack), tuple(f"s{k}" for k in range(n_subjects)))


def tables():
    brain = group("brain", 0)
    base = brain.rdms.mean(axis=0)[np.triu_indices(12, 1)]
    models = [group("good", 1, n_subjects=1, base=base), group("noise", 2, n_subjects=1),
              group("noise2", 3, n_subjects=1)]
    result = evaluate(rdm_candidates([], models), [brain], "corr", n_bootstrap=40, resample="subjects", seed=0)
    return model_table(result), pairwise_table(result)


def test_the_model_comparison_sorts_the_bars_draws_cis_the_ceiling_and_the_markers() -> None:
    models, pairwise = tables()
    fig = model_comparison_figure(models, pairwise)
    bars = fig.data[0]
    assert list(bars.x) == list(sorted_models(models)["model"]) and bars.x[0] == "rdm · good"
    assert np.all(np.diff(np.asarray(bars.y, float)) <= 0)
    assert bars.error_y.array is not None
    band = [shape for shape in fig.layout.shapes if shape.type == "rect"][0]
    assert (band.y0, band.y1) == (models["ceiling_lower"][0], models["ceiling_upper"][0])
    markers = [trace for trace in fig.data if trace.name and trace.name.startswith("below the lower ceiling")]
    assert set(markers[0].x) == set(models.loc[models["below_lower_ceiling"], "model"])
    heat = [trace for trace in fig.data if trace.type == "heatmap"][0]
    assert np.asarray(heat.z).shape == (3, 3)


def test_the_significance_matrix_is_antisymmetric_and_only_fdr_significant() -> None:
    pairwise = pd.DataFrame([{"model_a": "a", "model_b": "b", "difference": 0.2, "p_fdr": 0.01},
                             {"model_a": "a", "model_b": "c", "difference": -0.1, "p_fdr": 0.2}])
    matrix = significance_matrix(["b", "a", "c"], pairwise)
    np.testing.assert_array_equal(matrix, [[0, -1, 0], [1, 0, 0], [0, 0, 0]])


def test_layer_curves_draw_a_line_and_band_per_encoder_over_the_ceiling() -> None:
    curves = pd.DataFrame({"encoder": ["e1", "e1", "e2", "e2"], "layer": ["a", "b", "a", "b"],
                           "depth": [0, 1, 0, 1.0], "value": [0.1, 0.3, 0.0, 0.05],
                           "ci_low": [0.0, 0.2, -0.1, 0.0], "ci_high": [0.2, 0.4, 0.1, 0.1]})
    fig = layer_curves_figure(curves, "hIT", (0.39, 0.68))
    lines = [trace for trace in fig.data if trace.mode == "lines+markers"]
    assert [trace.name for trace in lines] == ["e1", "e2"] and len(fig.data) == 4
    assert [shape.y0 for shape in fig.layout.shapes] == [0.39]


def test_the_rdm_triplet_shows_percentiles_and_their_difference() -> None:
    brain = group("brain", 0)
    fig = rdm_triplet_figure(brain.mean, brain.rdms[0], ["x"] * 6 + ["y"] * 6, ("brain", "s0"))
    heatmaps = [trace for trace in fig.data if trace.type == "heatmap" and trace.zmin is not None and trace.zmin != -0.5]
    assert len(heatmaps) == 3
    assert np.nanmax(np.asarray(heatmaps[0].z, float)) == 1.0 and heatmaps[2].zmin == -1


def test_the_mds_draws_a_point_per_rdm_coloured_by_kind() -> None:
    brain = group("brain", 0)
    rdms = {f"brain · {s}": vector for s, vector in zip(brain.subjects, brain.rdms[:, *np.triu_indices(12, 1)])}
    rdms["model"] = rdms["brain · s0"] + 1
    points = second_order_mds(rdms)
    fig = mds_figure(points, {**{name: "subject" for name in rdms}, "model": "model RDM file"})
    assert sorted(len(trace.x) for trace in fig.data) == [1, 4]
