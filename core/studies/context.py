"""What every analysis of a study reads and returns: the stores, its extraction units, its output and figures.

An analysis entry (`core.studies.analyses`) lists a step's feature arrays as `ExtractionUnit`s (extraction runs
first, `core.studies.run`), computes the step from the `StudyContext` into a `StepOutput`, and draws `study
export`'s figures of a stored step as `Drawn`. The stores are the ones the pages read, under the pages' keys.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

import pandas as pd
import plotly.graph_objects as go

from core.analyses.similarity import SimilarityStore
from core.data.datasets import ImageSet
from core.data.transforms import IDENTITY, InputTransform
from core.encoders.registry import EncoderInfo
from core.encoders.specs import ModelLayer
from core.export import export_filename
from core.features.extract import FeatureSet, feature_keys
from core.features.results import ResultStore
from core.features.store import FeatureKey, FeatureStore, ResultCache
from core.stores import Stores
from core.studies.study import Step, Study

STEP_KIND = "study_step"  # the ResultStore kind of a study step's result
Tables = dict[str, pd.DataFrame]
Figures = dict[str, Callable[[], go.Figure]]  # file stem -> draws it (one that fails is named, the others go in)
Drawn = tuple[Figures, Tables, list[str]]  # figures, tables beside the stored ones, what is left out and why


@dataclass
class StudyContext:
    """What every step reads and writes: the study, the stores and the engine's extraction settings."""

    study: Study
    features: FeatureStore
    results: ResultStore
    scores: ResultCache  # per-layer probe scores and other small JSON results, as the pages keep them
    similarity: SimilarityStore
    gpus_per_task: float = 0.0
    parallelism: int = 1  # tasks the engine runs at once (how finely to split work)

    def image_set(self, step: Step) -> ImageSet:
        return self.study.image_sets[step.dataset]

    def info(self, spec: str) -> EncoderInfo:
        return self.study.infos[spec]

    def pooling(self, spec: str) -> str:
        """The pooling an encoder uses for the study's choice (its default where it cannot do that one)."""
        return self.info(spec).effective_pooling(self.study.pooling)


def open_context(study: Study, cache: str | Path, *, gpus_per_task: float = 0, parallelism: int = 1) -> StudyContext:
    """The stores under `cache` that a study reads and fills (the same ones the pages use)."""
    stores = Stores.at(cache)
    return StudyContext(study, stores.features, stores.results, stores.scores, stores.similarity, gpus_per_task,
                        parallelism)


@dataclass(frozen=True, eq=False)
class ExtractionUnit:
    """Layers of one encoder on one image set under one input transform: one forward pass gives them all."""

    image_set: ImageSet
    info: EncoderInfo
    layers: tuple[str, ...]
    pooling: str
    input_transform: InputTransform = IDENTITY

    @cached_property
    def keys(self) -> dict[str, FeatureKey]:
        return feature_keys(self.image_set, self.info, self.layers, self.pooling, self.input_transform)

    @property
    def identity(self) -> tuple:
        return self.image_set.fingerprint, self.info.spec, self.pooling, self.input_transform.name

    @property
    def label(self) -> str:
        view = "" if self.input_transform.name == "clean" else f" [{_short(self.input_transform.name)}]"
        return f"extract {self.info.spec}{view} · {len(self.layers)} layer(s) · {len(self.image_set)} images"


def _short(view: str) -> str:
    """"views m=8" for an augmentation's long name, "glo_8" for a corruption's."""
    parts = view.split("|")
    return f"views {parts[1]}" if len(parts) > 1 else view.removeprefix("corrupt:")


@dataclass(frozen=True, eq=False)
class StepOutput:
    """A finished step: tables to store (and export), a line for the summary."""

    tables: dict[str, pd.DataFrame]
    summary: str
    meta: dict = field(default_factory=dict)


def clean_units(step: Step, context: StudyContext) -> list[ExtractionUnit]:
    """The step's encoder layers on the dataset's own images (none for a dataset of representations only)."""
    return [ExtractionUnit(context.image_set(step), context.info(spec), step.layers[spec], context.pooling(spec))
            for spec in step.encoders] if context.image_set(step).has_images else []


def feature_sets(step: Step, context: StudyContext, image_set: ImageSet | None = None) -> dict[ModelLayer, FeatureSet]:
    """Every encoder layer of the step, read from the feature store (extracted already)."""
    image_set = image_set or context.image_set(step)
    found = {}
    for spec in step.encoders:
        keys = feature_keys(image_set, context.info(spec), step.layers[spec], context.pooling(spec))
        for layer, key in keys.items():
            found[ModelLayer(spec, layer)] = FeatureSet(key, context.features.load(key))
    return found


def input_fingerprints(step: Step, context: StudyContext) -> dict[str, str]:
    """What a step's result depends on: the dataset and each encoder layer's feature key (its digest)."""
    image_set = context.image_set(step)
    inputs = {"dataset": image_set.fingerprint, "pooling": context.study.pooling}
    for spec in step.encoders:
        if image_set.has_images:
            for layer, key in feature_keys(image_set, context.info(spec), step.layers[spec],
                                           context.pooling(spec)).items():
                inputs[ModelLayer(spec, layer).label] = key.digest
    return inputs


def representation_name(value) -> str:
    """A setting naming one representation as the pages do (`<spec> · <layer>`, `human · <name>`), checked."""
    if not isinstance(value, str) or not value:
        raise ValueError('must be a name, e.g. "human · demo" or "pixels:32 · final"')
    return value


def representation_names(value) -> tuple[str, ...]:
    """A setting naming several representations, checked; kept as a tuple."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise ValueError('must be a list of names, e.g. ["human · demo", "pixels:32 · final"]')
    return tuple(value)


def slug(text: str) -> str:
    """A file-name-safe lower-case form of `text` (export_filename's rules)."""
    return export_filename(text, "", "", ext="")
