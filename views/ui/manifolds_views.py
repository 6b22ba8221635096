"""The Manifolds page's augmented views: the pipeline's widgets, background extraction per encoder · layer, and the
cached views the page reads."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from core.data.datasets import ImageSet
from core.data.transforms import AugmentationPipeline, augmentation_views
from core.encoders.specs import ModelLayer
from core.features.extract import cached_view_features, feature_keys, view_features
from core.features.store import FeatureKey
from core.jobs import job_key
from views.ui import resources
from views.ui.background import submit_job
from views.ui.settings import in_url
from views.ui.sidebar import Selection

JOBS = "manifold_jobs"  # the page's background jobs (job_progress / submit_job group)
CLAMP = AugmentationPipeline()  # the pipeline a study step uses: the jitter and crop widgets' defaults
JITTER = (("brightness", 1.0, "Colour jitter strength (applied with p = 0.8)."), ("contrast", 1.0, "Colour jitter."),
          ("saturation", 1.0, "Colour jitter."), ("hue", 0.5, "Colour jitter."))  # (field, largest value, help)


def pipeline_input() -> AugmentationPipeline:
    """The pipeline set by the jitter and crop widgets of an expander (keys `manifolds.<field>`, CLAMP's defaults)."""
    with st.expander("Augmentation pipeline (CLAMP defaults)"):
        jitter = {name: column.number_input(name.capitalize(), 0.0, high,
                                            **in_url(f"manifolds.{name}", value=getattr(CLAMP, name)), help=help_text)
                  for column, (name, high, help_text) in zip(st.columns(len(JITTER)), JITTER)}
        crop_min = st.slider("Smallest crop (share of the image area)", 0.01, 1.0,
                             **in_url("manifolds.crop", value=CLAMP.crop_scale[0]),
                             help="Random resized crop scale [this, 1]; then flip p = 0.5, grayscale p = 0.2, "
                                  "blur p = 0.5.")
    return AugmentationPipeline(crop_scale=(crop_min, 1.0), **jitter)


@dataclass(frozen=True)
class PageViews:
    """`m` views of each image of `subset` under `pipeline`, per encoder · layer at the sidebar's pooling."""

    subset: ImageSet
    m: int
    pipeline: AugmentationPipeline
    selection: Selection

    def job_key(self, layer: ModelLayer) -> str:
        return job_key("views", self.subset.fingerprint, layer.spec, layer.layer, str(self.m), self.pipeline.name,
                       self.selection.pooling_of(layer.spec))

    def rate_key(self, layer: ModelLayer) -> str:
        """What one view costs: the encoder layer, pooling and device (views are 224-pixel crops of any dataset)."""
        return "|".join(["manifold-views", layer.spec, layer.layer, self.selection.pooling_of(layer.spec),
                         self.selection.device])

    def start_extraction(self, layers: list[ModelLayer]) -> None:
        """Submit one background job per encoder · layer that extracts (and caches) its views."""
        store = resources.feature_store()
        for layer in layers:
            def work(report, layer=layer, encoder=resources.encoder_info(layer.spec)):
                return view_features(self.subset, encoder, layer.layer, store, m=self.m, pipeline=self.pipeline,
                                     pooling=self.selection.pooling_of(layer.spec), device=self.selection.device,
                                     batch_size=self.selection.batch_size, progress=report)
            submit_job(JOBS, self.job_key(layer), layer.label, work, rate_key=self.rate_key(layer))

    def stored(self, layer: ModelLayer) -> np.ndarray | None:
        """The cached (N, m, D) views, memoised per process once found (building their cache key hashes N·m files)."""
        return resources.result_memo().get_or_compute(  # None (not extracted yet) is not memoised
            self.job_key(layer),
            lambda: cached_view_features(self.subset, resources.encoder_info(layer.spec), layer.layer,
                                         resources.feature_store(), m=self.m, pipeline=self.pipeline,
                                         pooling=self.selection.pooling_of(layer.spec)))

    def feature_key(self, layer: ModelLayer) -> FeatureKey:
        """The feature key of a layer's cached views, memoised like the views (it hashes N·m file stats)."""
        def key() -> FeatureKey:
            views, input_transform = augmentation_views(self.subset, self.m, self.pipeline)
            return feature_keys(views, resources.encoder_info(layer.spec), [layer.layer],
                                self.selection.pooling_of(layer.spec),
                                input_transform)[layer.layer]
        return resources.result_memo().get_or_compute(("key", self.job_key(layer)), key)
