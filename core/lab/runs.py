"""Objective lab runs on disk, and the `lab:<run id>` encoder source they register.

A run lives in `<cache>/lab/<run id>/`: config.json (every setting of its `TrainConfig`),
checkpoint.pt after each epoch (a killed run resumes from it), history.json (loss per step)
and, when finished, backbone.pt and result.json (time, final loss, the weights' hash). From
then on the spec `lab:<run id>` describes and loads it like any other encoder: importing this
module registers the source with `core.encoders.registry` (the registry never imports the lab).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from core.encoders import backbones
from core.encoders.registry import Built, EncoderInfo, Source, file_version, info_from_architecture, register_source
from core.encoders.specs import EncoderSpec
from core.jobs import ACTIVE, JobStatus
from core.paths import cache_root

OBJECTIVES = ("supervised", "simclr", "clamp", "language")
OPTIMIZERS = ("adamw", "lars")
JOB_KIND = "lab"  # job registry keys of training runs: `lab|<run id>`


def lab_spec(run_id: str) -> str:
    """The encoder spec of a run, `lab:<run id>` (its run id is the spec's `arch`)."""
    return str(EncoderSpec("lab", "timm", run_id))

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
    probe_per_class: int = 12  # held-out probe images per category for the learning dynamics (0 = none)
    probe_views: int = 4  # augmented views of each probe image (m of its sub-manifold)

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"Unknown objective {self.objective!r}; choose one of {', '.join(OBJECTIVES)}.")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
        if self.objective == "clamp" and self.views < 2:
            raise ValueError("CLAMP needs at least 2 views per image.")
        if self.probe_per_class < 0 or self.probe_per_class == 1:
            raise ValueError("The probe set needs at least 2 images per category (or 0 for none); "
                             f"got {self.probe_per_class}.")
        if self.probe_views < 2:
            raise ValueError(f"Probe sub-manifolds need at least 2 views per image; got {self.probe_views}.")

    @property
    def run_id(self) -> str:
        # Settings added after runs were stored hash only when not at their default: older run ids stay valid.
        hashed = {key: value for key, value in asdict(self).items()
                  if key not in UNHASHED_AT_DEFAULT or value != UNHASHED_AT_DEFAULT[key]}
        digest = hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.objective}-{self.backbone}-{digest}"

    @property
    def views_per_image(self) -> int:
        return {"simclr": 2, "clamp": self.views}.get(self.objective, 1)


UNHASHED_AT_DEFAULT = {"probe_per_class": TrainConfig.probe_per_class, "probe_views": TrainConfig.probe_views}


def lab_dir(cache_dir: str | Path) -> Path:
    return Path(cache_dir) / "lab"


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
        return lab_spec(self.run_id)


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


def train_job_key(run_id: str) -> str:
    """The job registry key of training `run_id`, `lab|<run id>`: one job per run, so a session asking for a run
    that trains already joins its job."""
    return f"{JOB_KIND}|{run_id}"


def run_id_of_job(key: str) -> str | None:
    """The run id a training job's key names, None for any other job."""
    kind, _, run_id = key.partition("|")
    return run_id if kind == JOB_KIND and run_id else None


@dataclass(frozen=True)
class RunState:
    """Where one run stands, from its folder and this server's job for it (either may be missing).

    `state`: "queued" (its job waits for a slot; it may have no folder yet), "training", "stopping" (cancelled,
    ending at its next step), "stopped" (an unfinished folder that no job of this server trains: cancelled, or a
    server stopped midway; Train resumes it from its last finished epoch) or "finished".
    """

    run_id: str
    state: str
    config: TrainConfig | None  # None only for a queued run whose folder and settings are unknown here
    epochs_done: int  # finished epochs on disk
    progress: float  # 0..1: the job's images over all epochs while it has a job, else finished epochs / epochs
    since: float | None  # while it has a job: when it started training, or was asked for while queued (epoch s)
    run: LabRun | None  # its folder's contents, None before its job has created it

    @property
    def spec(self) -> str:
        return lab_spec(self.run_id)

    @property
    def objective(self) -> str:
        return self.config.objective if self.config else self.run_id.split("-", 1)[0]  # run ids start with it

    @property
    def active(self) -> bool:
        return self.state in ("queued", "training", "stopping")


