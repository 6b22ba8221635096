"""The Affect page's analysis in one call (docs/science.md §2–3): every table and panel the page draws.

`affect_analysis` runs the ridge probe of valence and arousal for several encoder layers under
several cross-validations, then builds the metrics table (with the reliability ceiling), paired
bootstrap tests of every model against the first, per-held-out-group metrics, the geometry of
one scheme's out-of-fold errors and each feature array's effective dimensionality. Given a
`Memo`, out-of-fold predictions and feature ED are kept per feature digest and scheme, so a
change of the geometry options (z-scoring, grid) refits nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

from core.analyses.affect import (CLIP_SD, RIDGE_ALPHAS, TARGETS, CVPredictions, ceiling_table,
                                  cross_validated_predictions, metrics_table, paired_difference, per_group_metrics,
                                  with_ceiling)
from core.analyses.cv import CrossValidation
from core.analyses.error_geometry import (ErrorField, ErrorGeometry, Occupancy, error_field, error_geometry,
                                          error_vectors, geometry_table)
from core.analyses.spectra import effective_dimensionality
from core.data.datasets import ImageSet
from core.features.extract import FeatureSet
from core.features.results import ResultStore, result_key
from core.features.store import FeatureKey, Memo
from core.progress import Progress, Report

PREDICTIONS_KIND = "affect_predictions"  # the ResultStore kind of out-of-fold predictions


@dataclass(frozen=True, eq=False)
class ErrorPanel:
    """One model's out-of-fold predictions, ready to draw: arrays are (N, 2) as (valence, arousal)."""

    label: str
    image_ids: np.ndarray
    categories: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    errors: np.ndarray  # yhat - y, possibly z-scored
    field: ErrorField
    plv: float


@dataclass(frozen=True, eq=False)
class AffectAnalysis:
    """Everything the Affect page shows, for models named by label."""

    metrics: pd.DataFrame  # metrics_table rows of every model x scheme + model, ceiling columns (with_ceiling)
    ceiling_note: str  # why some target has no ceiling; "" when every target has one
    paired: pd.DataFrame  # model, versus (the first model), scheme, target, r2_difference, ci_lo, ci_hi, p_value
    per_group: pd.DataFrame  # per_group_metrics rows + model, scheme
    geometry_cv: CrossValidation  # the scheme whose errors the panels and geometries describe
    panels: list[ErrorPanel]  # one per model
    geometries: dict[str, ErrorGeometry]  # by model label
    measures: pd.DataFrame  # geometry_table + feature_ed, one row per model

    @property
    def occupancies(self) -> dict[str, tuple[Occupancy, Occupancy]]:
        """(trajectory, endpoint) occupancy of every model."""
        return {label: (geometry.trajectory, geometry.endpoint) for label, geometry in self.geometries.items()}

    @property
    def plv_by_category(self) -> pd.DataFrame:
        """One row per model: model, then the error PLV of each category."""
        return (pd.DataFrame({label: geometry.plv_by_category for label, geometry in self.geometries.items()}).T
                .rename_axis("model").reset_index())


def affect_analysis(image_set: ImageSet, features: Mapping[str, FeatureSet], cvs: Sequence[CrossValidation],
                    geometry_cv: CrossValidation, *, zscore: bool = False, bins: int = 20, memo: Memo | None = None,
                    store: ResultStore | None = None,
                    progress: Report | None = None) -> AffectAnalysis:
    """The Affect page's tables of (N, D) features by model label under every `cvs`; geometry under `geometry_cv`.

    `progress` counts the folds of every cross-validation actually fitted, one after another, its message naming
    the scheme and model. With a `store`, out-of-fold predictions stored there (by a study, another
    session) are read instead of fitted, and new ones are kept. A scheme the data cannot split (e.g. LOCO
    on one category) raises ValueError.
    """
    metadata = image_set.metadata
    targets = metadata[list(TARGETS)].to_numpy(dtype=float)
    categories = metadata["category"].to_numpy(dtype=str)

    def predictions(label: str, cv: CrossValidation) -> CVPredictions:
        def fit() -> CVPredictions:
            digest = features[label].key.digest
            stored = None if store is None else load_predictions(store, predictions_key(digest, cv))
            if stored is not None:
                return stored

            def report(folds: Progress) -> None:
                progress(Progress(folds.done, folds.total, f"{cv.label}: {label}"))

            fitted = cross_validated_predictions(np.asarray(features[label].features), targets, cv.groups(metadata), cv,
                                                 progress=None if progress is None else report)
            if store is not None:
                save_predictions(store, predictions_key(digest, cv), fitted,
                                 predictions_meta(label, features[label].key, cv, image_set.name))
            return fitted

        return _memoised(memo, (features[label].key.digest, "affect-cv", cv.key), fit)

    results = {(label, cv): predictions(label, cv) for label in features for cv in cvs}
    ceilings, ceiling_note = _ceilings(metadata, image_set.name)
    metrics = with_ceiling(pd.concat([metrics_table(out_of_fold).assign(model=label)
                                      for (label, _), out_of_fold in results.items()], ignore_index=True), ceilings)
    per_group = pd.concat([per_group_metrics(out_of_fold).assign(model=label, scheme=cv.scheme)
                           for (label, cv), out_of_fold in results.items()], ignore_index=True)
    panels, geometries = [], {}
    for label in features:
        out_of_fold = predictions(label, geometry_cv)
        errors = error_vectors(out_of_fold.targets, out_of_fold.predictions, zscore=zscore)
        geometries[label] = error_geometry(out_of_fold.targets, out_of_fold.predictions, out_of_fold.train_means,
                                           categories, zscore=zscore, bins=bins)
        panels.append(ErrorPanel(label, metadata["image_id"].to_numpy(dtype=str), categories, out_of_fold.targets,
                                 out_of_fold.predictions, errors, error_field(out_of_fold.targets, errors),
                                 geometries[label].plv))
    measures = geometry_table(geometries)
    measures["feature_ed"] = [
        _memoised(memo, (feature_set.key.digest, "feature-ed"),
                  lambda feature_set=feature_set: effective_dimensionality(np.asarray(feature_set.features)))
        for feature_set in features.values()]
    return AffectAnalysis(metrics, ceiling_note, paired_tests(results, targets), per_group, geometry_cv, panels,
                          geometries, measures)


