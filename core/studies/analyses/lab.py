"""Objective lab: train one backbone under several objectives (`core.lab.train`) and keep their learning dynamics.

A `lab` step trains each objective into the same run folder the Objective lab page trains (`<cache>/lab/<run id>`,
the run id hashing every setting), so the page lists the study's runs and their dynamics, and a run either side
started resumes from its last finished epoch. It names no encoders: it makes them (`lab:<run id>`). Training runs in
the driver process on the study's device, whatever the engine.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.analyses.registry import Analysis, Board, Settings, register, setting
from core.analyses.scoreboard import Measure
from core.figures.lab import loss_curves_figure, loss_curves_table, run_id_of_label, run_label
from core.figures.lab_dynamics import (centroid_map, centroid_map_figure, class_distances_figure, dynamics_table,
                                       measure_figure)
from core.lab.dynamics import MEASURES, read_dynamics
from core.lab.runs import OBJECTIVES, OPTIMIZERS, TrainConfig, lab_dir, lab_spec, load_run
from core.progress import Progress, Report
from core.studies.board import cell
from core.studies.context import Drawn, StepOutput, StudyContext, Tables
from core.studies.study import Step

DEFAULTS = TrainConfig("supervised")  # the lab's defaults are the run settings' own


def timm_architecture(value) -> str:
    """A timm architecture name, checked against timm's list."""
    import timm

    if not isinstance(value, str) or value not in timm.list_models():
        raise ValueError("must be a timm architecture, e.g. resnet18, resnet50 or vit_tiny_patch16_224")
    return value


@dataclass(frozen=True)
class LabSettings(Settings):
    objectives: tuple = setting(OBJECTIVES, "Each is trained separately from the same initial weights (seed), on the "
                                "same images and augmented views, for the same epochs.", choices=OBJECTIVES, many=True)
    backbone: str = setting(DEFAULTS.backbone, "Any timm architecture, randomly initialised. resnet18 at 64 px trains "
                            "on a CPU in minutes; ViTs want a GPU.", check=timm_architecture)
    image_size: int = setting(DEFAULTS.image_size, "Training resolution (random resized crops of this size); the run's "
                              "encoder preprocesses at the same size.", low=32, high=384)
    epochs: int = setting(DEFAULTS.epochs, "Passes over the images.", low=1, high=1000)
    batch_size: int = setting(DEFAULTS.batch_size, "Images per step (each with its views).", low=4, high=4096)
    views: int = setting(DEFAULTS.views, "Views per image for CLAMP; SimCLR always uses 2, supervised and language 1.",
                         low=2, high=32)
    seed: int = setting(DEFAULTS.seed, "Initial weights, image order and augmentations; the same seed gives the same "
                        "run.", low=0, high=2**31 - 1)
    max_images: int = setting(DEFAULTS.max_images, "Train on a random subset of this many images (seeded); 0 uses the "
                              "whole set.", low=0, high=10_000_000)
    probe_per_class: int = setting(DEFAULTS.probe_per_class, "Held-out probe images per category, measured at the end "
                                   "of every epoch (and before the first) through the run's own augmentations; never "
                                   "trained on. More images: steadier curves, slower epochs.", low=2, high=1000)
    probe_views: int = setting(DEFAULTS.probe_views, "Augmented views of each probe image: the m of its sub-manifold "
                               "(radius, neighbours, alignment).", low=2, high=32)
    optimizer: str = setting(DEFAULTS.optimizer, "AdamW, or LARS (timm's) as in SimCLR; cosine schedule to 0 either "
                             "way.", choices=OPTIMIZERS)
    lr: float = setting(DEFAULTS.lr, "Peak learning rate of the cosine schedule.", low=1e-6, high=10.0)
    weight_decay: float = setting(DEFAULTS.weight_decay, "Decoupled (AdamW) or LARS weight decay.", low=0.0, high=1.0)
    temperature: float = setting(DEFAULTS.temperature, "Softmax temperature of SimCLR's NT-Xent and the language "
                                 "objective.", low=0.01, high=5.0)
    radius_scale: float = setting(DEFAULTS.radius_scale, "CLAMP's radius scale (7 for CIFAR-sized images, 8.5 for "
                                  "ImageNet).", low=0.5, high=50.0)


def train_configs(settings: LabSettings, dataset: str) -> dict[str, TrainConfig]:
    """objective -> the run settings of each objective of `settings` on `dataset` (the page builds the same ones)."""
    shared = {name: settings[name] for name in LabSettings.names() if name != "objectives"}
    return {objective: TrainConfig(objective, dataset=dataset, **shared) for objective in settings.objectives}


def units(step: Step, context: StudyContext) -> list:
    return []  # a lab step extracts nothing: it trains


def cache_of(context: StudyContext) -> Path:
    """The cache root (Stores.at keeps results in <cache>/results); run folders live in <cache>/lab."""
    return context.results.root.parent


