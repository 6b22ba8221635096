"""Batched multi-layer feature extraction into the feature store.

All requested layers of one encoder come out of ONE forward pass per batch (the
libraries' `forward_intermediates`). Rows are written to the store in chunks as they
are computed (every CHUNK_ROWS rows or FLUSH_S seconds, whichever comes first), so an
interrupted run resumes where it stopped; a request whose arrays are all stored is a
cache hit that never loads the model. `flat:<dim>` blocks are projected batch by batch
(core.features.projection). Off the main thread (the app's job thread) DataLoader workers
start from the standard library's fork server, never by forking the threaded process.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from core.data.datasets import DatasetError, ImageSet
from core.data.images import load_image
from core.data.image_check import check_images, image_problems_message
from core.data.transforms import IDENTITY, AugmentationPipeline, InputTransform, augmentation_views
from core.encoders.registry import UNUSABLE, EncoderInfo, availability, describe, load_encoder
from core.encoders.specs import FINAL_LAYER, flat_dim
from core.features.projection import FlatReducer, key_pooling
from core.features.store import FeatureKey, FeatureStore
from core.progress import Progress, Report

CHUNK_ROWS = 256
FLUSH_S = 30.0  # a slow encoder (a ViT on a CPU) still keeps its work when killed before 256 rows
WORKER_PRELOAD = ("core.features.extract", "timm.data", "open_clip.transform")  # what unpickling a dataset needs


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """Features of one encoder layer on one image set: `features` is (N, D) float32."""

    key: FeatureKey
    features: np.ndarray

    @property
    def encoder(self) -> str:
        return self.key.encoder

    @property
    def layer(self) -> str:
        return self.key.layer


def extraction_message(done: int, resumed: int, elapsed_s: float, unit: str = "images") -> str:
    """An extraction's message, e.g. "96 resumed from the cache · 28.5 images/s in this run" (this run's rows only)."""
    parts = [f"{resumed} resumed from the cache"] if resumed else []
    if done > resumed and elapsed_s > 0:
        parts.append(f"{(done - resumed) / elapsed_s:.1f} {unit}/s in this run")
    return " · ".join(parts) or "loading the model"


def feature_keys(image_set: ImageSet, info: EncoderInfo, layers: Sequence[str] | str, pooling: str = "auto",
                 input_transform: InputTransform = IDENTITY) -> dict[str, FeatureKey]:
    """Cache key of every requested layer, in depth order ("all" = every layer); flat adds its projection's id."""
    block_pooling = key_pooling(info.resolve_pooling(pooling))
    return {
        layer: FeatureKey(encoder=info.spec, weights=info.weights_id, layer=layer,
                          pooling="model" if layer == FINAL_LAYER else block_pooling,
                          preprocess=info.preprocess_id, dataset=image_set.fingerprint, view=input_transform.name)
        for layer in info.resolve_layers(layers)
    }


def cached_features(image_set: ImageSet, encoder: EncoderInfo, layers: Sequence[str] | str, store: FeatureStore,
                    pooling: str = "auto", input_transform: InputTransform = IDENTITY) -> dict[str, FeatureSet | None]:
    """Stored feature sets of the requested layers (None where not extracted yet)."""
    keys = feature_keys(image_set, encoder, layers, pooling, input_transform)
    return {layer: FeatureSet(key, store.load(key)) if store.has(key) else None for layer, key in keys.items()}


@dataclass(frozen=True)
class LayerStatus:
    encoder: str
    layer: str
    pooling: str
    state: str  # cached | missing | unavailable
    detail: str  # shape when cached, the reason when unavailable


