"""A study's scoreboard from its stored steps: each analysis's `Board` (declared with it in the registry) turns a
stored step's tables into cells (never recomputes). `dataset_scoreboard` does the same for every study step stored
in a cache on one dataset (whatever study file ran it; `stored_steps` rebuilds each step from what it stored).

A step that failed or never ran gives the cells it would fill as failed (with its error) or missing. Per-layer
measures report one layer per model by the study's layer rule (`core.studies.board.LayerRule`), never the best
layer on the same items.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.analyses.scoreboard import CELL_COLUMNS, Measure, Scoreboard, paradigm_of
from core.studies import analyses
from core.data.datasets import ImageSet
from core.stores import Stores
from core.studies.board import Cells, LayerRule, layer_rule
from core.studies.context import StudyContext
from core.studies.run import STEP_KIND, open_context, step_key
from core.studies.study import Step, Study


def expected_measures(step: Step, context: StudyContext) -> list[Measure]:
    """The columns a step fills once it has run (what a failed or pending step leaves empty)."""
    board = analyses.get(step.analysis).board
    if board is None:
        return [Measure(step.analysis, step.analysis, "", True, step.analysis)]
    return board.columns(step, context)


def study_scoreboard(study: Study, cache: str | Path, rule: LayerRule | None = None) -> Scoreboard:
    """Every stored step of `study` as one Scoreboard: a cell per model × measure, failed and missing ones marked."""
    context = open_context(study, cache)
    rule = rule or layer_rule(study)
    cells, measures, samples = [], {}, {}
    for step in study.steps:
        key = step_key(step, context)
        found, declared, resampled = read_step(step, context.results.get(STEP_KIND, key),
                                               context.results.failure(STEP_KIND, key), context, rule)
        cells += found
        measures |= {measure.name: measure for measure in declared}
        samples |= {name: {**samples.get(name, {}), **values} for name, values in resampled.items()}
    # An encoder of the study that no step scored on a measure: missing (a step would fill it), not n/a.
    have = {(cell["model"], cell["measure"]): cell for cell in cells}
    for step in study.steps:
        if not analyses.get(step.analysis).needs_encoders:  # it trains its own models (the lab): not the study's
            continue
        for measure in expected_measures(step, context):
            cells += [_empty(spec, measure.name, "missing", f"not in {step.label}: add it to the step", step)
                      for spec in study.encoders if (spec, measure.name) not in have]
            have |= {(spec, measure.name): True for spec in study.encoders}
    table = pd.DataFrame(cells, columns=list(CELL_COLUMNS))
    table = table.drop_duplicates(["model", "measure"], keep="first").reset_index(drop=True)
    return Scoreboard(table, measures, rule.sentence, samples)


def read_step(step: Step, stored, failure: dict | None, context: StudyContext,
              rule: LayerRule) -> tuple[Cells, list[Measure], dict]:
    """(cells, measures, resamples) of one step: its stored result through its analysis's Board, or the cells it
    would fill marked failed (with the error) or missing (never run)."""
    board = analyses.get(step.analysis).board
    reader = board.read if board is not None else None
    error = ""
    if stored is not None and reader is not None:
        try:
            found, declared, resampled = reader(step, {name: stored.table(name) for name in stored.table_names},
                                                stored.meta, context, rule)
        except (KeyError, ValueError, IndexError) as problem:  # a stored table of an older shape
            error = f"cannot read the stored result: {type(problem).__name__}: {problem}"
        else:
            return _with_missing(step, found, declared), declared, resampled
    if stored is not None and reader is None:  # e.g. an analysis added after the scoreboard: said, not hidden
        status, error = "n/a", f"{step.label} is stored; the scoreboard has no columns for {step.analysis} yet"
    else:
        status = "failed" if failure or error else "missing"
        error = error or (failure["error"] if failure else "never run: run the study")
    declared = expected_measures(step, context)
    return [_empty(spec, measure.name, status, error, step) for spec in step.encoders for measure in declared], \
        declared, {}


@dataclass(frozen=True)
class StoredStep:
    """A study step stored in the cache, rebuilt from what it stored of itself (`core.studies.run.step_meta`)."""

    key: str
    step: Step
    meta: dict
    label: str  # the step and the study that stored it, e.g. "2. similarity · demo (small scoreboard)"


def stored_steps(image_set: ImageSet, cache: str | Path) -> list[StoredStep]:
    """Every study step stored (or failed) in `cache` on `image_set` (matched by its fingerprint), newest first;
    steps of an analysis no longer known are left out."""
    results = Stores.at(cache).results
    folder = results.root / STEP_KIND
    keys = sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []
    failed = [failure for failure in (results.failure(STEP_KIND, key) for key in keys) if failure is not None]
    found = []
    for meta in [*results.entries(STEP_KIND), *failed]:
        if meta.get("dataset_fingerprint") != image_set.fingerprint or not analyses.known(meta.get("analysis")):
            continue
        settings = dict(meta.get("settings") or {})
        entry = analyses.get(meta["analysis"])
        named = set(entry.settings.names())
        step = Step(int(meta.get("step", 0)), meta["analysis"], meta.get("dataset", image_set.name),
                    entry.settings.lenient(settings), tuple(meta.get("encoders", ())),
                    {spec: tuple(layers) for spec, layers in (meta.get("layers") or {}).items()},
                    {name: value for name, value in settings.items() if name not in named})
        found.append(StoredStep(meta["key"], step, meta, f"{step.label} ({meta.get('study', 'a study')})"))
    return found


def dataset_scoreboard(image_set: ImageSet, cache: str | Path, rule: LayerRule | None = None) -> Scoreboard:
    """Every study step stored in `cache` on `image_set` as one Scoreboard: rows are every encoder any of them
    scored, a cell per model x measure (where two stored steps fill one cell, the newest is shown); a model a step
    left out is missing there (as in `study_scoreboard`)."""
    rule = rule or LayerRule()
    cells, measures, samples, expected = [], {}, {}, []
    for stored in stored_steps(image_set, cache):
        study = Study(Path(stored.meta.get("study_file", "")), stored.meta.get("study", ""), "",
                      (stored.step.dataset,), stored.step.encoders, stored.meta.get("pooling", "auto"), "cpu", 1,
                      (stored.step,), image_sets={stored.step.dataset: image_set})
        context = open_context(study, cache)
        result = context.results.get(STEP_KIND, stored.key)
        failure = None if result is not None else context.results.failure(STEP_KIND, stored.key)
        found, declared, resampled = read_step(stored.step, result, failure, context, rule)
        cells += [{**cell, "step": stored.label} for cell in found]
        measures |= {measure.name: measure for measure in declared if measure.name not in measures}
        # a measure's resamples from one step only (the newest that kept them): a paired test needs the same items
        samples |= {name: values for name, values in resampled.items() if name not in samples}
        if analyses.get(stored.step.analysis).needs_encoders:
            expected.append((stored, declared))
    models = list(dict.fromkeys(cell["model"] for cell in cells
                                if analyses.get(cell["analysis"]).needs_encoders))
    have = {(cell["model"], cell["measure"]) for cell in cells}
    for stored, declared in expected:  # a model another step scored, left out of this one: missing here
        for measure in declared:
            cells += [{**_empty(model, measure.name, "missing", f"not in {stored.label}: add it to the step",
                                stored.step), "step": stored.label}
                      for model in models if (model, measure.name) not in have]
            have |= {(model, measure.name) for model in models}
    table = pd.DataFrame(cells, columns=list(CELL_COLUMNS))
    # newest first: an ok cell of the newest step that has one, else the newest failed / missing note
    order = table["status"].map({"ok": 0, "n/a": 1}).fillna(2)
    table = table.assign(_order=order).sort_values("_order", kind="stable").drop_duplicates(["model", "measure"])
    table = table.sort_index().drop(columns="_order").reset_index(drop=True)
    return Scoreboard(table, measures, rule.sentence + " Where two stored steps fill one cell, the newest is shown.",
                      samples)


def _with_missing(step: Step, cells: Cells, measures: list[Measure]) -> Cells:
    """`cells` plus a missing cell for each of the step's encoders that a measure has no value for (a model the step
    left out, or a target it could not score)."""
    have = {(cell["model"], cell["measure"]) for cell in cells}
    return cells + [_empty(spec, measure.name, "missing", f"{step.label} gave no value for it", step)
                    for spec in step.encoders for measure in measures if (spec, measure.name) not in have]


def _empty(model: str, measure: str, status: str, error: str, step: Step) -> dict:
    return {"model": model, "paradigm": paradigm_of(model), "measure": measure, "layer": "", "value": np.nan,
            "ci_low": np.nan, "ci_high": np.nan, "status": status, "error": error, "step": step.label,
            "analysis": step.analysis}


__all__ = ["StoredStep", "dataset_scoreboard", "expected_measures", "read_step", "stored_steps", "study_scoreboard"]
