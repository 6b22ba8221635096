"""A `similarity` study step with an RDM-only reference: every layer of pixels:32 against human IT's mean RDM."""
from __future__ import annotations

import numpy as np
import pytest

from core.analyses.rdm import rdm
from core.analyses.rsa import compare_rdms, condensed
from core.studies.analyses.similarity import step_representations
from core.studies.run import STEP_KIND, open_context
from tests.studies import run_step


def test_a_similarity_step_compares_a_layer_with_an_rdm_group(kriegeskorte92, isolated_cache, tmp_path) -> None:
    study, status = run_step(tmp_path, isolated_cache, f"neural:{kriegeskorte92}", "similarity", {
        "matrix": "reference", "references": ["rdm · hIT"], "measures": ["rsa_tau_a", "rsa_cosine", "cka_debiased"],
        "rdm_metric": "euclidean"})
    context = open_context(study, isolated_cache)
    pairs = context.results.get(STEP_KIND, status.key).table("pairs").set_index("measure")
    _, arrays = step_representations(study.steps[0], context)
    layer = condensed(rdm(arrays["pixels:32 · final"], "euclidean", dtype=np.float64)[None])
    group = condensed(arrays["rdm · hIT"][None])
    for measure, method in (("rsa_tau_a", "tau-a"), ("rsa_cosine", "cosine")):
        assert pairs.loc[measure, "value"] == pytest.approx(compare_rdms(layer, group, method)[0, 0], abs=1e-9)
    assert np.isnan(pairs.loc["cka_debiased", "value"])
    assert pairs.loc["cka_debiased", "note"] == "not applicable: rdm · hIT is given as RDMs only"
