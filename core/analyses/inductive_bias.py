"""Spatial inductive bias (docs/science.md §7): how frozen features hold up under input corruptions.

Per encoder layer and corruption level (`core.data.corruptions`):
- k-NN accuracy: majority vote of the k cosine-nearest training images, out of fold;
- linear balanced accuracy: the Layer probes page's logistic category probe, out of fold;
- uniformity of the L2-normalised features (Wang & Isola, t = 2, reported positive);
- clean similarity: cosine between each image's corrupted and clean features (mean, SD), next
  to the unrelated-image floor (mean cosine between different images' clean features).
Both probes use the same grouped cross-validation (LOTO or grouped K-fold over theme groups,
or shuffled K-fold). By default every fold trains and tests on the corrupted features (how much
category information survives); `train_on="clean"` trains on clean training images and tests
the corrupted held-out ones (robustness of a clean readout). Drops are relative to the clean
row: (clean − corrupted) / clean.

`BIAS_PRESETS` holds the page's two settings (the bench reads the same ones): "quick", a
demo run of about a minute on two cores, and "full", the paper-sized sweep.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import threadpool_limits

from core.analyses.cv import CATEGORY_SCHEMES, CrossValidation
from core.analyses.manifolds import uniformity
from core.analyses.probes import category_probe
from core.data.corruptions import CLEAN, DEFAULT_SEED, FAMILIES, Corruption
from core.data.datasets import ImageSet
from core.encoders.registry import EncoderInfo
from core.features.extract import extract
from core.features.store import FeatureStore, ResultCache
from core.progress import Progress, Report

CACHE_VERSION = "inductive-v1"  # bump when a measure's definition changes
TRAIN_ON = ("corrupted", "clean")
SIMILARITY_BAND = (0.05, 0.95)  # quantiles over images of the clean-similarity band (a cosine stays in [-1, 1])


@dataclass(frozen=True)
class BiasSettings:
    """How the probes are fitted (part of every cached linear-probe score's key)."""

    k: int = 10  # neighbours of the k-NN probe
    scheme: str = "gkfold"  # loto | gkfold | kfold, over theme groups
    n_splits: int = 5  # folds of the K-fold schemes
    seed: int = 0
    train_on: str = "corrupted"  # corrupted | clean

    def __post_init__(self):
        if not CrossValidation(self.scheme).definition.suits_category_probe:
            raise ValueError(f"Category probes take one of {', '.join(CATEGORY_SCHEMES)}; got {self.scheme!r} "
                             "(Leave-One-Category-Out never trains on the held-out category).")
        if self.train_on not in TRAIN_ON:
            raise ValueError(f"train_on must be one of {', '.join(TRAIN_ON)}; got {self.train_on!r}.")
        if self.k < 1:
            raise ValueError(f"k-NN needs k >= 1; got {self.k}.")

    @property
    def cv(self) -> CrossValidation:
        return CrossValidation(self.scheme, self.n_splits, self.seed)

    def linear_key(self, digest: str, train_digest: str) -> str:
        """Key of a linear-probe score of features `digest` trained on `train_digest` ("same": themselves)."""
        return f"{CACHE_VERSION}|{digest}|train={train_digest}|linear|{self.cv.key}|{self.seed}"


@dataclass(frozen=True)
class BiasPreset:
    """A page setting: images per category, the families selected and every family's levels, folds."""

    per_class: int
    families: tuple[str, ...]
    levels: Mapping[str, tuple[float, ...]]  # every family of FAMILIES, selected or not
    n_splits: int

    def corruptions(self, seed: int = DEFAULT_SEED, per_image: bool = False) -> list[Corruption]:
        """The selected families' levels, in FAMILIES order, each family's levels ascending."""
        return [Corruption(family, float(level), seed, per_image) for family in FAMILIES if family in self.families
                for level in sorted(self.levels[family])]


BIAS_PRESETS = {
    "quick": BiasPreset(25, ("glo", "loc"), {"glo": (2, 8), "loc": (2, 8), "gamma": (0.5, 2.0)}, 5),
    "full": BiasPreset(50, ("glo", "loc"), {"glo": (2, 4, 8), "loc": (2, 4, 8), "gamma": (0.2, 0.5, 2.0, 2.5)}, 5),
}


@dataclass(frozen=True, eq=False)
class KnnProbe:
    accuracy: float  # over all out-of-fold predictions
    fold_accuracies: np.ndarray  # (n_folds,)
    predictions: np.ndarray  # (N,) out-of-fold category predictions


def knn_probe(features: np.ndarray, categories: np.ndarray, groups: np.ndarray, cv: CrossValidation, *,
              k: int = 10, train_features: np.ndarray | None = None) -> KnnProbe:
    """Cosine k-NN category accuracy of (N, D) features under CV over (N,) groups; neighbours from training folds only."""
    categories = np.asarray(categories).astype(str)
    fitted_on = features if train_features is None else train_features
    predictions = np.empty(len(categories), dtype=object)
    fold_accuracies = []
    for train, test in cv.split(groups):
        model = KNeighborsClassifier(n_neighbors=min(k, len(train)), metric="cosine", algorithm="brute")
        predictions[test] = model.fit(fitted_on[train], categories[train]).predict(features[test])
        fold_accuracies.append(float(np.mean(predictions[test] == categories[test])))
    predictions = predictions.astype(str)
    return KnnProbe(float(np.mean(predictions == categories)), np.array(fold_accuracies), predictions)


def clean_similarity(clean: np.ndarray, corrupted: np.ndarray) -> np.ndarray:
    """(N,) cosine between row i of (N, D) clean and (N, D) corrupted features."""
    numerator = np.einsum("ij,ij->i", clean, corrupted)
    norms = np.linalg.norm(clean, axis=1) * np.linalg.norm(corrupted, axis=1)
    return numerator / np.maximum(norms, 1e-12)


def unrelated_similarity(clean: np.ndarray) -> float:
    """Mean cosine between different images' (N, D) clean features: what similarity means 'nothing kept'."""
    x = clean / np.maximum(np.linalg.norm(clean, axis=1, keepdims=True), 1e-12)
    n = len(x)
    total = np.sum(x.sum(axis=0) ** 2) - np.sum(x * x)  # Σ_{i≠j} x_i·x_j without the N × N Gram matrix
    return float(total / (n * (n - 1)))


def corruption_table(features: Mapping[Corruption, np.ndarray], categories: np.ndarray, groups: np.ndarray,
                     settings: BiasSettings = BiasSettings(), *, results: ResultCache | None = None,
                     digests: Mapping[Corruption, str] | None = None,
                     progress: Report | None = None) -> pd.DataFrame:
    """One row per corruption (the clean one first) from {corruption: (N, D) features}; must include CLEAN.

    With `results` and the feature `digests` of every corruption, linear-probe scores are read from
    (or stored in) the cache. `progress` counts the linear probe's folds of every corruption (corruptions × folds;
    those of a cached score are `skipped`), its message naming the corruption and fold.
    """
    if CLEAN not in features:
        raise ValueError("The clean features are needed: every drop and similarity is relative to them.")
    if results is not None and digests is None:
        raise ValueError("Caching linear-probe scores needs the feature digest of every corruption.")
    linear_keys = None if results is None else {
        corruption: settings.linear_key(digests[corruption], digests[CLEAN] if settings.train_on == "clean" else "same")
        for corruption in features}
    order = [CLEAN, *[corruption for corruption in features if corruption != CLEAN]]
    clean = np.asarray(features[CLEAN], dtype=np.float64)
    floor = unrelated_similarity(clean)
    # One thread: these fits are small, and threaded OpenBLAS/OpenMP on busy cores (an extraction
    # job, the server) made scipy's L-BFGS-B 10-30x slower on raw pixels (scipy issue 23191).
    folds = settings.cv.get_n_splits(groups)
    cached = [0]  # folds of scores read from the cache: they cost nothing

    def probing(index: int, corruption: Corruption) -> Report | None:
        def fold_done(step: Progress) -> None:
            if step.done == 0 and step.total == 0:  # a cached score: its folds are done without costing anything
                cached[0] += folds
                step = Progress(folds, folds)
            progress(Progress(index * folds + step.done, len(order) * folds,
                              f"probing {corruption.name}: fold {step.done}/{folds}", cached[0]))
        return None if progress is None else fold_done

    with threadpool_limits(limits=1):
        rows = [_corruption_row(corruption, np.asarray(features[corruption], dtype=np.float64),
                                clean, floor, categories, groups, settings, results,
                                None if results is None else linear_keys[corruption], probing(index, corruption))
                for index, corruption in enumerate(order)]
    table = pd.DataFrame(rows)
    for measure, column in (("knn_drop", "knn_accuracy"), ("linear_drop", "linear_balanced_accuracy")):
        table[measure] = (table[column].iloc[0] - table[column]) / table[column].iloc[0]
    if progress is not None:
        progress(Progress(len(order) * folds, len(order) * folds, "done", cached[0]))
    return table


def _corruption_row(corruption: Corruption, x: np.ndarray, clean: np.ndarray,
                    floor: float, categories: np.ndarray, groups: np.ndarray, settings: BiasSettings,
                    results: ResultCache | None, linear_key: str | None,
                    progress: Report | None) -> dict:
    """corruption_table's row of one corruption's (N, D) features x against the (N, D) clean ones (floor: their
    unrelated-image similarity); the linear-probe score is cached in `results` under `linear_key`. `progress` counts
    the linear probe's folds (a cached score reports Progress(0, 0) once: nothing to fit)."""
    train = clean if settings.train_on == "clean" else None
    knn = knn_probe(x, categories, groups, settings.cv, k=settings.k, train_features=train)
    fitted = []

    def compute() -> dict:
        fitted.append(True)
        probe = category_probe(x, categories, groups, settings.cv, train_features=train, progress=progress)
        return {"score": probe.balanced_accuracy, "ci_lo": probe.ci[0], "ci_hi": probe.ci[1],
                "fold_sd": float(np.std(probe.fold_accuracies))}

    scores = compute() if results is None else results.get_or_compute(linear_key, compute)
    if not fitted and progress is not None:
        progress(Progress(0, 0))
    similarity = clean_similarity(clean, x)
    band_lo, band_hi = np.quantile(similarity, SIMILARITY_BAND)
    return {"corruption": corruption.name, "family": corruption.family, "level": corruption.level,
            "knn_accuracy": knn.accuracy, "knn_fold_sd": float(np.std(knn.fold_accuracies)),
            "linear_balanced_accuracy": scores["score"], "linear_ci_lo": scores["ci_lo"],
            "linear_ci_hi": scores["ci_hi"], "linear_fold_sd": scores["fold_sd"],
            "uniformity": uniformity(x), "clean_similarity": float(similarity.mean()),
            "clean_similarity_sd": float(similarity.std()), "clean_similarity_lo": float(band_lo),
            "clean_similarity_hi": float(band_hi), "unrelated_similarity": floor,
            "n_images": len(x)}


def corruption_metrics(image_set: ImageSet, encoder: EncoderInfo, layer: str, store: FeatureStore,
                       corruptions: Sequence[Corruption], settings: BiasSettings = BiasSettings(), *,
                       pooling: str = "auto", device: str = "auto", batch_size: int = 32,
                       results: ResultCache | None = None,
                       progress: Report | None = None) -> pd.DataFrame:
    """corruption_table of one encoder layer: extracts (or loads) the clean and every corrupted feature array.

    `progress` reports two stages (core.progress): "extracting" counts the N images of every condition as they are
    extracted (N × conditions in all; `skipped`: those that came from the cache), then "probing" counts the linear
    probe's folds of every condition (conditions × folds; `skipped`: those of cached scores), its message naming the
    condition, the fold and how many conditions are probed.
    """
    conditions = list(dict.fromkeys([CLEAN, *corruptions]))
    n = len(image_set)
    total = n * len(conditions)
    features, digests, resumed = {}, {}, [0] * len(conditions)
    for index, corruption in enumerate(conditions):
        def extracted(rows: Progress, index=index, corruption=corruption) -> None:
            resumed[index] = rows.skipped  # rows found in the cache cost nothing: `skipped` keeps them out of rates
            if progress is not None:
                progress(Progress(index * n + rows.done, total, f"extracting {corruption.name}: {rows.message}",
                                  sum(resumed), "extracting"))

        resumed[index] = n  # a condition found whole in the store reports nothing: all cached
        feature_set = extract(image_set, encoder, [layer], store, pooling=pooling, device=device,
                              batch_size=batch_size, input_transform=corruption.input_transform, progress=extracted)[layer]
        features[corruption], digests[corruption] = feature_set.features, feature_set.key.digest

    def probed(folds: Progress) -> None:
        if progress is not None:
            finished = folds.done * len(conditions) // max(folds.total, 1)
            progress(Progress(folds.done, folds.total,
                              f"{folds.message} ({finished}/{len(conditions)} conditions probed)", folds.skipped,
                              "probing"))

    table = corruption_table(features, image_set.metadata["category"].to_numpy(),
                             settings.cv.groups(image_set.metadata), settings, results=results, digests=digests,
                             progress=probed)
    table.insert(0, "layer", layer)
    table.insert(0, "encoder", encoder.spec)
    return table
