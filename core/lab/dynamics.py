"""Learning dynamics of an Objective lab run: a fixed held-out probe set's geometry, epoch by epoch (science §6.1).

At epoch 0 (before any step) and at the end of every epoch, `measure_epoch` encodes the probe set's views
(`probe_set`: `probe_per_class` images per category, never trained on, `probe_views` views each through the run's
augmentation pipeline, the same views at every epoch) with the backbone and, where the objective has a projection
head (simclr, clamp, language), its embedding, and measures each space with the Manifolds page's functions
(`core.analyses.manifolds`): sub-manifold radius and neighbours, uniformity overall and per class, view alignment,
the class-distance matrix, effective dimensionality and power-law alpha of the centroids; plus k-NN and
linear-probe accuracy on the probe views under cross-validation grouped by image.

Stored per epoch in `<run>/dynamics/`: `epoch_003.npz` (centroids, radii) then `epoch_003.json` (everything else
and the npz's hash), each written atomically; an epoch whose json is missing or does not match its npz is skipped.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from core.analyses.manifolds import class_distance_matrix, classwise_uniformity, manifold_summary, sub_manifolds
from core.analyses.probes import RowSpanProjection
from core.data.datasets import ImageSet
from core.data.selections import per_class_subset
from core.data.images import load_image
from core.data.transforms import AugmentationPipeline, SeededAugmentation
from core.encoders.backbones import square_preprocess, transform_from_preprocess
from core.lab.runs import TrainConfig
from core.paths import atomic_write

DYNAMICS_FOLDER = "dynamics"  # inside a run folder
SPACES = ("backbone", "embedding")
EMBEDDING_OBJECTIVES = ("simclr", "clamp", "language")  # their head projects into the loss's space; supervised's
# head gives class logits, not an embedding
KNN_NEIGHBOURS = 5
PROBE_FOLDS = 5
ENCODE_BATCH = 256  # probe views per forward pass

MEASURES: tuple[tuple[str, str, str], ...] = (
    ("radius_mean", "mean sub-manifold radius (CLAMP-normalised units)",
     "r_i = r_s · sqrt(T_i / min(D, m)) of each probe image's views, averaged; falls as views of an image gather."),
    ("neighbours_mean", "mean neighbour count (sub-manifolds)",
     "Other probe images j whose centroid lies within 0.99 · r_s · (ρ_i + ρ_j) of image i's; falls as "
     "overlapping sub-manifolds separate (CLAMP Fig. 3)."),
    ("uniformity", "uniformity (−log, t = 2)",
     "−log mean exp(−2 ||x_i − x_j||²) over all pairs of L2-normalised probe views; 0 = collapsed, higher = "
     "more uniform on the sphere."),
    ("classwise_uniformity_mean", "class-wise uniformity, mean over classes (−log, t = 2)",
     "Uniformity within each class's views, averaged; supervised training compresses classes (Zhong et al.)."),
    ("alignment", "view alignment (mean ||x − x⁺||²)",
     "Mean squared distance between L2-normalised views of one image (Wang & Isola); 0 = views coincide."),
    ("intra_class_variance_mean", "intra-class variance d(D_i, D_i), mean over classes (feature units²)",
     "E ||f(x0) − f(x1)||² for two independent views of class i, averaged over classes (Zhong et al.)."),
    ("inter_class_distance_mean", "inter-class distance d(D_i, D_j), mean over i ≠ j (feature units²)",
     "E ||f(x0) − f(x1)||² for views of two different classes, averaged over class pairs (Zhong et al.)."),
    ("effective_dim", "effective dimensionality of the centroids (participation ratio)",
     "(Σλ)² / Σλ² of the covariance of the probe images' mean views: 1 = collapsed onto a line."),
    ("alpha", "power-law exponent α of the centroids' eigenspectrum",
     "Slope of log λ_n on −log n over ranks 11 … min(500, P − 3) (Stringer et al.); NaN with under 16 probe "
     "images."),
    ("knn_accuracy", "k-NN accuracy (fraction of probe views, k = 5, cosine)",
     "Class of each probe view from its 5 nearest views of other images (cross-validation grouped by image)."),
    ("linear_probe_accuracy", "linear-probe accuracy (fraction of probe views)",
     "Logistic regression on standardised features, cross-validated with every view of an image in one fold."),
    ("clamp_loss", "CLAMP packing loss (log E)",
     "CLAMP's loss of the probe set's sub-manifolds with the run's r_s (what the clamp objective minimises)."),
    ("view_accuracy", "view accuracy (fraction of views)",
     "Fraction of probe views whose nearest sub-manifold centroid is their own image's."),
)


@dataclass(frozen=True, eq=False)
class EpochGeometry:
    """The probe set's geometry in one space of the model at one epoch."""
    epoch: int  # 0 = before any step
    space: str  # "backbone" or "embedding" (the projection head's output)
    measures: dict[str, float]  # MEASURES keys -> value (NaN where undefined)
    classes: tuple[str, ...]  # (C,) sorted class names
    uniformity_by_class: dict[str, float]  # class -> uniformity of its views
    class_distance: np.ndarray  # (C, C) d(f_t, D_i, D_j); the diagonal is the intra-class variance
    centroids: np.ndarray  # (P, D) CLAMP-normalised sub-manifold centroids of the P probe images
    radii: np.ndarray  # (P,) sub-manifold radii (with the run's r_s)
    item_classes: tuple[str, ...]  # (P,) class of each probe image
    seconds: float  # time spent measuring this space (the epoch's spaces sum to its measuring time)


