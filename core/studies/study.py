"""A validated study and its steps: the types `core.studies.spec` builds and everything else reads."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from core.analyses.registry import Settings
from core.data.datasets import ImageSet
from core.encoders.registry import EncoderInfo
from core.encoders.specs import ModelLayer


@dataclass(frozen=True)
class Step:
    """One analysis of a study on one dataset: its settings (every key, defaults filled) and encoder layers."""

    index: int  # position in the file's [[steps]], from 0
    analysis: str
    dataset: str  # dataset spec
    settings: Settings
    encoders: tuple[str, ...]
    layers: Mapping[str, tuple[str, ...]]  # spec -> layer names, in depth order
    given: Mapping[str, Any] = field(default_factory=dict)  # encoders / layers as the step itself names them

    @property
    def model_layers(self) -> list[ModelLayer]:
        return [ModelLayer(spec, layer) for spec in self.encoders for layer in self.layers[spec]]

    @property
    def label(self) -> str:
        return f"{self.index + 1}. {self.analysis} · {self.dataset}"

    @property
    def stored_settings(self) -> dict:
        """The settings as stored with the step's result and hashed into its key (with the step's own encoders and
        layers where it names them)."""
        return {**self.given, **self.settings}


@dataclass(frozen=True)
class Study:
    """A validated study file: datasets, encoders (specs resolved), pooling and its steps (one per dataset)."""

    path: Path
    name: str
    description: str
    datasets: tuple[str, ...]
    encoders: tuple[str, ...]
    pooling: str
    device: str
    batch_size: int
    steps: tuple[Step, ...]
    image_sets: Mapping[str, ImageSet] = field(compare=False, repr=False, default_factory=dict)
    infos: Mapping[str, EncoderInfo] = field(compare=False, repr=False, default_factory=dict)
    scoreboard: Mapping[str, Any] = field(compare=False, default_factory=dict)  # the [scoreboard] table (its layer rule)
