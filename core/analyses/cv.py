"""Cross-validation schemes (docs/science.md §2) as one frozen type, in the manner of scikit-learn's splitters.

`SCHEMES` is the registry: Leave-One-Theme-Out (`loto`, one fold per theme group), Leave-One-
Category-Out (`loco`, one fold per category), shuffled K-fold (`kfold`) and grouped K-fold
(`gkfold`: K folds of whole theme groups, a tenth of LOTO's refits on OASIS). A
`CrossValidation(scheme, n_splits, seed)` gives the folds (`split`), its registry entry
(`definition`), the metadata values it holds out together (`groups`), its name (`label`) and a
short string for cache keys (`key`) that names K and the seed only where the scheme uses them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold, LeaveOneGroupOut


@dataclass(frozen=True)
class Scheme:
    """One entry of the registry."""

    label: str
    groups_column: str  # metadata column held out together (the K-fold scheme ignores it)
    k_fold: bool  # True: K is a parameter; False: one fold per distinct group
    suits_category_probe: bool  # False for LOCO: the held-out category is never seen in training


SCHEMES = {
    "loto": Scheme("Leave-One-Theme-Out", "group", k_fold=False, suits_category_probe=True),
    "loco": Scheme("Leave-One-Category-Out", "category", k_fold=False, suits_category_probe=False),
    "kfold": Scheme("K-fold", "group", k_fold=True, suits_category_probe=True),
    "gkfold": Scheme("Grouped K-fold (themes)", "group", k_fold=True, suits_category_probe=True),
}
K_FOLD_SCHEMES = tuple(name for name, scheme in SCHEMES.items() if scheme.k_fold)
CATEGORY_SCHEMES = tuple(name for name, scheme in SCHEMES.items() if scheme.suits_category_probe)


def scheme_label(scheme: str) -> str:
    """The display name of a scheme, e.g. "Leave-One-Theme-Out" (a selectbox's format_func)."""
    return SCHEMES[scheme].label


@dataclass(frozen=True)
class CrossValidation:
    """Outer folds of a scheme; `n_splits` and `seed` matter only for the K-fold schemes."""

    scheme: str
    n_splits: int = 5
    seed: int = 0

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise ValueError(f"Unknown cross-validation scheme {self.scheme!r}; choose one of {', '.join(SCHEMES)}.")

    @property
    def definition(self) -> Scheme:
        """The scheme's registry entry: label, groups_column, k_fold, suits_category_probe."""
        return SCHEMES[self.scheme]

    @property
    def label(self) -> str:
        return self.definition.label

    @property
    def key(self) -> str:
        """"loto", "loco", or "kfold|K|seed" / "gkfold|K|seed": what determines the folds, for cache keys."""
        return f"{self.scheme}|{self.n_splits}|{self.seed}" if self.definition.k_fold else self.scheme

    def groups(self, metadata: pd.DataFrame) -> np.ndarray:
        """(N,) held-out units of the images in `metadata`: categories for LOCO, theme groups otherwise."""
        return metadata[self.definition.groups_column].to_numpy(dtype=str)

    def get_n_splits(self, groups: np.ndarray) -> int:
        """Number of folds over (N,) groups: K, or the number of distinct groups."""
        return self.n_splits if self.definition.k_fold else len(np.unique(np.asarray(groups).astype(str)))

    def split(self, groups: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(train rows, test rows) of every fold over (N,) groups (ignored by shuffled K-fold)."""
        groups = np.asarray(groups).astype(str)
        rows = np.arange(len(groups))
        distinct = np.unique(groups)
        if self.scheme == "kfold":
            if not 2 <= self.n_splits <= len(rows):
                raise ValueError(f"K-fold needs 2 <= K <= {len(rows)} images; got K = {self.n_splits}.")
            return list(KFold(self.n_splits, shuffle=True, random_state=self.seed).split(rows))
        if self.scheme == "gkfold":
            if not 2 <= self.n_splits <= len(distinct):
                raise ValueError(f"Grouped K-fold needs 2 <= K <= {len(distinct)} theme groups; got K = "
                                 f"{self.n_splits}.")
            return list(GroupKFold(self.n_splits, shuffle=True, random_state=self.seed).split(rows, groups=groups))
        if len(distinct) < 2:
            what = "categories" if self.definition.groups_column == "category" else "theme groups"
            raise ValueError(f"{self.label} needs at least two {what}; this dataset has {len(distinct)} "
                             f"({', '.join(map(str, distinct[:3]))}). Use another scheme (Leave-One-Theme-Out or "
                             f"K-fold).")
        return list(LeaveOneGroupOut().split(rows, groups=groups))