@dataclass(frozen=True, eq=False)
class ProbeSet:
    """The fixed held-out images of a run and their augmented views, ready for the model."""
    rows: np.ndarray  # (P,) rows of the run's dataset
    image_ids: tuple[str, ...]  # (P,)
    item_classes: tuple[str, ...]  # (P,)
    views: torch.Tensor  # (P · m, 3, S, S) preprocessed; image i's views at rows i·m … i·m + m − 1
    m: int


def probe_rows(image_set: ImageSet, config: TrainConfig) -> np.ndarray:
    """(P,) sorted dataset rows of the probe set: `probe_per_class` images per category drawn with the run's seed."""
    if not config.probe_per_class:
        return np.array([], dtype=int)
    return per_class_subset(image_set, config.probe_per_class, seed=config.seed)


def probe_set(image_set: ImageSet, config: TrainConfig) -> ProbeSet:
    """The probe set of `config`'s run on its dataset `image_set`: views as the Manifolds page makes them.

    View k of probe image i is `augmentation_views`' row i·m + k (the run's pipeline at its image size, seeded by
    the run's seed), preprocessed like the `lab:<run id>` encoder, so the Manifolds page on the finished backbone
    with these images, m and seed sees the same views.
    """
    rows = probe_rows(image_set, config)
    if len(rows) == 0:
        raise ValueError("This run has no probe set (probe_per_class = 0).")
    m = config.probe_views
    augment = SeededAugmentation(AugmentationPipeline(size=config.image_size), config.seed)
    preprocess = transform_from_preprocess(square_preprocess(config.image_size))
    views = []
    for index, row in enumerate(rows):
        image = load_image(image_set.paths[row])
        views.extend(preprocess(augment(image, index * m + k)) for k in range(m))
    metadata = image_set.metadata.iloc[rows]
    return ProbeSet(rows, tuple(metadata["image_id"].astype(str)), tuple(metadata["category"].astype(str)),
                    torch.stack(views), m)


def measure_epoch(model: torch.nn.Module, probe: ProbeSet, config: TrainConfig, epoch: int) -> list[EpochGeometry]:
    """The probe set's geometry under `model` (a `LabModel`) in eval mode: backbone, then embedding if any."""
    began = time.perf_counter()
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.inference_mode():
        backbone = torch.cat([model.backbone(chunk.to(device)) for chunk in probe.views.split(ENCODE_BATCH)])
        encoded = {"backbone": backbone}
        if config.objective in EMBEDDING_OBJECTIVES:
            encoded["embedding"] = model.head(backbone)
    model.train(was_training)
    geometries = []
    for space, features in encoded.items():
        views = features.float().cpu().numpy().astype(np.float64).reshape(len(probe.rows), probe.m, -1)
        geometries.append(space_geometry(views, probe.item_classes, config, epoch, space,
                                         time.perf_counter() - began))
        began = time.perf_counter()
    return geometries


def space_geometry(views: np.ndarray, item_classes: tuple[str, ...], config: TrainConfig, epoch: int, space: str,
                   seconds_before: float = 0.0) -> EpochGeometry:
    """EpochGeometry of (P, m, D) probe view features; `seconds_before`: time already spent encoding them."""
    with threadpool_limits(limits=1):  # small problems: threads on busy cores ran ~5x slower (as the Manifolds page)
        return _space_geometry(views, item_classes, config, epoch, space, seconds_before)


def _space_geometry(views: np.ndarray, item_classes: tuple[str, ...], config: TrainConfig, epoch: int, space: str,
                    seconds_before: float) -> EpochGeometry:
    began = time.perf_counter()
    n, m, _ = views.shape
    manifolds = sub_manifolds(views, config.radius_scale)
    summary = manifold_summary(views, np.asarray(item_classes), config.radius_scale, manifolds)
    flat, view_classes = views.reshape(n * m, -1), np.repeat(np.asarray(item_classes, dtype=str), m)
    classes, distances = class_distance_matrix(flat, view_classes)
    off_diagonal = distances[~np.eye(len(classes), dtype=bool)]
    knn, linear = probe_accuracies(flat, view_classes, np.repeat(np.arange(n), m), config.seed)
    measures = {
        "radius_mean": summary.mean_radius, "neighbours_mean": summary.mean_neighbours,
        "uniformity": summary.uniformity, "classwise_uniformity_mean": summary.classwise_uniformity,
        "alignment": summary.view_alignment,
        "intra_class_variance_mean": float(np.mean(np.diag(distances))),
        "inter_class_distance_mean": float(off_diagonal.mean()) if off_diagonal.size else math.nan,
        "effective_dim": summary.effective_dimensionality, "alpha": summary.alpha,
        "knn_accuracy": knn, "linear_probe_accuracy": linear,
        "clamp_loss": summary.clamp_loss, "view_accuracy": summary.view_accuracy}
    return EpochGeometry(epoch, space, {key: float(value) for key, value in measures.items()}, tuple(classes),
                         classwise_uniformity(flat, view_classes), distances, manifolds.centroids, manifolds.radii,
                         tuple(item_classes), seconds_before + time.perf_counter() - began)


