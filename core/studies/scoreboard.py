"""A study's scoreboard from its stored steps: each analysis's `Board` (declared with it in the registry) turns a
stored step's tables into cells (never recomputes).

A step that failed or never ran gives the cells it would fill as failed (with its error) or missing. Per-layer
measures report one layer per model by the study's layer rule (`core.studies.board.LayerRule`), never the best
layer on the same items.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.analyses.scoreboard import CELL_COLUMNS, Measure, Scoreboard, paradigm_of
from core.studies import analyses
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
        stored = context.results.get(STEP_KIND, key)
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
                cells += _with_missing(step, found, declared)
                measures |= {measure.name: measure for measure in declared}
                samples |= {name: {**samples.get(name, {}), **values} for name, values in resampled.items()}
                continue
        failure = context.results.failure(STEP_KIND, key)
        if stored is not None and reader is None:  # e.g. an analysis added after the scoreboard: said, not hidden
            status, error = "n/a", f"{step.label} is stored; the scoreboard has no columns for {step.analysis} yet"
        else:
            status = "failed" if failure or error else "missing"
            error = error or (failure["error"] if failure else "never run: run the study")
        declared = expected_measures(step, context)
        measures |= {measure.name: measure for measure in declared}
        cells += [_empty(spec, measure.name, status, error, step) for spec in step.encoders for measure in declared]
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


__all__ = ["expected_measures", "study_scoreboard"]
