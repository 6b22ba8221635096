"""Layer-wise probes (docs/science.md §4): affect R² and category balanced accuracy at every block.

The affect probe is the Affect page's (`core.analyses.affect.cross_validated_predictions` +
`metrics_table`), so the numbers of the final layer are the same. The category probe is a
logistic regression under the same grouped cross-validation; Leave-One-Category-Out is
meaningless for it (the held-out category never appears in training), so only LOTO and
K-fold are offered. Curve summaries use normalised depth (0 = first block, 1 = last layer;
an encoder with a single layer, such as raw pixels, sits at 1: its one layer is its final
embedding, compared with the other encoders' final layers) and treat scores below zero as
zero (an R² below 0 carries no information about where it peaks). Scores of every layer
are cached by feature digest, so reruns and added encoders refit nothing already computed;
`pending_fits` lists what a run would still fit; a background job's progress counts their cross-validation
folds (`fold_count`), so a long fit (a wide layer, LOTO's hundreds of refits) moves fold by fold.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_limits

from core.analyses.affect import (CLIP_SD, TARGETS, CVPredictions, cross_validated_predictions, metrics_table,
                                  standardise_and_clip)
from core.analyses.cv import CrossValidation
from core.data.datasets import ImageSet
from core.encoders.registry import EncoderInfo
from core.features.extract import feature_keys
from core.features.store import FeatureStore, ResultCache
from core.progress import Progress, Report

PROBES = (*TARGETS, "category")
LATE_THIRD = 2.0 / 3.0
N_BOOT = 1000
LBFGS_BUDGET = 100  # iterations before the category probe switches to Newton (see _fit_logistic)
CACHE_VERSION = "probe-v2"  # bump when a probe's definition changes: old cached scores are then ignored


@dataclass(frozen=True)
class CurveSummary:
    peak_depth: float  # normalised depth of the highest score
    centre_of_mass: float  # Σ depth·score / Σ score over normalised depth
    late_fraction: float  # share of the area under the curve in the last third of depth


def normalised_depth(n_layers: int) -> np.ndarray:
    """(L,) evenly spaced depths from 0 (first block) to 1 (last layer); a single layer is the final one: 1."""
    return np.linspace(0.0, 1.0, n_layers) if n_layers > 1 else np.ones(1)


def curve_summary(depth: np.ndarray, score: np.ndarray) -> CurveSummary:
    """Peak depth, centre of mass and late concentration of one (L,) curve over (L,) depths."""
    depth, score = np.asarray(depth, float), np.clip(np.asarray(score, float), 0.0, None)
    if not score.any():
        return CurveSummary(float("nan"), float("nan"), float("nan"))
    if len(score) < 2:  # a single layer (pixels) has a peak but no distribution over depth
        return CurveSummary(float(depth[0]), float("nan"), float("nan"))
    grid = np.union1d(np.linspace(0.0, 1.0, 301), depth)  # fine grid: the last-third boundary falls on it
    curve = np.interp(grid, depth, score)
    total = np.trapezoid(curve, grid)
    late = grid >= LATE_THIRD
    late_area = np.trapezoid(curve[late], grid[late])
    centre = float(np.sum(depth * score) / np.sum(score))
    return CurveSummary(float(depth[np.argmax(score)]), centre, float(late_area / total) if total > 0 else 1.0)


@dataclass(frozen=True)
class ProbeSettings:
    """Cross-validation of the layer probes (part of every cached score's key)."""

    scheme: str = "loto"  # affect probe: loto | loco | kfold | gkfold
    category_scheme: str = "loto"  # category probe: loto | kfold | gkfold (LOCO is meaningless there)
    n_splits: int = 5  # folds of the K-fold scheme
    seed: int = 0

    def cv(self, probe: str) -> CrossValidation:
        """The cross-validation of `probe` in {"affect", "category"}."""
        return CrossValidation(self.scheme if probe == "affect" else self.category_scheme, self.n_splits, self.seed)

    def cache_key(self, digest: str, probe: str) -> str:
        """Key of one layer's scores for `probe` in {"affect", "category"} (the seed also seeds the bootstrap)."""
        return f"{CACHE_VERSION}|{digest}|{probe}|{self.cv(probe).key}|{self.seed}|clip{CLIP_SD}|boot{N_BOOT}"


@dataclass(frozen=True, eq=False)
class ProbeTargets:
    """What the probes predict and how images group: ratings (N, 2) or None, categories and themes (N,)."""

    ratings: np.ndarray | None
    categories: np.ndarray
    themes: np.ndarray

    @classmethod
    def from_metadata(cls, metadata: pd.DataFrame) -> ProbeTargets:
        ratings = metadata[list(TARGETS)].to_numpy(dtype=float) if set(TARGETS) <= set(metadata) else None
        return cls(ratings, metadata["category"].to_numpy(dtype=str), metadata["group"].to_numpy(dtype=str))

    def groups(self, cv: CrossValidation) -> np.ndarray:
        """(N,) held-out units of `cv`: categories for LOCO, theme groups otherwise (K-fold ignores them)."""
        return self.categories if cv.definition.groups_column == "category" else self.themes


@dataclass(frozen=True, eq=False)
class CategoryProbe:
    scheme: str
    balanced_accuracy: float  # over all out-of-fold predictions
    ci: tuple[float, float]  # bootstrap 95% CI over images
    fold_accuracies: np.ndarray  # (n_folds,) accuracy within each held-out fold
    predictions: np.ndarray  # (N,) out-of-fold category predictions


class RowSpanProjection(TransformerMixin, BaseEstimator):
    """(n, D) -> (n, r) coordinates in the row span of the training features when D > n_train.

    An L2-penalised linear model's weights lie in the span of its training rows (representer
    theorem) and the penalty is invariant under this orthonormal change of basis, so the
    logistic regression fitted on the r <= n_train coordinates is the same model: it just
    makes a Newton solver affordable for wide layers (3072-d pixels, 1280-d embeddings).
    """

    def fit(self, X, y=None):
        self.basis_ = np.linalg.svd(X, full_matrices=False)[2].T if X.shape[1] > X.shape[0] else None
        return self

    def transform(self, X):
        return X if self.basis_ is None else X @ self.basis_


def category_probe(features: np.ndarray, categories: np.ndarray, groups: np.ndarray, cv: CrossValidation, *,
                   clip_sd: float | None = CLIP_SD, train_features: np.ndarray | None = None,
                   progress: Report | None = None) -> CategoryProbe:
    """Logistic-regression category probe of (N, D) features under grouped CV (LOTO or K-fold) over (N,) groups.

    `train_features` (N, D), if given, are what each fold trains on (e.g. clean features when
    testing corrupted ones); the held-out rows are always predicted from `features`. The
    bootstrap CI uses `cv.seed`. `progress` counts the folds: 0 before the first, then after every one.
    """
    if not cv.definition.suits_category_probe:
        raise ValueError("Leave-One-Category-Out is meaningless for a category probe (the held-out category is "
                         "never seen in training); use Leave-One-Theme-Out or K-fold.")
    categories = np.asarray(categories).astype(str)
    if len(np.unique(categories)) < 2:
        raise ValueError("The category probe needs at least two categories; this dataset has one.")
    predictions = np.empty(len(categories), dtype=object)
    fold_accuracies = []
    fitted_on = features if train_features is None else train_features
    splits = cv.split(groups)
    if progress is not None:
        progress(Progress(0, len(splits)))
    for index, (train, test) in enumerate(splits):
        predictions[test] = _fit_logistic(fitted_on[train], categories[train], clip_sd).predict(features[test])
        fold_accuracies.append(float(np.mean(predictions[test] == categories[test])))
        if progress is not None:
            progress(Progress(index + 1, len(splits)))
    predictions = predictions.astype(str)
    return CategoryProbe(cv.scheme, float(balanced_accuracy_score(categories, predictions)),
                         _balanced_accuracy_ci(categories, predictions, cv.seed), np.array(fold_accuracies),
                         predictions)


def _fit_logistic(features: np.ndarray, categories: np.ndarray, clip_sd: float | None):
    """L2 logistic regression (C = 1) of (n, D) features: L-BFGS, or Newton in the row span if L-BFGS stalls.

    The problem is strictly convex, so both reach the same model; L-BFGS is fastest on
    well-conditioned features, Newton on ill-conditioned ones (raw pixels: ~7x faster).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = make_pipeline(*standardise_and_clip(clip_sd), LogisticRegression(max_iter=LBFGS_BUDGET))
        model.fit(features, categories)
    if model[-1].n_iter_.max() < LBFGS_BUDGET:
        return model
    return make_pipeline(*standardise_and_clip(clip_sd), RowSpanProjection(),
                         LogisticRegression(solver="newton-cholesky", max_iter=200)).fit(features, categories)


@dataclass(frozen=True)
class LayerScore:
    """One probe's score at one layer (stored in the ResultCache as its dict)."""

    probe: str  # valence | arousal | category
    scheme: str
    score: float  # R² or balanced accuracy over all out-of-fold predictions
    ci_lo: float  # bootstrap 95% CI over images
    ci_hi: float
    fold_sd: float  # SD of the per-fold scores
    n_folds: int


def layer_scores(features: np.ndarray, targets: ProbeTargets, settings: ProbeSettings, probe: str, *,
                 progress: Report | None = None) -> list[LayerScore]:
    """Scores of one layer's (N, D) features for probe "affect" (one per target) or "category" (one).

    Per-fold R² divides by the variance over ALL images, so the fold-size-weighted mean of the
    fold scores is exactly the pooled R² (`score`). `progress` counts the cross-validation's folds (0, then after
    each); the bootstrap CIs follow the last one.
    """
    features = np.asarray(features, dtype=np.float64)
    cv = settings.cv(probe)
    if probe == "category":
        # One BLAS thread: sklearn's newton-cholesky solve ran 4-15x slower with OpenBLAS's two threads on two
        # busy cores (bench/study.py: one layer 0.8 s alone vs 3.5-13.7 s threaded), and never faster.
        with threadpool_limits(limits=1):
            result = category_probe(features, targets.categories, targets.groups(cv), cv, progress=progress)
        return [LayerScore("category", cv.scheme, result.balanced_accuracy, *result.ci,
                           float(np.std(result.fold_accuracies)), len(result.fold_accuracies))]
    if targets.ratings is None:
        raise ValueError("This dataset has no valence/arousal ratings, so there is no affect probe.")
    predictions = cross_validated_predictions(features, targets.ratings, targets.groups(cv), cv, progress=progress)
    scores, sizes = fold_r2(predictions)
    fold_sd = np.sqrt(np.average((scores - np.average(scores, axis=0, weights=sizes)) ** 2, axis=0, weights=sizes))
    return [LayerScore(record["target"], cv.scheme, record["r2"], record["r2_lo"], record["r2_hi"],
                       float(fold_sd[column]), len(sizes))
            for column, record in enumerate(metrics_table(predictions, n_boot=N_BOOT, seed=cv.seed).to_dict("records"))]


def fold_r2(out_of_fold: CVPredictions) -> tuple[np.ndarray, np.ndarray]:
    """Per-fold R² (n_folds, T) against the variance over all images, and fold sizes (n_folds,).

    Dividing by the variance of all images (not the fold's own) keeps a fold of one theme
    from scoring badly just because its ratings are homogeneous, and makes the
    size-weighted mean of the folds exactly the pooled R².
    """
    fold, targets = out_of_fold.fold, out_of_fold.targets
    squared_error = (out_of_fold.predictions - targets) ** 2
    folds = np.unique(fold)
    scores = np.array([1.0 - squared_error[fold == index].mean(axis=0) / targets.var(axis=0) for index in folds])
    return scores, np.array([np.sum(fold == index) for index in folds])


def probe_kinds(probes: Sequence[str]) -> list[str]:
    """The fits behind `probes`: "affect" (one ridge fit gives valence and arousal) and/or "category"."""
    return ["affect"] * any(probe in TARGETS for probe in probes) + ["category"] * ("category" in probes)


def layer_probe_table(features_by_layer: Mapping[str, np.ndarray], targets: ProbeTargets,
                      settings: ProbeSettings = ProbeSettings(), *, probes: Sequence[str] = PROBES) -> pd.DataFrame:
    """One encoder's curves from in-memory (N, D) features per layer (given in depth order), nothing cached.

    Columns: layer, layer_index, n_layers, depth, probe, scheme, score, ci_lo, ci_hi, fold_sd, n_folds.
    """
    scores = {(layer, kind): layer_scores(np.asarray(features), targets, settings, kind)
              for layer, features in features_by_layer.items() for kind in probe_kinds(probes)}
    return curve_table(list(features_by_layer), scores, probes)


def curve_table(layers: Sequence[str], scores: Mapping[tuple[str, str], Sequence[LayerScore]],
                probes: Sequence[str] = PROBES) -> pd.DataFrame:
    """The rows of layer_probe_table from the scores of every (layer, kind), layers in depth order."""
    depth = normalised_depth(len(layers))
    rows = [{"layer": layer, "layer_index": index, "n_layers": len(layers), "depth": float(depth[index]),
             **asdict(score)}
            for index, layer in enumerate(layers) for kind in probe_kinds(probes)
            for score in scores[layer, kind] if score.probe in probes]
    return pd.DataFrame(rows)


def pending_fits(image_set: ImageSet, encoder: EncoderInfo, *, settings: ProbeSettings = ProbeSettings(),
                 probes: Sequence[str] = PROBES, pooling: str = "auto",
                 results: ResultCache | None = None) -> list[tuple[str, str]]:
    """(layer, kind) of every fit of `encoder` whose scores are not in `results` (all of them without a cache)."""
    keys = feature_keys(image_set, encoder, "all", pooling)
    return [(layer, kind) for layer, key in keys.items() for kind in probe_kinds(probes)
            if results is None or settings.cache_key(key.digest, kind) not in results]


def fold_count(image_set: ImageSet, settings: ProbeSettings, fits: Sequence[tuple[str, str]]) -> int:
    """Cross-validation folds of (layer, kind) `fits` on `image_set`: the units of a probe job's progress."""
    per_kind = {kind: settings.cv(kind).get_n_splits(settings.cv(kind).groups(image_set.metadata))
                for kind in {kind for _, kind in fits}}
    return sum(per_kind[kind] for _, kind in fits)


def fit_rate_key(image_set: ImageSet, spec: str, fits: Sequence[tuple[str, str]], settings: ProbeSettings,
                 pooling: str = "auto") -> str:
    """Rate-memory key of `fits` of `spec` (seconds per fold): a fold's cost depends on the images, the layers'
    widths, the kinds and the scheme."""
    folds = {kind: settings.cv(kind) for kind in sorted({kind for _, kind in fits})}
    return "|".join(["probe-folds", image_set.name, str(len(image_set)), spec, pooling,
                     *(f"{kind}:{cv.scheme}|{cv.get_n_splits(cv.groups(image_set.metadata))}"
                       for kind, cv in folds.items())])


def encoder_curves(image_set: ImageSet, encoder: EncoderInfo, store: FeatureStore, *, settings: ProbeSettings = ProbeSettings(),
                   probes: Sequence[str] = PROBES, pooling: str = "auto", results: ResultCache | None = None,
                   progress: Report | None = None) -> pd.DataFrame:
    """layer_probe_table of every layer of `encoder` read from the store (all must be extracted), plus `encoder`.

    `progress` counts the folds of the fits actually computed (`pending_fits`, `fold_count`), its message "fit 1/2:
    layer · kind · fold 3/248": cached fits cost nothing, so they would only distort a job's rate and ETA. A fit's
    last fold is reported once its scores are stored, so a cancel raised by `progress` never loses a finished fit
    (and drops at most the folds of the fit in progress).
    """
    keys = feature_keys(image_set, encoder, "all", pooling)
    missing = [layer for layer, key in keys.items() if not store.has(key)]
    if missing:
        raise ValueError(f"{encoder.spec}: layer(s) {', '.join(missing)} are not extracted yet; extract all layers of this "
                         f"encoder first.")
    pending = pending_fits(image_set, encoder, settings=settings, probes=probes, pooling=pooling, results=results)
    total = fold_count(image_set, settings, pending)
    if progress is not None:
        progress(Progress(0, total, "starting"))
    targets = ProbeTargets.from_metadata(image_set.metadata)
    scores, fitted, folds_before = {}, 0, 0
    for layer, key in keys.items():
        for kind in probe_kinds(probes):
            fresh = []
            name = f"fit {fitted + 1}/{len(pending)}: {layer} · {kind}"

            def fold_done(folds: Progress, name=name) -> None:
                if folds.done < folds.total:  # the last fold is reported once the fit is stored
                    progress(Progress(folds_before + folds.done, total, f"{name} · fold {folds.done}/{folds.total}"))

            def compute(layer=layer, kind=kind) -> list[dict]:  # the store's arrays are memory-mapped: read only here
                fresh.append(True)
                return [asdict(score) for score in layer_scores(store.load(keys[layer]), targets, settings, kind,
                                                                progress=None if progress is None else fold_done)]

            stored = compute() if results is None else results.get_or_compute(settings.cache_key(key.digest, kind),
                                                                                 compute)
            scores[layer, kind] = [LayerScore(**row) for row in stored]
            if fresh:  # reported once stored, so a cancel raised by `progress` never loses a finished fit
                fitted += 1
                folds_before += fold_count(image_set, settings, [(layer, kind)])
                if progress is not None:
                    progress(Progress(folds_before, total, f"fit {fitted}/{len(pending)}: {layer} · {kind}"))
    table = curve_table(list(keys), scores, probes)
    return table.assign(encoder=encoder.spec)[["encoder", *table.columns]]


def layer_probe_curves(image_set: ImageSet, encoders: Sequence[EncoderInfo], store: FeatureStore, *,
                       settings: ProbeSettings = ProbeSettings(), probes: Sequence[str] = PROBES,
                       pooling: str = "auto", results: ResultCache | None = None) -> pd.DataFrame:
    """encoder_curves of several encoders stacked (the per-layer numbers behind every figure of the page)."""
    return pd.concat([encoder_curves(image_set, encoder, store, settings=settings, probes=probes, pooling=pooling,
                                     results=results) for encoder in encoders], ignore_index=True)


def summary_table(curves: pd.DataFrame) -> pd.DataFrame:
    """Curve summaries per encoder x probe of a layer_probe_curves / layer_probe_table frame."""
    curves = curves if "encoder" in curves else curves.assign(encoder="")
    rows = []
    for (encoder, probe), curve in curves.groupby(["encoder", "probe"], sort=False):
        curve = curve.sort_values("depth")
        score = curve["score"].to_numpy()
        summary = curve_summary(curve["depth"].to_numpy(), score)
        rows.append({"encoder": encoder, "probe": probe, "n_layers": len(curve),
                     "peak_layer": curve["layer"].iloc[int(np.argmax(score))], "peak_score": float(score.max()),
                     "peak_depth": summary.peak_depth, "centre_of_mass": summary.centre_of_mass,
                     "late_fraction": summary.late_fraction})
    return pd.DataFrame(rows)


def _balanced_accuracy_ci(truth: np.ndarray, predicted: np.ndarray, seed: int) -> tuple[float, float]:
    """Percentile 95% CI of balanced accuracy over N_BOOT bootstrap resamples of images."""
    rows = np.random.default_rng(seed).integers(0, len(truth), size=(N_BOOT, len(truth)))
    correct = truth[rows] == predicted[rows]
    recalls = []
    for category in np.unique(truth):
        members = truth[rows] == category
        with np.errstate(invalid="ignore", divide="ignore"):
            recalls.append((correct & members).sum(axis=1) / members.sum(axis=1))
    low, high = np.nanpercentile(np.nanmean(np.array(recalls), axis=0), [2.5, 97.5])
    return float(low), float(high)