def probe_accuracies(features: np.ndarray, classes: np.ndarray, groups: np.ndarray, seed: int) -> tuple[float, float]:
    """(k-NN, linear-probe) accuracy over all (n, D) features, each predicted by a model that never saw its group.

    Stratified group K-fold (at most PROBE_FOLDS folds, at most the smallest class's number of groups); NaN for
    both with one class or a class of one group.
    """
    groups_per_class = [len(np.unique(groups[classes == name])) for name in np.unique(classes)]
    folds = min(PROBE_FOLDS, min(groups_per_class))
    if len(groups_per_class) < 2 or folds < 2:
        return math.nan, math.nan
    splits = list(StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(features, classes, groups))
    smallest_train = min(len(train) for train, _ in splits)
    knn = KNeighborsClassifier(min(KNN_NEIGHBOURS, smallest_train), metric="cosine")
    # The Layer probes' trick (`RowSpanProjection`): with more dimensions than views, Newton in the training rows'
    # span fits the same L2 model as L-BFGS in all dimensions, ~100x faster on these wide, separable folds.
    linear = make_pipeline(StandardScaler(), RowSpanProjection(), LogisticRegression(solver="newton-cholesky",
                                                                                     max_iter=200))
    return tuple(float(accuracy_score(classes, cross_val_predict(model, features, classes, cv=splits)))
                 for model in (knn, linear))


# --- storage ---------------------------------------------------------------------------

def dynamics_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / DYNAMICS_FOLDER


def write_epoch(run_dir: str | Path, geometries: list[EpochGeometry]) -> Path:
    """Store one epoch's geometries: `epoch_NNN.npz` (centroids, radii), then `epoch_NNN.json` naming its hash."""
    epochs = {geometry.epoch for geometry in geometries}
    if len(epochs) != 1 or len({geometry.space for geometry in geometries}) != len(geometries):
        raise ValueError(f"write_epoch takes one epoch's geometries, one per space; got epochs {sorted(epochs)}.")
    stem = dynamics_dir(run_dir) / f"epoch_{epochs.pop():03d}"
    arrays = {f"{name}_{geometry.space}": getattr(geometry, name)
              for geometry in geometries for name in ("centroids", "radii")}
    atomic_write(stem.with_suffix(".npz"), lambda temporary: np.savez(temporary, **arrays))
    record = {"epoch": geometries[0].epoch, "npz_sha256": _sha256(stem.with_suffix(".npz")),
              "spaces": [{"space": geometry.space, "measures": _nulls(geometry.measures),
                          "classes": list(geometry.classes),
                          "uniformity_by_class": _nulls(geometry.uniformity_by_class),
                          "class_distance": geometry.class_distance.tolist(),
                          "item_classes": list(geometry.item_classes), "seconds": geometry.seconds}
                         for geometry in geometries]}
    atomic_write(stem.with_suffix(".json"), lambda temporary: temporary.write_text(json.dumps(record)))
    return stem.with_suffix(".json")


def read_dynamics(run_dir: str | Path) -> list[EpochGeometry]:
    """Every stored epoch's geometries sorted by (epoch, space); an epoch half written (killed run) is skipped."""
    geometries = []
    for path in sorted(dynamics_dir(run_dir).glob("epoch_*.json")):
        try:
            geometries.extend(_read_epoch(path))
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
            continue
    return sorted(geometries, key=lambda geometry: (geometry.epoch, SPACES.index(geometry.space)))


def stored_epochs(run_dir: str | Path) -> list[int]:
    """The epochs whose geometry is stored, ascending."""
    return sorted({geometry.epoch for geometry in read_dynamics(run_dir)})


def _read_epoch(path: Path) -> list[EpochGeometry]:
    record = json.loads(path.read_text())
    npz = path.with_suffix(".npz")
    if _sha256(npz) != record["npz_sha256"]:
        raise ValueError(f"{npz} is not the one {path} was written with.")
    with np.load(npz) as arrays:
        return [EpochGeometry(int(record["epoch"]), space["space"], _nans(space["measures"]), tuple(space["classes"]),
                              _nans(space["uniformity_by_class"]), np.array(space["class_distance"], dtype=float),
                              arrays[f"centroids_{space['space']}"], arrays[f"radii_{space['space']}"],
                              tuple(space["item_classes"]), float(space["seconds"]))
                for space in record["spaces"]]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _nulls(values: dict[str, float]) -> dict[str, float | None]:
    """NaN -> None: strict JSON has no NaN."""
    return {key: None if math.isnan(value) else value for key, value in values.items()}


def _nans(values: dict[str, float | None]) -> dict[str, float]:
    return {key: math.nan if value is None else float(value) for key, value in values.items()}