def run_states(runs: Iterable[LabRun], jobs: Iterable[JobStatus],
               configs: Iterable[TrainConfig] = ()) -> list[RunState]:
    """Every run on disk and every active training job, by run id: a job's run is listed before `train` has written
    its folder (queued behind other jobs, or loading images), with its settings from `configs` where they name it.

    A finished folder wins over any job record; finished, failed or cancelled jobs say nothing (their folder does).
    """
    on_disk = {run.run_id: run for run in runs}
    known = {config.run_id: config for config in configs}
    active = {run_id: job for job in jobs
              if job.state in ACTIVE and (run_id := run_id_of_job(job.key)) is not None}
    states = []
    for run_id in sorted(on_disk.keys() | active.keys()):
        run, job = on_disk.get(run_id), active.get(run_id)
        config = run.config if run else known.get(run_id)
        epochs_done = run.epochs_done if run else 0
        if run is not None and run.finished:
            states.append(RunState(run_id, "finished", config, epochs_done, 1.0, None, run))
        elif job is not None:
            state = "stopping" if job.cancel_requested else "training" if job.state == "running" else "queued"
            states.append(RunState(run_id, state, config, epochs_done, job.fraction, job.started_at, run))
        else:
            states.append(RunState(run_id, "stopped", config, epochs_done,
                                   epochs_done / config.epochs if config.epochs else 0.0, None, run))
    return states


@dataclass(frozen=True)
class TrainPlan:
    """What pressing Train does for the selected runs, given this server's jobs and the session pressing it."""

    start: list[TrainConfig]  # unfinished and no job trains them: Train starts (or resumes) them
    join: list[TrainConfig]  # training or queued for other sessions only: pressing makes this session share the job
    joined: list[TrainConfig]  # training or queued with this session among those that asked for them


def plan_training(configs: Iterable[TrainConfig], finished: Iterable[str], jobs: Iterable[JobStatus],
                  owner: str) -> TrainPlan:
    """Split the unfinished runs of `configs` (`finished`: run ids) by their training job: none, another session's,
    or one `owner` shares. A job being cancelled counts as none: submitting its key again starts a new job."""
    done = set(finished)
    active = {run_id: job for job in jobs if job.state in ACTIVE and not job.cancel_requested
              and (run_id := run_id_of_job(job.key)) is not None}
    plan = TrainPlan([], [], [])
    for config in configs:
        job = active.get(config.run_id)
        if config.run_id in done:
            continue
        (plan.start if job is None else plan.joined if owner in job.owners else plan.join).append(config)
    return plan


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


class LabSource(Source):
    """`lab:<run id>`: a finished run's backbone under the current cache root, preprocessed at its training size."""

    def describe(self, spec: EncoderSpec) -> EncoderInfo:
        config = _finished_config(spec.arch)
        arch = backbones.describe_architecture("timm", config["backbone"])
        return info_from_architecture(spec, arch, self.weights_id(spec), backbones.square_preprocess(config["image_size"]))

    def weights_id(self, spec: EncoderSpec) -> str:
        # Hashed once when training finished: describe() runs on page reruns, the weights stay unread.
        result = lab_dir(cache_root()) / spec.arch / "result.json"
        return "sha256:" + json.loads(result.read_text())["backbone_sha256"]

    def check_offline(self, spec: EncoderSpec) -> None:
        _finished_config(spec.arch)

    def load(self, spec: EncoderSpec, info: EncoderInfo) -> Built:
        model = load_backbone(cache_root(), spec.arch)
        return model, backbones.transform_from_preprocess(info.preprocess), backbones.timm_forward(model)

    def version(self, spec: EncoderSpec) -> str:
        return file_version(lab_dir(cache_root()) / spec.arch / "result.json")


def _finished_config(run_id: str) -> dict:
    """config.json of a finished run under the cache root; ValueError saying what is missing."""
    run = lab_dir(cache_root()) / run_id
    if not (run / "config.json").is_file():
        raise ValueError(f"No Objective lab run {run_id!r} in {run.parent}; train it on the Objective lab page.")
    if not (run / "result.json").is_file():  # written after backbone.pt: the run's "finished" mark
        raise ValueError(f"Objective lab run {run_id!r} has not finished training yet.")
    return json.loads((run / "config.json").read_text())


register_source("lab", LabSource())
