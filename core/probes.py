"""Layer-wise probes (science.md §4): affect R² and category balanced accuracy at every block.

The affect probe is the Affect page's (`core.affect.cross_validated_predictions`), so the
numbers of the final layer are the same. The category probe is a logistic regression
under the same grouped cross-validation; Leave-One-Category-Out is meaningless for it (the
held-out category never appears in training), so only LOTO and K-fold are offered.
Curve summaries use normalised depth (0 = first block, 1 = last layer) and treat scores
below zero as zero (an R² below 0 carries no information about where it peaks).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from core.affect import CLIP_SD, TARGETS, cross_validated_predictions, fold_splits, metrics_table

CATEGORY_SCHEMES = ("loto", "kfold")
LATE_THIRD = 2.0 / 3.0


@dataclass(frozen=True)
class CurveSummary:
    peak_depth: float  # normalised depth of the highest score
    centre_of_mass: float  # Σ depth·score / Σ score over normalised depth
    late_fraction: float  # share of the area under the curve in the last third of depth


def normalised_depth(n_layers: int) -> np.ndarray:
    """(L,) evenly spaced depths from 0 (first block) to 1 (last layer)."""
    return np.linspace(0.0, 1.0, n_layers) if n_layers > 1 else np.ones(1)


def curve_summary(depth: np.ndarray, score: np.ndarray) -> CurveSummary:
    """Peak depth, centre of mass and late concentration of one (L,) curve over (L,) depths."""
    depth, score = np.asarray(depth, float), np.clip(np.asarray(score, float), 0.0, None)
    if not score.any():
        return CurveSummary(float("nan"), float("nan"), float("nan"))
    grid = np.union1d(np.linspace(0.0, 1.0, 301), depth)  # fine grid: the last-third boundary falls on it
    curve = np.interp(grid, depth, score)
    total = np.trapezoid(curve, grid)
    late = grid >= LATE_THIRD
    late_area = np.trapezoid(curve[late], grid[late])
    centre = float(np.sum(depth * score) / np.sum(score))
    return CurveSummary(float(depth[np.argmax(score)]), centre, float(late_area / total) if total > 0 else 1.0)


@dataclass(frozen=True, eq=False)
class CategoryProbe:
    scheme: str
    balanced_accuracy: float  # over all out-of-fold predictions
    fold_accuracies: np.ndarray  # (n_folds,) accuracy within each held-out fold
    predictions: np.ndarray  # (N,) out-of-fold category predictions


def category_probe(features: np.ndarray, categories: np.ndarray, groups: np.ndarray, scheme: str, *,
                   n_splits: int = 5, seed: int = 0, clip_sd: float | None = CLIP_SD) -> CategoryProbe:
    """Logistic-regression category probe of (N, D) features under grouped CV (LOTO or K-fold)."""
    if scheme not in CATEGORY_SCHEMES:
        raise ValueError("Leave-One-Category-Out is meaningless for a category probe (the held-out category is "
                         "never seen in training); use Leave-One-Theme-Out or K-fold.")
    categories = np.asarray(categories).astype(str)
    if len(np.unique(categories)) < 2:
        raise ValueError("The category probe needs at least two categories.")
    predictions = np.empty(len(categories), dtype=object)
    fold_accuracies = []
    for train, test in fold_splits(len(categories), np.asarray(groups).astype(str), scheme, n_splits=n_splits,
                                   seed=seed):
        steps = [StandardScaler()] + ([FunctionTransformer(np.clip, kw_args={"a_min": -clip_sd, "a_max": clip_sd})]
                                      if clip_sd is not None else [])
        model = make_pipeline(*steps, LogisticRegression(max_iter=2000))
        model.fit(features[train], categories[train])
        predictions[test] = model.predict(features[test])
        fold_accuracies.append(float(np.mean(predictions[test] == categories[test])))
    predictions = predictions.astype(str)
    return CategoryProbe(scheme, float(balanced_accuracy_score(categories, predictions)),
                         np.array(fold_accuracies), predictions)


def layer_probe_table(features_by_layer: Mapping[str, np.ndarray], targets: np.ndarray, groups: np.ndarray,
                      scheme: str, *, categories: np.ndarray | None = None, category_scheme: str = "loto",
                      category_groups: np.ndarray | None = None, n_splits: int = 5, seed: int = 0,
                      progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Per layer (in the given depth order): R² per target with bootstrap CI, and category balanced accuracy.

    Rows: layer, layer_index, depth, probe (valence / arousal / category), score, low, high,
    where low/high are the bootstrap 95% CI for R² and the min/max fold accuracy for the
    category probe.
    """
    layers = list(features_by_layer)
    depth = normalised_depth(len(layers))
    rows = []
    for index, layer in enumerate(layers):
        features = np.asarray(features_by_layer[layer], dtype=float)
        cv = cross_validated_predictions(features, targets, groups, scheme, n_splits=n_splits, seed=seed)
        for record in metrics_table(cv).to_dict("records"):
            rows.append({"layer": layer, "layer_index": index, "depth": depth[index], "probe": record["target"],
                         "score": record["r2"], "low": record["r2_lo"], "high": record["r2_hi"]})
        if categories is not None:
            probe = category_probe(features, categories, groups if category_groups is None else category_groups,
                                   category_scheme, n_splits=n_splits, seed=seed)
            rows.append({"layer": layer, "layer_index": index, "depth": depth[index], "probe": "category",
                         "score": probe.balanced_accuracy, "low": float(probe.fold_accuracies.min()),
                         "high": float(probe.fold_accuracies.max())})
        if progress is not None:
            progress(index + 1, len(layers))
    return pd.DataFrame(rows)


def summary_table(curves: pd.DataFrame, probes: Sequence[str] = (*TARGETS, "category")) -> pd.DataFrame:
    """Curve summaries per probe of one encoder's layer_probe_table."""
    rows = []
    for probe in probes:
        curve = curves[curves["probe"] == probe].sort_values("depth")
        if curve.empty:
            continue
        summary = curve_summary(curve["depth"].to_numpy(), curve["score"].to_numpy())
        rows.append({"probe": probe, "peak_depth": summary.peak_depth, "peak_layer":
                     curve["layer"].iloc[int(np.argmax(curve["score"].to_numpy()))],
                     "centre_of_mass": summary.centre_of_mass, "late_fraction": summary.late_fraction})
    return pd.DataFrame(rows)
