"""The Alignment page's alignments of one source: where each is stored, its background search, the RDMs and
provenance it reads, the RSA-vs-GWOT comparison, and the matching rates it leaves for the Similarity page."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from core.analyses.gwot import Alignment, AlignmentReport, rsa_vs_gwot
from core.analyses.gwot_search import align, load_alignment, save_alignment
from core.analyses.matching import stored_alignment_key
from core.analyses.representation import Representation
from core.data.datasets import ImageSet
from core.jobs import job_key
from core.provenance import Provenance, provenance_from_keys
from core.studies.analyses.alignment import AlignmentSettings, search_record, stored_key, stored_meta
from views.ui import resources
from views.ui.alignment_sources import cached_rdm, layer_feature_keys
from views.ui.background import submit_job

JOBS = "alignment_jobs"  # the session's list of its alignment job keys


@dataclass(frozen=True)
class SourceAlignments:
    """The alignments of the settings' source to any of the page's representations, with the page's settings."""

    image_set: ImageSet
    dataset: str  # how a stored alignment's meta names the dataset (the sidebar's dataset spec)
    settings: AlignmentSettings
    representations: Mapping[str, Representation]  # by label

    @property
    def source(self) -> str:
        return self.settings.source

    def key(self, target: str) -> str:
        """Where the alignment to `target` is stored (the key a study step of these settings stores it under)."""
        return stored_key(self.image_set.fingerprint, self.settings, self.representations, target)

    def job(self, target: str) -> str:
        return job_key("align", self.key(target))

    def rdm(self, name: str) -> np.ndarray:
        """(N, N) RDM of representation `name` under the settings' metric and normalisation."""
        return cached_rdm(self.image_set, self.representations[name], self.settings.metric, self.settings.normalise)

    def stored(self, target: str) -> Alignment | None:
        """The finished alignment to `target` from the result store (a study's, an earlier session's), or None."""
        key = self.key(target)
        return resources.result_memo().get_or_compute(("alignment", key),
                                                      lambda: load_alignment(resources.result_store(), key))

    def outcome(self, target: str) -> Alignment | str:
        """The finished alignment to `target`, or the state of its search."""
        found = self.stored(target)
        if found is not None:
            return found
        job = resources.job_registry().status(self.job(target))
        return "not run" if job is None else job.state

    @property
    def rate_key(self) -> str:
        """What a trial costs depends on the number of items and the search settings, not on which representations."""
        record = search_record(self.settings.search_settings)
        return f"align|{len(self.image_set.metadata)}|{self.settings.metric}|{repr(sorted(record.items()))}"

    def start(self, targets: Sequence[str]) -> None:
        """Button callback: one background job per target, so a long search survives reruns and page changes."""
        source, search = self.rdm(self.source), asdict(self.settings.search_settings)
        for target in targets:
            def work(report, target=target, target_matrix=self.rdm(target), key=self.key(target)):
                alignment = align(source, target_matrix, **search, progress=report)
                save_alignment(resources.result_store(), key, alignment,
                               stored_meta(self.settings, target, self.dataset))
                return alignment

            submit_job(JOBS, self.job(target), f"{self.source} → {target}", work, rate_key=self.rate_key)

    def provenance(self, targets: Sequence[str]) -> Provenance:
        """What aligning the source to `targets` used: the features of its encoder layers and the settings."""
        names = [self.source, *targets]
        parameters = {"source": self.representations[self.source].key,
                      "targets": [self.representations[name].key for name in targets],
                      "metric": self.settings.metric, "normalise": self.settings.normalise,
                      **search_record(self.settings.search_settings)}
        return provenance_from_keys(layer_feature_keys(self.image_set, [self.representations[name] for name in names]),
                                    parameters, dataset=self.image_set.name,
                                    dataset_fingerprint=self.image_set.fingerprint,
                                    skipped_images=self.image_set.skipped_labels, store=resources.feature_store())

    def comparison(self, targets: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
        """(RSA and GWOT matching of the source to each target, the targets with no finished alignment yet)."""
        outcomes = {target: self.outcome(target) for target in targets}
        categories = self.image_set.metadata["category"].astype(str).to_numpy()
        table = rsa_vs_gwot(self.source, self.rdm(self.source), {target: self.rdm(target) for target in targets},
                            outcomes, categories)
        return table, [target for target, result in outcomes.items() if not isinstance(result, Alignment)]

    def publish_matching(self, target: str, report: AlignmentReport) -> None:
        """Keep the pair's matching rates where the Similarity page reads them: GWOT is never re-run there."""
        pair = [f"{name}|{self.representations[name].pooling}" for name in (self.source, target)]
        resources.result_cache().set(stored_alignment_key(self.image_set.fingerprint, *pair), {
            "top1_matching": float(report.rates["rate"].iloc[0]),
            "category_matching": float(report.rates["rate"].iloc[-1]),
            "gw_distance": float(report.alignment.gw_distance), "epsilon": float(report.alignment.epsilon),
            "rdm_metric": self.settings.metric, "normalise": bool(self.settings.normalise)})
