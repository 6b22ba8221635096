"""CrossValidation: the same folds as the scikit-learn splitters the schemes name, keys that differ only where they should."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GroupKFold, KFold, LeaveOneGroupOut

from core.analyses.cv import CATEGORY_SCHEMES, K_FOLD_SCHEMES, SCHEMES, CrossValidation

GROUPS = np.array(["a", "a", "b", "b", "b", "c", "d", "d", "e", "e", "e", "e", "f", "g", "g", "h"])


def splitter(scheme: str, n_splits: int, seed: int):
    """The splits fold_splits made before CrossValidation existed, over the rows 0 .. N−1."""
    rows = np.arange(len(GROUPS))
    if scheme == "kfold":
        return KFold(n_splits, shuffle=True, random_state=seed).split(rows)
    if scheme == "gkfold":
        return GroupKFold(n_splits, shuffle=True, random_state=seed).split(rows, groups=GROUPS)
    return LeaveOneGroupOut().split(rows, groups=GROUPS)


@pytest.mark.parametrize("scheme", list(SCHEMES))
@pytest.mark.parametrize("n_splits, seed", [(3, 0), (4, 0), (4, 11)])
def test_split_gives_the_folds_of_the_old_dispatch(scheme: str, n_splits: int, seed: int) -> None:
    expected = list(splitter(scheme, n_splits, seed))
    splits = CrossValidation(scheme, n_splits, seed).split(GROUPS)
    assert len(splits) == len(expected) == CrossValidation(scheme, n_splits, seed).get_n_splits(GROUPS)
    for (train, test), (old_train, old_test) in zip(splits, expected):
        np.testing.assert_array_equal(train, old_train)
        np.testing.assert_array_equal(test, old_test)


def test_known_folds_of_a_small_groups_array() -> None:
    assert [list(test) for _, test in CrossValidation("loto").split(np.array(["x", "y", "x", "z"]))] == [[0, 2], [1], [3]]
    kfold = [sorted(test) for _, test in CrossValidation("kfold", 2, seed=0).split(np.zeros(6))]
    assert sorted(np.concatenate(kfold)) == list(range(6)) and len(kfold) == 2


def test_key_names_k_and_the_seed_only_where_the_scheme_uses_them() -> None:
    assert CrossValidation("loto", 3, 1).key == CrossValidation("loto", 7, 2).key == "loto"
    assert CrossValidation("loco", 3).key == "loco" != CrossValidation("loto").key
    for scheme in K_FOLD_SCHEMES:
        keys = {CrossValidation(scheme, k, seed).key for k in (3, 5) for seed in (0, 1)}
        assert len(keys) == 4 and all(key.startswith(f"{scheme}|") for key in keys)
    assert CrossValidation("kfold", 5).key != CrossValidation("gkfold", 5).key


def test_registry_labels_groups_and_the_category_probe_schemes() -> None:
    metadata = pd.DataFrame({"group": ["g1", "g2"], "category": ["c1", "c1"]})
    assert list(CrossValidation("loco").groups(metadata)) == ["c1", "c1"]
    assert all(list(CrossValidation(scheme).groups(metadata)) == ["g1", "g2"] for scheme in ("loto", "kfold", "gkfold"))
    assert CrossValidation("loto").label == "Leave-One-Theme-Out" and CrossValidation("gkfold").label == \
        "Grouped K-fold (themes)"
    assert set(K_FOLD_SCHEMES) == {"kfold", "gkfold"} and set(CATEGORY_SCHEMES) == {"loto", "kfold", "gkfold"}
    with pytest.raises(ValueError, match="Unknown cross-validation scheme"):
        CrossValidation("loo")
    with pytest.raises(ValueError, match="K-fold needs 2 <= K <= 16 images"):
        CrossValidation("kfold", 17).split(GROUPS)