def layer_statuses(image_set: ImageSet, encoder: EncoderInfo | str, layers: Sequence[str] | str, store: FeatureStore,
                   pooling: str = "auto", input_transform: InputTransform = IDENTITY) -> list[LayerStatus]:
    """Whether each requested layer is in the store, can be extracted, or cannot be here (and why).

    `encoder` is described already, or a spec string that this describes: one that cannot be described
    (e.g. a file: spec whose weight file is gone) is a single `unavailable` row, not an exception.
    """
    if isinstance(encoder, str):
        try:
            encoder = describe(encoder)
        except UNUSABLE as error:
            return [LayerStatus(encoder, "", "", "unavailable", str(error))]
    spec = encoder.spec
    usable, reason = availability(encoder)
    statuses = []
    for layer, key in feature_keys(image_set, encoder, layers, pooling, input_transform).items():
        if store.has(key):
            rows, width = store.info(key)["shape"]
            statuses.append(LayerStatus(spec, layer, key.pooling, "cached", f"{rows} x {width}"))
        else:
            statuses.append(LayerStatus(spec, layer, key.pooling, "missing" if usable else "unavailable",
                                        "" if usable else reason))
    return statuses


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" -> cuda when present, else mps, else cpu."""
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def extract(image_set: ImageSet, encoder: EncoderInfo, layers: Sequence[str] | str, store: FeatureStore, *,
            pooling: str = "auto", device: str = "auto", batch_size: int = 32, num_workers: int | None = None,
            input_transform: InputTransform = IDENTITY, progress: Report | None = None,
            chunk_rows: int = CHUNK_ROWS, flush_s: float = FLUSH_S, unit: str = "images") -> dict[str, FeatureSet]:
    """Features (N, D) of every requested layer, extracted in one pass per batch or loaded from the store.

    `progress` gets the rows stored before the first batch and after every batch (those of an interrupted run as
    `skipped`; its message gives this run's rate in `unit` per second); raising from it cancels the run, keeping
    the chunks written so far (every `chunk_rows` rows or `flush_s` seconds) for the next call to resume from.
    """
    if not image_set.has_images:
        raise DatasetError(f"dataset {image_set.name} holds representations only, no images: there is nothing to "
                           f"extract features from; align or compare its representations instead.")
    keys = feature_keys(image_set, encoder, layers, pooling, input_transform)
    if any(not store.has(key) for key in keys.values()):
        with store.lock(list(keys.values())):
            missing = {layer: key for layer, key in keys.items() if not store.has(key)}
            if missing:  # another process may have finished them while we waited
                _extract_missing(image_set, encoder, missing, store, device=device, batch_size=batch_size,
                                 num_workers=num_workers, input_transform=input_transform, progress=progress, chunk_rows=chunk_rows,
                                 flush_s=flush_s, block_pooling=encoder.resolve_pooling(pooling), unit=unit)
    return {layer: FeatureSet(key, store.load(key)) for layer, key in keys.items()}


def _extract_missing(image_set: ImageSet, info: EncoderInfo, missing: dict[str, FeatureKey], store: FeatureStore, *,
                     device: str, batch_size: int, num_workers: int | None, input_transform: InputTransform,
                     progress: Report | None, chunk_rows: int, flush_s: float, block_pooling: str,
                     unit: str) -> None:
    total = len(image_set)
    # The layer furthest behind sets the start; the others' overlapping rows are rewritten
    # with the same values, which the store's stitching tolerates.
    start = min(store.rows_done(key) for key in missing.values())
    if progress is not None:
        progress(Progress(start, total, extraction_message(start, start, 0.0, unit), skipped=start))
    target = resolve_device(device)
    workers = _default_workers(total - start) if num_workers is None else num_workers
    worker_context = _worker_context(workers)  # before the model loads: a cold fork server starts meanwhile
    encoder = load_encoder(info, target)
    layers = tuple(missing)
    loader = DataLoader(
        _ImageRows(image_set.paths, encoder.transform, input_transform, start),
        batch_size=batch_size, shuffle=False, pin_memory=target.type == "cuda",
        num_workers=workers, multiprocessing_context=worker_context,
    )
    buffers: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    flat = flat_dim(block_pooling)
    reducer = FlatReducer(flat) if flat is not None else None  # projections built on first use, this call only
    chunk_start, done = start, start
    began = chunk_began = time.perf_counter()
    for images, errors in loader:
        failed = [message for message in errors if message]
        if failed:
            # Name every bad file of the set at once, not one per retry.
            problems = check_images(image_set)
            raise DatasetError(image_problems_message(problems) if problems else failed[0])
        with torch.inference_mode(), autocast_context(target):
            outputs = encoder.forward_layers(images.to(target, non_blocking=True), layers, block_pooling)
        for layer in layers:
            # pop: a flat layer's unreduced batch is freed once reduced, before the next forward makes its own
            buffers[layer].append(stored_rows(outputs.pop(layer), layer, reducer))
        done += len(images)
        now = time.perf_counter()
        if done - chunk_start >= chunk_rows or now - chunk_began >= flush_s or done == total:
            for layer in layers:
                store.save_chunk(missing[layer], chunk_start, np.concatenate(buffers[layer]))
                buffers[layer] = []
            chunk_start, chunk_began = done, now
        if progress is not None:
            message = extraction_message(done, start, time.perf_counter() - began, unit)
            progress(Progress(done, total, message, skipped=start))
    seconds = time.perf_counter() - began
    meta = {"dataset_name": image_set.name, "n_images": total, "device": str(target),
            "seconds": round(seconds, 3), "images_per_s": round((total - start) / max(seconds, 1e-9), 2)}
    for layer in layers:
        store.finalize(missing[layer], total, meta)