def paired_tests(results: Mapping[tuple[str, CrossValidation], CVPredictions], targets: np.ndarray) -> pd.DataFrame:
    """Paired bootstrap R²(model) − R²(first model) of every other model, scheme and target over (N, T) ratings."""
    labels = list(dict.fromkeys(label for label, _ in results))
    cvs = list(dict.fromkeys(cv for _, cv in results))
    rows = []
    for label in labels[1:]:
        for cv in cvs:
            for column, target in enumerate(TARGETS):
                test = paired_difference(targets[:, column], results[label, cv].predictions[:, column],
                                         results[labels[0], cv].predictions[:, column], target)
                rows.append({"model": label, "versus": labels[0], "scheme": cv.scheme, "target": target,
                             "r2_difference": test.difference, "ci_lo": test.ci[0], "ci_hi": test.ci[1],
                             "p_value": test.p_value})
    return pd.DataFrame(rows)


def _ceilings(metadata: pd.DataFrame, dataset_name: str) -> tuple[pd.DataFrame, str]:
    """ceiling_table of the ratings and a note on every target without one (unusable or absent SD/N columns)."""
    try:
        ceilings, note = ceiling_table(metadata), ""
    except ValueError as error:  # unusable SD/N columns: the R² still stands, only its ceiling is dropped
        return ceiling_table(metadata, targets=()), f"No reliability ceiling: {error}"
    missing = [target for target in TARGETS if target not in set(ceilings["target"])]
    if missing:
        expected = ", ".join(f"`{target.capitalize()}_{suffix}`" for target in missing for suffix in ("SD", "N"))
        note = (f"No reliability ceiling for {' and '.join(missing)}: {dataset_name} has no per-image rater SD and N "
                f"columns ({expected}, as in OASIS), so the noise in its mean ratings is unknown.")
    return ceilings, note


def _memoised(memo: Memo | None, key: Hashable, compute: Callable[[], Any]) -> Any:
    return compute() if memo is None else memo.get_or_compute(key, compute)


def predictions_key(feature_digest: str, cv: CrossValidation) -> str:
    """The stored out-of-fold predictions of one feature array under one cross-validation."""
    return result_key(PREDICTIONS_KIND, {"cv": cv.key, "alphas": RIDGE_ALPHAS.tolist(), "clip_sd": CLIP_SD},
                      {"features": feature_digest})


def predictions_meta(label: str, feature_key: FeatureKey, cv: CrossValidation, dataset_name: str) -> dict:
    """What stored predictions say of themselves: a label, and the dataset, encoder, layer, pooling and folds they
    come from (so a page lists and reopens them from these fields, never from the label)."""
    return {"label": f"{label} · {cv.label}", "encoder": feature_key.encoder, "layer": feature_key.layer,
            "pooling": feature_key.pooling, "n_splits": cv.n_splits, "dataset_name": dataset_name,
            "dataset_fingerprint": feature_key.dataset}


def save_predictions(store: ResultStore, key: str, predictions: CVPredictions, meta: dict) -> None:
    """Keep out-of-fold predictions: every (N, T) / (N,) array as NPY, the scheme and target names in the meta."""
    store.put(PREDICTIONS_KIND, key, {**meta, "scheme": predictions.scheme,
                                      "target_names": list(predictions.target_names)},
              arrays={"targets": predictions.targets, "predictions": predictions.predictions, "fold": predictions.fold,
                      "held_out_group": predictions.held_out_group.astype(str), "alphas": predictions.alphas,
                      "train_means": predictions.train_means})


def load_predictions(store: ResultStore, key: str) -> CVPredictions | None:
    """Stored out-of-fold predictions, or None."""
    stored = store.get(PREDICTIONS_KIND, key)
    if stored is None:
        return None
    arrays = {name: np.asarray(stored.array(name)) for name in stored.array_names}
    return CVPredictions(stored.meta["scheme"], arrays["targets"], arrays["predictions"], arrays["fold"],
                         arrays["held_out_group"], arrays["alphas"], arrays["train_means"],
                         tuple(stored.meta["target_names"]))
