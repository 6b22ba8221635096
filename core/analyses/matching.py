"""How well a transport plan matches items: top-k and category matching rates, and their chance levels.

Plans are (N, M) arrays whose row i is item i's mass over the target items; the source and target
share item order, so column i is item i's true partner. Ties break by column index (GWTune's
convention), so a flat plan is not a perfect match.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

TOP_K = (1, 5, 10)


def top_k_matching_rate(plan: np.ndarray, k: int = 1) -> float:
    """Fraction of rows i of an (N, N) plan whose k largest entries include column i."""
    top = _top_columns(plan, k)
    return float(np.mean((top == np.arange(len(plan))[:, None]).any(axis=1)))


def category_matching_rate(plan: np.ndarray, source_categories: np.ndarray, target_categories: np.ndarray | None = None,
                           k: int = 1) -> float:
    """Fraction of rows i of an (N, M) plan whose k largest entries include a column of i's category."""
    return float(np.mean(_category_hits(plan, source_categories, target_categories, k)))


def per_category_matching(plan: np.ndarray, categories: np.ndarray) -> pd.DataFrame:
    """A row per category: n_items, top1 (within the category's rows), category_match, chance_category."""
    categories = np.asarray(categories).astype(str)
    identity_hits = _top_columns(plan, 1)[:, 0] == np.arange(len(plan))
    category_hits = _category_hits(plan, categories, categories, 1)
    rows = [{"category": category, "n_items": int(np.sum(members)), "top1": float(identity_hits[members].mean()),
             "category_match": float(category_hits[members].mean()), "chance_category": float(np.mean(members))}
            for category, members in ((c, categories == c) for c in dict.fromkeys(categories))]
    return pd.DataFrame(rows)


def matching_summary(plan: np.ndarray, categories: np.ndarray | None = None, ks: Sequence[int] = TOP_K) -> pd.DataFrame:
    """A row per rate (top-k for each k, and category when given): measure, rate, chance."""
    n = len(plan)
    rows = [{"measure": f"top-{k}", "rate": top_k_matching_rate(plan, k), "chance": min(k, n) / n} for k in ks]
    if categories is not None:
        rows.append({"measure": "category", "rate": category_matching_rate(plan, categories),
                     "chance": category_chance(categories)})
    return pd.DataFrame(rows)


def category_chance(categories: np.ndarray) -> float:
    """Σ_c (n_c / N)², the category matching rate of a random one-to-one plan."""
    _, counts = np.unique(np.asarray(categories).astype(str), return_counts=True)
    return float(np.sum((counts / counts.sum()) ** 2))


def _top_columns(plan: np.ndarray, k: int) -> np.ndarray:
    # A stable sort breaks ties by column index, as GWTune does, so a flat plan is not a perfect match.
    return np.argsort(-np.asarray(plan), axis=1, kind="stable")[:, :k]


def _category_hits(plan, source_categories, target_categories, k) -> np.ndarray:
    source_categories = np.asarray(source_categories).astype(str)
    target_categories = source_categories if target_categories is None else np.asarray(target_categories).astype(str)
    if len(source_categories) != plan.shape[0] or len(target_categories) != plan.shape[1]:
        raise ValueError(f"Category labels ({len(source_categories)}, {len(target_categories)}) do not match the "
                         f"plan's shape {plan.shape}.")
    return (target_categories[_top_columns(plan, k)] == source_categories[:, None]).any(axis=1)


def stored_alignment_key(dataset_fingerprint: str, source: str, target: str) -> str:
    """The result-cache key under which the Alignment page keeps the matching rates of its latest finished
    alignment of `source` to `target` (each "<label>|<pooling>"), for the Similarity page to read, never re-run."""
    return f"gwot_matching|{dataset_fingerprint}|{source}|{target}"