def stored_rows(output: torch.Tensor, layer: str, reducer: FlatReducer | None) -> np.ndarray:
    """A layer's (B, D) float32 rows as stored: flat blocks' (B, n_features) reduced to (B, dim)."""
    rows = output.float().cpu().numpy()
    return rows if reducer is None or layer == FINAL_LAYER else reducer.reduce(layer, rows)


class _ImageRows(Dataset):
    """Images from row `start` on, as (tensor, error message); errors travel as data so a
    corrupt file surfaces as one clear DatasetError instead of a worker traceback."""

    def __init__(self, paths: Sequence, transform: Callable, input_transform: InputTransform, start: int):
        self.paths, self.transform, self.input_transform, self.start = paths, transform, input_transform, start

    def __len__(self) -> int:
        return len(self.paths) - self.start

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        row = self.start + index
        try:
            image = load_image(self.paths[row])
        except DatasetError as error:
            return self.transform(Image.new("RGB", (8, 8))), str(error)
        if self.input_transform.apply is not None:
            image = self.input_transform.apply(image, row)
        return self.transform(image), ""


def _default_workers(n_images: int) -> int:
    # Worker start-up (~0.05 s forked or from the running fork server, 3-4 s while that server first
    # starts) only pays off with real decoding to overlap; one CPU stays for the forward pass.
    if n_images < 256:
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(4, max(1, cpus - 1))


def _worker_context(num_workers: int) -> multiprocessing.context.BaseContext | None:
    """How DataLoader workers start: None (the platform default, fork on Linux, as the CLI always had) on the main
    thread; off it (the app's job thread), where forking a multi-threaded process can deadlock the child, from
    the standard library's fork server, or spawned where there is none."""
    if num_workers == 0 or threading.current_thread() is threading.main_thread():
        return None
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # The server imports these once (~3 s) and each worker forks from it in ~0.05 s, instead of importing torch
    # afresh in every worker. The preload list is process-wide; extraction is the fork server's only user here.
    context.set_forkserver_preload(list(WORKER_PRELOAD))
    multiprocessing.forkserver.ensure_running()  # now, so its imports overlap with loading the model
    return context


def autocast_context(device: torch.device):
    if device.type != "cuda":
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def view_features(image_set: ImageSet, encoder: EncoderInfo, layer: str, store: FeatureStore, *, m: int = 16,
                  pipeline: AugmentationPipeline = AugmentationPipeline(), seed: int = 0, pooling: str = "auto",
                  device: str = "auto", batch_size: int = 32,
                  progress: Report | None = None) -> np.ndarray:
    """(N, m, D) features of m augmented views of each image, extracted once and cached (`progress` counts views)."""
    views, input_transform = augmentation_views(image_set, m, pipeline, seed)
    features = extract(views, encoder, [layer], store, pooling=pooling, device=device, batch_size=batch_size,
                       input_transform=input_transform, progress=progress, unit="views")[layer].features
    return np.asarray(features).reshape(len(image_set), m, -1)


def cached_view_features(image_set: ImageSet, encoder: EncoderInfo, layer: str, store: FeatureStore, *, m: int = 16,
                         pipeline: AugmentationPipeline = AugmentationPipeline(), seed: int = 0,
                         pooling: str = "auto") -> np.ndarray | None:
    """The (N, m, D) view features if they are in the store, else None (never loads a model)."""
    views, input_transform = augmentation_views(image_set, m, pipeline, seed)
    stored = cached_features(views, encoder, [layer], store, pooling, input_transform)[layer]
    return None if stored is None else np.asarray(stored.features).reshape(len(image_set), m, -1)
