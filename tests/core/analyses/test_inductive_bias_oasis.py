"""Acceptance on real OASIS categories: EfficientNet-Lite0 loses k-NN accuracy when the global layout is shuffled."""
from __future__ import annotations

import pytest

from core.analyses.inductive_bias import BiasSettings, corruption_metrics
from core.data.corruptions import global_shuffle
from core.data.datasets import oasis
from core.encoders.registry import describe
from core.features.store import FeatureStore, ResultCache

SPEC = "bundled:efficientnet_lite0"


@pytest.mark.slow
def test_global_shuffle_lowers_knn_category_accuracy_on_oasis(oasis_root, isolated_cache) -> None:
    image_set = oasis(oasis_root)  # 900 images, 4 categories, 248 theme groups
    table = corruption_metrics(image_set, describe(SPEC), "final", FeatureStore(isolated_cache / "features"),
                               [global_shuffle(8)], BiasSettings(k=10, scheme="gkfold"),
                               results=ResultCache(isolated_cache / "results")).set_index("corruption")
    print(table.drop(columns=["encoder", "layer", "family"]).round(3).to_string())
    clean, shuffled = table.loc["clean"], table.loc["glo_8"]
    assert clean["knn_accuracy"] > 0.6 and clean["linear_balanced_accuracy"] > 0.6  # far above 4-way chance
    assert shuffled["knn_accuracy"] < clean["knn_accuracy"]
    assert shuffled["linear_balanced_accuracy"] < clean["linear_balanced_accuracy"]
    # The shuffled image is still closer to its own clean features than another image is.
    assert clean["unrelated_similarity"] < shuffled["clean_similarity"] < 0.99
