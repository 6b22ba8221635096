"""Permutation nulls of a study's similarity cells (docs/science.md §12), computed on demand from the cached features
and stored, so the scoreboard shows p, z and the null's 95th percentile beside each cell.

Each cell is a model's reported layer against a reference embedding under one measure of a stored similarity step;
its null permutes the reference's items (`embedding_null`, the Similarity page's code and settings, so `observed`
equals the stored cell). The table is stored in the ResultCache under the step's key, the number of permutations
and the seed.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.analyses.permutation_null import embedding_null
from core.progress import Progress, Report
from core.studies.analyses.similarity import step_representations
from core.studies.run import STEP_KIND, open_context, step_key
from core.studies.board import chosen_layers, layer_rule
from core.studies.study import Study

NULL_COLUMNS = ("model", "measure", "observed", "null_p", "null_z", "null_q95", "beats_null", "n_perm", "seed")


def nulls_key(key: str, n_perm: int, seed: int) -> str:
    """Where the nulls of the similarity step stored under `key` are kept."""
    return f"scoreboard_nulls|{key}|{n_perm}|{seed}"


def similarity_steps(study: Study, cache: str | Path) -> list[tuple]:
    """(step, its key) of every stored similarity step compared with a reference embedding."""
    context = open_context(study, cache)
    found = []
    for step in study.steps:
        key = step_key(step, context)
        if step.analysis == "similarity" and context.results.has(STEP_KIND, key) and \
                context.image_set(step).references:
            found.append((step, key))
    return found


def stored_nulls(study: Study, cache: str | Path, n_perm: int = 1000, seed: int = 0) -> pd.DataFrame | None:
    """The stored nulls of every similarity step (NULL_COLUMNS); None when one of them has none stored yet."""
    context, tables = open_context(study, cache), []
    for _, key in similarity_steps(study, cache):
        found = context.scores.get(nulls_key(key, n_perm, seed))
        if found is None:
            return None
        tables.append(pd.DataFrame(found, columns=list(NULL_COLUMNS)))
    return pd.concat(tables, ignore_index=True) if tables else None


def compute_nulls(study: Study, cache: str | Path, n_perm: int = 1000, seed: int = 0,
                  progress: Report | None = None) -> pd.DataFrame:
    """The null of every similarity cell (the rule's layer of each encoder vs each reference, each measure), stored
    per step; `progress` after each cell."""
    context = open_context(study, cache)
    rule = layer_rule(study)
    steps = similarity_steps(study, cache)
    tables = []
    for step, key in steps:
        representations, arrays = step_representations(step, context)
        references = [name for name, item in representations.items() if item.layer is None and name.startswith("human")]
        layers = [name for name, item in representations.items() if item.layer is not None]
        chosen = chosen_layers(layers, "·", rule, step)
        cells = [(label, reference, measure) for label in chosen for reference in references
                 for measure in step.settings.measures]
        records = []
        for done, (label, reference, measure) in enumerate(cells):
            null = embedding_null(arrays[label], arrays[reference], measure, settings=step.settings.measure_settings,
                                  n_perm=n_perm, seed=seed)
            records.append({"model": chosen[label][0], "measure": f"{measure} vs {reference}",
                            "observed": null.observed, "null_p": null.p, "null_z": null.z, "null_q95": null.q95,
                            "beats_null": null.beats_null, "n_perm": n_perm, "seed": seed})
            if progress is not None:
                progress(Progress(done + 1, len(cells), f"{step.label}: {label} · {measure}"))
        context.scores.set(nulls_key(key, n_perm, seed), records)
        tables.append(pd.DataFrame(records, columns=list(NULL_COLUMNS)))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(NULL_COLUMNS))
