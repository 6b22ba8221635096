"""One encoder's layer-probe curves from whatever is stored: extract the layers the feature store lacks, then fit
the probes the score cache lacks, as one run with one progress (the Layer probes page's job per encoder).

A run reports in two stages (core.progress): "extracting", the images of its extraction (all N when any layer is
missing; rows an interrupted extraction stored count as skipped), then "fitting", the cross-validation folds of its
fits (`pending_fits`, `fold_count`). An image and a fold cost very differently (OASIS pixels: 4 s for 900 images,
0.4 s per ridge fold, 8 s per logistic fold), so each stage has its own count and its own ETA. Scores stay cached
per layer as in `encoder_curves`: a cancelled run keeps its extracted rows and finished fits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pandas as pd

from core.analyses.probes import PROBES, ProbeSettings, encoder_curves, fit_rate_key, fold_count, pending_fits
from core.data.datasets import ImageSet
from core.encoders.registry import EncoderInfo
from core.features.extract import extract, feature_keys
from core.features.store import FeatureStore, ResultCache
from core.progress import Progress, Report


@dataclass(frozen=True)
class ProbeRun:
    """What `run_probe_curves` would do for one encoder now: the layers to extract first, the images that takes
    (0 when none is missing), the (layer, kind) fits whose scores are not cached and their folds."""

    spec: str
    n_layers: int  # every layer of the encoder
    missing_layers: tuple[str, ...]
    n_images: int
    fits: tuple[tuple[str, str], ...]
    n_folds: int = 0  # cross-validation folds of `fits`: the units of the fitting stage and of the run's rate

    @property
    def pending(self) -> bool:
        """Whether the run has anything to do (an extraction or a fit)."""
        return bool(self.missing_layers or self.fits)

    def describe(self) -> str:
        """"extract all 9 layers of <spec>, then 18 fits", or "2 fits of <spec>" when every layer is stored."""
        fits = f"{len(self.fits)} fit{'s' * (len(self.fits) != 1)}"
        if not self.missing_layers:
            return f"{fits} of {self.spec}"
        if self.n_layers == 1:
            extraction = f"extract {self.spec} (one layer)"
        elif len(self.missing_layers) == self.n_layers:
            extraction = f"extract all {self.n_layers} layers of {self.spec}"
        else:
            extraction = f"extract the {len(self.missing_layers)} missing layers of {self.spec}"
        return f"{extraction}, then {fits}" if self.fits else extraction


def probe_run(image_set: ImageSet, encoder: EncoderInfo, store: FeatureStore, *,
              settings: ProbeSettings = ProbeSettings(), probes: Sequence[str] = PROBES, pooling: str = "auto",
              results: ResultCache | None = None) -> ProbeRun:
    """The extraction and fits `run_probe_curves` still has to do for `encoder` (nothing is loaded or computed)."""
    keys = feature_keys(image_set, encoder, "all", pooling)
    missing = tuple(layer for layer, key in keys.items() if not store.has(key))
    fits = pending_fits(image_set, encoder, settings=settings, probes=probes, pooling=pooling, results=results)
    return ProbeRun(encoder.spec, len(keys), missing, len(image_set) if missing else 0, tuple(fits),
                    fold_count(image_set, settings, fits))


def run_rate_key(image_set: ImageSet, run: ProbeRun, settings: ProbeSettings, pooling: str, device: str) -> str:
    """Rate-memory key of a run's seconds per fold: `fit_rate_key` for fits alone; with an extraction, the images'
    time (on `device`) is part of it, so such a run is remembered under its own key."""
    key = fit_rate_key(image_set, run.spec, run.fits, settings, pooling)
    return f"{key}|extract {len(run.missing_layers)} layers on {device}" if run.missing_layers else key


def run_probe_curves(image_set: ImageSet, encoder: EncoderInfo, store: FeatureStore, *,
                     settings: ProbeSettings = ProbeSettings(), probes: Sequence[str] = PROBES, pooling: str = "auto",
                     device: str = "auto", batch_size: int = 32, results: ResultCache | None = None,
                     progress: Report | None = None) -> pd.DataFrame:
    """`encoder_curves` of `encoder` after extracting every layer the store lacks (one forward pass per batch).

    `progress` counts the run's stages (`ProbeRun`): stage "extracting" the images ("extracting 9 layers: 96/384
    images · 28.5 images/s in this run · then 18 fits"), then stage "fitting" the folds of the fits
    ("fit 3/18: blocks.2 · affect · fold 4/5").
    """
    plan = probe_run(image_set, encoder, store, settings=settings, probes=probes, pooling=pooling, results=results)
    layers = f"{len(plan.missing_layers)} layer{'s' * (len(plan.missing_layers) != 1)}"
    then = f" · then {len(plan.fits)} fit{'s' * (len(plan.fits) != 1)}" if plan.fits else ""

    def extracted(rows: Progress) -> None:
        progress(Progress(rows.done, rows.total, f"extracting {layers}: {rows.done}/{rows.total} images · "
                                                 f"{rows.message}{then}", rows.skipped, "extracting"))

    def fitted(folds: Progress) -> None:
        message = "fitting" if folds.message == "starting" else folds.message
        progress(Progress(folds.done, folds.total, message, stage="fitting"))

    if plan.missing_layers:
        extract(image_set, encoder, "all", store, pooling=pooling, device=device, batch_size=batch_size,
                progress=None if progress is None else extracted)
    return encoder_curves(image_set, encoder, store, settings=settings, probes=probes, pooling=pooling,
                          results=results, progress=None if progress is None else fitted)
