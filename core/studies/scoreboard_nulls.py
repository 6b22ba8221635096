"""Permutation nulls of a study's similarity and brain cells (docs/science.md §12), computed on demand from the cached
features and stored, so the scoreboard shows p, z and the null's 95th percentile beside each cell.

Each analysis whose cells have a null declares how to compute them with its `Board` (`nulls`, core.analyses.registry):
a similarity cell (a model's reported layer against a reference embedding, one measure) permutes the reference's items
(`embedding_null`, the Similarity page's code and settings); a brain cell (a model's RDM against a reference group's
per-subject RDMs, one comparator) permutes every subject's items alike (`rsa_null`, the mean over subjects as the
Brain page). Either way `observed` equals the stored cell. The table of a step is stored in the ResultCache under the
step's key, the number of permutations and the seed.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.progress import Report
from core.studies import analyses
from core.studies.board import layer_rule
from core.studies.run import STEP_KIND, open_context, step_key
from core.studies.study import Study

NULL_COLUMNS = ("model", "measure", "observed", "null_p", "null_z", "null_q95", "beats_null", "n_perm", "seed")


def nulls_key(key: str, n_perm: int, seed: int) -> str:
    """Where the nulls of the step stored under `key` are kept."""
    return f"scoreboard_nulls|{key}|{n_perm}|{seed}"


def null_steps(study: Study, cache: str | Path) -> list[tuple]:
    """(step, its key, its board's `nulls`) of every stored step whose analysis gives its cells a null (similarity,
    brain; a similarity step without a reference embedding has none: an empty table)."""
    context = open_context(study, cache)
    found = []
    for step in study.steps:
        board = analyses.get(step.analysis).board
        if board is None or board.nulls is None:
            continue
        key = step_key(step, context)
        if context.results.has(STEP_KIND, key):
            found.append((step, key, board.nulls))
    return found


def stored_nulls(study: Study, cache: str | Path, n_perm: int = 1000, seed: int = 0) -> pd.DataFrame | None:
    """The stored nulls of every such step (NULL_COLUMNS); None when one of them has none stored yet."""
    context, tables = open_context(study, cache), []
    for _, key, _ in null_steps(study, cache):
        found = context.scores.get(nulls_key(key, n_perm, seed))
        if found is None:
            return None
        tables.append(pd.DataFrame(found, columns=list(NULL_COLUMNS)))
    return pd.concat(tables, ignore_index=True) if tables else None


def compute_nulls(study: Study, cache: str | Path, n_perm: int = 1000, seed: int = 0,
                  progress: Report | None = None) -> pd.DataFrame:
    """The null of every similarity and brain cell at the study's layer rule, stored per step (a step whose nulls
    are stored is read, not computed again); `progress` after each cell."""
    context = open_context(study, cache)
    rule = layer_rule(study)
    tables = []
    for step, key, nulls in null_steps(study, cache):
        records = context.scores.get(nulls_key(key, n_perm, seed))
        if records is None:
            records = nulls(step, context.results.get(STEP_KIND, key), context, rule, n_perm, seed, progress)
            context.scores.set(nulls_key(key, n_perm, seed), records)
        tables.append(pd.DataFrame(records, columns=list(NULL_COLUMNS)))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(NULL_COLUMNS))