def run(step: Step, context: StudyContext, engine, report: Report) -> StepOutput:
    from core.features.extract import resolve_device
    from core.lab.train import train

    cache, device = cache_of(context), str(resolve_device(context.study.device))
    configs = train_configs(step.settings, step.dataset)
    for objective, config in configs.items():
        def staged(progress: Progress, objective=objective) -> None:
            report(Progress(progress.done, progress.total, f"{objective}: {progress.message}", progress.skipped,
                            stage=objective))
        train(config, cache, device=device, progress=staged)
    runs = {run_label(objective, config.run_id): read_dynamics(lab_dir(cache) / config.run_id)
            for objective, config in configs.items()}
    trained = [load_run(cache, config.run_id) for config in configs.values()]
    table = pd.DataFrame([{"run": run_label(item.config.objective, item.run_id), "objective": item.config.objective,
                           "spec": lab_spec(item.run_id), **{key: item.result.get(key) for key in
                                                            ("images", "seconds", "final_loss", "backbone_sha256")}}
                          for item in trained])
    losses = loss_curves_table({run_label(item.config.objective, item.run_id): item.history for item in trained})
    return StepOutput({"dynamics": dynamics_table(runs), "runs": table, "losses": losses},
                      f"{len(configs)} objective(s) × {step.settings.epochs} epoch(s) of {step.settings.backbone}: "
                      + ", ".join(lab_spec(config.run_id) for config in configs.values()))


def draw(step: Step, stored, tables: Tables, context: StudyContext) -> Drawn:
    """Each measure over epochs per space, the loss curves; per run the class distances at its last epoch and the
    centroid map over epochs, from its run folder (left out, and named, when the folder has left the cache)."""
    dynamics, figures = tables["dynamics"], {"loss_curves": lambda: loss_curves_figure(tables["losses"])}
    for space, rows in dynamics.groupby("space", sort=False):
        for key, label, _ in MEASURES:
            if (rows["measure"] == key).any():
                figures[f"{space}_{key}"] = lambda rows=rows, key=key, title=f"{label} · {space}": measure_figure(
                    rows, key, title)
    cache = cache_of(context)
    for (run_name, space), _ in dynamics.groupby(["run", "space"], sort=False):
        run_id = run_id_of_label(run_name)

        def geometries(run_id=run_id, space=space):
            return [item for item in read_dynamics(lab_dir(cache) / run_id) if item.space == space] or \
                _missing(lab_dir(cache) / run_id, space)
        figures[f"class_distances_{run_id}_{space}"] = lambda run_name=run_name, geometries=geometries: \
            class_distances_figure(geometries()[-1], run_name)
        figures[f"map_{run_id}_{space}"] = lambda run_name=run_name, space=space, geometries=geometries: \
            centroid_map_figure(*centroid_map(geometries()), run_name, space)
    return figures, {}, []


def _missing(run: Path, space: str):
    raise ValueError(f"run folder {run} holds no {space} dynamics (deleted, or the cache was cleared)")


def check(step: Step, image_set) -> tuple[str, str] | None:
    """Captions and the supervised objective need categories."""
    if image_set.metadata["category"].nunique() < 2:
        return "analysis", f"{step.dataset} has one category: the lab's supervised objective and captions need two"
    return None


# --- the Scoreboard's columns and cells of a stored step (core.studies.scoreboard) ---------------------------------

# The probe set's measures a trained model gets a Scoreboard cell for (backbone, last epoch): higher is better?
BOARD_MEASURES = {"knn_accuracy": True, "linear_probe_accuracy": True, "uniformity": True, "alignment": False,
                  "radius_mean": False, "neighbours_mean": False}


def lab_measures(step: Step, context: StudyContext) -> list[Measure]:
    labels = {key: label for key, label, _ in MEASURES}
    return [Measure(f"lab_{key}", f"{labels[key]}, lab probe set, last epoch", "", higher, "lab")
            for key, higher in BOARD_MEASURES.items()]


def read_lab(step, tables, meta, context, rule):
    """Each trained run (its `lab:<run id>` encoder) in a row of its own: the backbone's probe-set measures at its
    last stored epoch."""
    dynamics, specs = tables["dynamics"], dict(zip(tables["runs"]["run"], tables["runs"]["spec"]))
    overall = dynamics[(dynamics["space"] == "backbone") & (dynamics["class"].fillna("") == "")]
    cells = []
    for run_name, rows in overall.groupby("run", sort=False):
        last = rows[rows["epoch"] == rows["epoch"].max()]
        values = dict(zip(last["measure"], last["value"]))
        cells += [cell(specs[run_name], f"lab_{key}", values.get(key, float("nan")),
                       layer=f"epoch {int(last['epoch'].iloc[0])}", step=step) for key in BOARD_MEASURES]
    return cells, lab_measures(step, context), {}


ENTRY = register(Analysis("lab", "Objective lab", "views/lab.py", "🧪", LabSettings, units, run, draw, check=check,
                          needs_encoders=False, order=90, board=Board(lab_measures, read_lab)))
