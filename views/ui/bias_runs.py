"""The Inductive bias page's runs: clean and corrupted features and both probes per encoder · layer, in the
background."""
from __future__ import annotations

from dataclasses import dataclass

from core.analyses.inductive_bias import BiasSettings, corruption_metrics
from core.data.corruptions import CLEAN, Corruption
from core.data.datasets import ImageSet
from core.encoders.specs import ModelLayer
from core.features.extract import feature_keys
from core.features.store import FeatureKey
from core.jobs import job_key
from views.ui import resources
from views.ui.background import submit_job
from views.ui.sidebar import Selection

JOBS = "bias_jobs"  # the page's background jobs (job_progress / submit_job group)


@dataclass(frozen=True)
class BiasRuns:
    """`corruption_metrics` of `subset` under `corruptions` (shuffles seeded by `seed`) with `probes`, per layer."""

    subset: ImageSet
    corruptions: list[Corruption]
    seed: int
    probes: BiasSettings
    selection: Selection

    def job_key(self, pair: ModelLayer) -> str:
        return job_key("bias", self.subset.fingerprint, pair.spec, pair.layer, self.selection.pooling_of(pair.spec),
                       ",".join(corruption.name for corruption in self.corruptions), str(self.seed), repr(self.probes))

    @property
    def folds(self) -> int:
        """The linear probe's folds per condition: conditions × folds are the units of a run's rate and estimate."""
        return self.probes.cv.get_n_splits(self.probes.cv.groups(self.subset.metadata))

    def rate_key(self, pair: ModelLayer) -> str:
        """What one linear-probe fold of one condition costs: its fit, plus its share of the extraction and k-NN."""
        return "|".join(["bias-folds", self.subset.name, pair.spec, pair.layer, self.selection.pooling_of(pair.spec),
                         self.selection.device,
                         repr(self.probes)])

    def start(self, pairs: list[ModelLayer]) -> None:
        """Submit one background job per encoder · layer: extract every condition, then fit both probes."""
        for pair in pairs:
            def work(report, pair=pair, encoder=resources.encoder_info(pair.spec)):
                return corruption_metrics(self.subset, encoder, pair.layer, resources.feature_store(), self.corruptions,
                                          self.probes, pooling=self.selection.pooling_of(pair.spec),
                                          device=self.selection.device,
                                          batch_size=self.selection.batch_size, results=resources.result_cache(),
                                          progress=report)

            submit_job(JOBS, self.job_key(pair), pair.label, work, rate_key=self.rate_key(pair))

    def condition_keys(self, pair: ModelLayer) -> list[FeatureKey]:
        """Feature keys of a pair's clean and corrupted features (those `corruption_metrics` extracted)."""
        encoder = resources.encoder_info(pair.spec)
        pooling = self.selection.pooling_of(pair.spec)
        return [feature_keys(self.subset, encoder, [pair.layer], pooling, corruption.input_transform)
                [pair.layer] for corruption in [CLEAN, *self.corruptions]]
