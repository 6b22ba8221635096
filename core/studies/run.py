"""Running a study: extraction first, then every step whose result is not stored; and where each step stands.

`run_study(study, cache, engine)` plans the feature arrays the steps need (one unit per encoder, image set
and input transform: all its layers in one pass), extracts the missing ones in shards on the engine and
writes them to the feature store (driver only), then runs each step not yet stored. A step's result is a
`study_step` entry of the ResultStore keyed by its analysis, settings and inputs (`step_key`): a second run
finds every step stored and does no work, and a run stopped anywhere resumes from what was stored. A step
that fails records its error (`study status` shows it) and the others go on.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from filelock import FileLock

from core.data.datasets import DatasetError
from core.features.results import result_key
from core.features.extract import extract, resolve_device
from core.progress import Progress, Report
from core.provenance import library_versions, provenance_from_keys
from core.studies import analyses
from core.studies.context import STEP_KIND, ExtractionUnit, StudyContext, input_fingerprints, open_context
from core.studies.study import Step, Study
from core.studies.tasks import ImageShard, ShardFeatures, extract_shard

__all__ = ["STEP_KIND", "StepStatus", "extract_unit", "extraction_plan", "open_context", "run_study", "step_key",
           "step_units", "study_status"]

SHARD_BATCHES = 8  # batches per extraction shard (a shard is one task; its rows are one stored chunk)
Bar = Callable[[str, int, str], Report]  # (label, total, unit) -> the report of that piece of work


@dataclass(frozen=True)
class StepStatus:
    """Where one step stands: done (stored), pending or failed (with the error); `ran` when this run computed it."""

    step: Step
    key: str
    state: str  # done | pending | failed
    error: str = ""
    summary: str = ""
    ran: bool = False


def step_key(step: Step, context: StudyContext) -> str:
    """A step's stored result: its analysis, every setting, the layers and the inputs' fingerprints."""
    settings = {"analysis": step.analysis, **step.stored_settings, "layers": {spec: list(step.layers[spec])
                                                                             for spec in step.encoders}}
    return result_key(STEP_KIND, settings, input_fingerprints(step, context))


def step_units(step: Step, context: StudyContext) -> list[ExtractionUnit]:
    """The feature arrays a step reads (its analysis's `units`)."""
    return analyses.get(step.analysis).units(step, context)


def extraction_plan(study: Study, context: StudyContext) -> list[ExtractionUnit]:
    """Every feature array the steps need, one unit per (images, encoder, pooling, input transform)."""
    units: dict[tuple, ExtractionUnit] = {}
    for step in study.steps:
        for unit in step_units(step, context):
            known = units.get(unit.identity)
            layers = unit.info.resolve_layers(set(unit.layers) | set(known.layers if known else ()))
            units[unit.identity] = ExtractionUnit(unit.image_set, unit.info, layers, unit.pooling, unit.input_transform)
    return list(units.values())


def study_status(study: Study, cache: str | Path) -> list[StepStatus]:
    """Every step: done, failed (its error) or pending."""
    context = open_context(study, cache)
    statuses = []
    for step in study.steps:
        key = step_key(step, context)
        stored = context.results.get(STEP_KIND, key)
        failure = context.results.failure(STEP_KIND, key)
        if stored is not None:
            statuses.append(StepStatus(step, key, "done", summary=stored.meta.get("summary", "")))
        else:
            statuses.append(StepStatus(step, key, "failed" if failure else "pending",
                                       error=failure["error"] if failure else ""))
    return statuses


def run_study(study: Study, cache: str | Path, engine, *, device: str | None = None, batch_size: int | None = None,
              gpus_per_task: float = 0, bar: Bar | None = None) -> list[StepStatus]:
    """Extract what is missing, then run every step not stored; returns each step's status after the run."""
    context = open_context(study, cache, gpus_per_task=gpus_per_task, parallelism=getattr(engine, "parallelism", 1))
    device, batch_size = device or study.device, batch_size or study.batch_size
    if engine.remote and not gpus_per_task and resolve_device(device).type == "cuda":
        # Tasks hold no GPU unless asked: they would extract on CPUs, in float32, not as this machine would.
        raise ValueError(f"device {device!r} means a GPU here, but Ray tasks get no GPU without --gpus-per-task: "
                         "pass --gpus-per-task 1 to extract on the GPUs, or --device cpu.")
    local_files = [spec for spec in study.encoders + tuple(spec for step in study.steps for spec in step.encoders)
                   if study.infos[spec].parsed.source in ("file", "lab")]
    if engine.address and local_files:
        raise ValueError(f"{local_files[0]} reads a weight file on this machine, which the workers of the cluster at "
                         f"{engine.address} may not have: run it with --engine local, or on a local Ray cluster (no "
                         "--ray-address), or publish the weights to the Hugging Face hub and use a timm:/open_clip: "
                         "spec.")
    bar = bar or _silent
    failed_units: dict[tuple, str] = {}
    for unit in extraction_plan(study, context):
        if all(context.features.has(key) for key in unit.keys.values()):
            continue
        try:
            extract_unit(unit, context, engine, device=device, batch_size=batch_size,
                         report=bar(unit.label, len(unit.image_set), "images"))
        except Exception as error:  # noqa: BLE001 - the steps that need it fail with this message; the rest go on
            failed_units[unit.identity] = f"{unit.label}: {type(error).__name__}: {error}"
    statuses = []
    for step in study.steps:
        key = step_key(step, context)
        # Two drivers on one cache (two studies naming the same step) take turns: the second finds it stored.
        with FileLock(str(context.results.root / "locks" / f"{key}.lock")):
            statuses.append(_run_step(step, key, context, engine, bar, failed_units))
    return statuses


def _run_step(step: Step, key: str, context: StudyContext, engine, bar: Bar, failed_units: dict) -> StepStatus:
    stored = context.results.get(STEP_KIND, key)
    if stored is not None:
        return StepStatus(step, key, "done", summary=stored.meta.get("summary", ""))
    meta = step_meta(step, context)
    missing = [failed_units[unit.identity] for unit in step_units(step, context)
               if unit.identity in failed_units]
    try:
        if missing:
            raise DatasetError("extraction failed: " + "; ".join(missing))
        began = time.perf_counter()
        output = analyses.get(step.analysis).run(step, context, engine, bar(step.label, 1, "units"))
    except Exception as error:  # noqa: BLE001 - recorded for `study status`; the other steps still run
        message = f"{type(error).__name__}: {error}"
        context.results.fail(STEP_KIND, key, meta, message)
        return StepStatus(step, key, "failed", error=message, ran=True)
    context.results.put(STEP_KIND, key, {**meta, **output.meta, "summary": output.summary,
                                         "seconds": round(time.perf_counter() - began, 3), "engine": engine.name},
                        tables=output.tables)
    return StepStatus(step, key, "done", summary=output.summary, ran=True)


def step_meta(step: Step, context: StudyContext) -> dict:
    """What a stored step says of itself: study, analysis, settings, layers, provenance (for methods.md and pages)."""
    image_set = context.image_set(step)
    keys = [key for unit in step_units(step, context) for key in unit.keys.values()]
    provenance = provenance_from_keys(keys, dict(step.stored_settings), dataset=step.dataset,
                                      dataset_fingerprint=image_set.fingerprint, store=context.features,
                                      skipped_images=image_set.skipped_labels)
    return {"label": step.label, "study": context.study.name, "study_file": str(context.study.path),
            "step": step.index, "analysis": step.analysis, "dataset": step.dataset,
            "dataset_fingerprint": image_set.fingerprint, "settings": dict(step.stored_settings),
            "encoders": list(step.encoders), "layers": {spec: list(step.layers[spec]) for spec in step.encoders},
            "pooling": context.study.pooling, "provenance": provenance.to_dict(), "versions": library_versions()}


def extract_unit(unit: ExtractionUnit, context: StudyContext, engine, *, device: str, batch_size: int,
                 report: Report) -> None:
    """Extract a unit's missing arrays: in this process as `python -m core extract` does, or in shards on a remote
    engine whose rows come back to this process, the only one that writes the feature store."""
    if not engine.remote:
        extract(unit.image_set, unit.info, unit.layers, context.features, pooling=unit.pooling, device=device,
                batch_size=batch_size, input_transform=unit.input_transform,
                progress=report)
        return
    store, total = context.features, len(unit.image_set)
    shard_rows = SHARD_BATCHES * batch_size  # whole batches: every row sees the batches `extract` would form
    with store.lock(list(unit.keys.values())):
        missing = {layer: key for layer, key in unit.keys.items() if not store.has(key)}
        if not missing:
            return
        start = min(store.rows_done(key) for key in missing.values())
        start -= start % shard_rows
        report(Progress(start, total, skipped=start))
        began, devices = time.perf_counter(), set()
        shared = {"info": unit.info, "layers": tuple(missing), "block_pooling": unit.pooling,
                  "input_transform": unit.input_transform, "device": device, "batch_size": batch_size}
        wave_rows = shard_rows * max(2, 2 * context.parallelism)  # image bytes of one wave in memory at a time
        for wave_start in range(start, total, wave_rows):
            shards = [_shard(unit, begin, min(begin + shard_rows, total))
                      for begin in range(wave_start, min(wave_start + wave_rows, total), shard_rows)]

            def stored(index: int, features: ShardFeatures, shards=shards) -> None:  # each shard as it arrives
                devices.add(features.device)
                for layer, key in missing.items():
                    store.save_chunk(key, shards[index].start, features.rows[layer])

            def rows_stored(shards_done: Progress, first=wave_start) -> None:  # the wave's shards, counted in rows
                report(Progress(min(first + shards_done.done * shard_rows, total), total, skipped=start))

            engine.map(extract_shard, [{"shard": shard} for shard in shards], shared=shared,
                       gpus=context.gpus_per_task, on_result=stored, progress=rows_stored)
        seconds = time.perf_counter() - began
        meta = {"dataset_name": unit.image_set.name, "n_images": total, "device": ", ".join(sorted(devices)),
                "seconds": round(seconds, 3),
                "images_per_s": round((total - start) / max(seconds, 1e-9), 2), "engine": engine.name}
        for key in missing.values():
            store.finalize(key, total, meta)


def _shard(unit: ExtractionUnit, begin: int, end: int) -> ImageShard:
    paths = unit.image_set.paths[begin:end]
    images = []
    for path in paths:
        try:
            images.append(Path(path).read_bytes())
        except OSError as error:
            raise DatasetError(f"cannot read image file {path} ({error.strerror}); restore it or remove it from the "
                               "dataset.") from None
    return ImageShard(begin, tuple(images), tuple(str(path) for path in paths))


def _silent(label: str, total: int, unit: str) -> Report:
    return lambda progress: None
