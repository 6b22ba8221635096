"""Work a study engine sends anywhere: plain functions whose inputs and outputs travel as arrays.

A task never reads the cache or the dataset's folder: images travel as bytes and features as arrays,
and what comes back is written to the stores by the driver alone (a worker need not share a filesystem
with it, and the feature store's SQLite index is never written from two machines). The other tasks a
study sends are core functions as they are (`gwot_search.run_chain`, `affect.fit_folds`,
`probes.layer_scores`, `similarity.compare`, …).
"""
from __future__ import annotations

import io
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

import core.lab  # noqa: F401  (registers `lab:<run id>` encoders in a worker process too)
from core.data.datasets import DatasetError
from core.data.images import load_image
from core.data.transforms import IDENTITY, InputTransform
from core.encoders.registry import Encoder, EncoderInfo, load_encoder
from core.encoders.specs import flat_dim
from core.features.extract import autocast_context, stored_rows, resolve_device
from core.features.projection import FlatReducer

MODELS_PER_PROCESS = 2  # loaded encoders a worker keeps between shards (a study sends many shards of one encoder)


@dataclass(frozen=True, eq=False)
class ImageShard:
    """Rows [start, start + len(images)) of an image set: each image's file bytes and name (for errors)."""

    start: int
    images: tuple[bytes, ...]
    names: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class ShardFeatures:
    """A shard's (n, D) float32 rows per layer, and the device that computed them (for the provenance)."""

    rows: dict[str, np.ndarray]
    device: str


def extract_shard(shard: ImageShard, info: EncoderInfo, layers: Sequence[str], block_pooling: str, *,
                  input_transform: InputTransform = IDENTITY, device: str = "auto",
                  batch_size: int = 32) -> ShardFeatures:
    """(len(shard), D) float32 features of every layer of one shard, as `extract` stores them.

    Row `shard.start + i` gets the input transform of that row (augmentations and per-image
    permutations are seeded by row), so any split into shards gives the same rows.
    """
    target = resolve_device(device)
    encoder = _loaded(info, str(target))
    flat = flat_dim(block_pooling)
    reducer = FlatReducer(flat) if flat is not None else None
    rows: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    for begin in range(0, len(shard.images), batch_size):
        batch = [_prepared(encoder, shard, index, input_transform)
                 for index in range(begin, min(begin + batch_size, len(shard.images)))]
        with torch.inference_mode(), autocast_context(target):
            outputs = encoder.forward_layers(torch.stack(batch).to(target), tuple(layers), block_pooling)
        for layer in layers:
            rows[layer].append(stored_rows(outputs.pop(layer), layer, reducer))
    return ShardFeatures({layer: np.concatenate(parts) for layer, parts in rows.items()}, str(target))


def _prepared(encoder: Encoder, shard: ImageShard, index: int, input_transform: InputTransform) -> torch.Tensor:
    try:
        image = load_image(io.BytesIO(shard.images[index]))
    except DatasetError:
        raise DatasetError(f"cannot read image {shard.names[index]}; replace the file with a valid image or remove "
                           "it from the dataset.") from None
    if input_transform.apply is not None:
        image = input_transform.apply(image, shard.start + index)
    return encoder.transform(image)


_models: OrderedDict[tuple[EncoderInfo, str], Encoder] = OrderedDict()


def _loaded(info: EncoderInfo, device: str) -> Encoder:
    """The encoder loaded once per worker process and device (least recently used out first)."""
    key = (info, device)
    if key not in _models:
        _models[key] = load_encoder(info, device)
        while len(_models) > MODELS_PER_PROCESS:
            _models.popitem(last=False)
    _models.move_to_end(key)
    return _models[key]
