"""Real data: THINGS human similarity embeddings of two participant groups align item for item."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.analyses.gwot_search import align
from core.analyses.matching import category_chance, matching_summary
from core.analyses.rdm import rdm, rsa


@pytest.fixture(scope="module")
def things_groups(shared_data):
    folder = shared_data / "gwtune" / "THINGS"
    if not (folder / "THINGS_embedding_Group1.npy").is_file():
        pytest.skip(f"{folder} has no THINGS group embeddings")
    embeddings = [np.load(folder / f"THINGS_embedding_Group{group}.npy")[0] for group in (1, 2)]
    one_hot = pd.read_csv(folder / "category_mat_manual_preprocessed.csv", index_col=0)
    return embeddings, one_hot.columns[one_hot.to_numpy().argmax(axis=1)].to_numpy()


@pytest.mark.slow
def test_group1_aligns_to_group2_far_above_chance(things_groups) -> None:
    (group1, group2), categories = things_groups
    source, target = rdm(group1, "euclidean"), rdm(group2, "euclidean")
    result = align(source, target, eps_range=(1.0, 10.0), n_eps=3, n_inits=1, warm_start=True, seed=0)
    rates = matching_summary(result.transport_plan, categories).set_index("measure")
    print(f"\nTHINGS Group1->Group2: selected eps {result.epsilon:.3g}, GW {result.gw_distance:.3f}, RSA "
          f"{rsa(source, target):.3f}\n{rates}\n{result.trials}")
    assert len(source) == 1854 and rates.loc["top-1", "chance"] == pytest.approx(1 / 1854)
    assert rates.loc["top-1", "rate"] >= 0.8  # chance 0.05%
    assert rates.loc["top-10", "rate"] >= 0.95
    assert rates.loc["category", "rate"] >= 0.9 and category_chance(categories) < 0.15
    assert result.trials["valid"].all() and result.trials["converged"].all()
