"""A study's answer as one table: every model × every measure, read from stored results (docs/science.md §9).

A scoreboard is a long table of cells (model, measure, value, 95% CI, status) plus, per measure, what it means
(`Measure`: label, unit, direction, chance) and, where the stored result kept them, bootstrap samples drawn on the
same resamples for every model (`samples`), from which paired differences and rank stability follow. Nothing here
computes an analysis: `core.studies.scoreboard` fills it from a study's stored steps.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Mapping

import numpy as np
import pandas as pd

from core.analyses.rank_stability import (PairedDifference, RankStability, kendalls_w, measure_agreement,
                                          paired_difference, rank_stability)
from core.analyses.layer_choice import fixed_layer, held_out_layer_from_items
from core.encoders.catalogue import CATALOGUE, CONTROL, PARADIGMS

STATUSES = ("ok", "missing", "failed", "n/a")
REFERENCE = "reference"  # the paradigm of references shown as models (human embeddings, model RDMs)
OTHER = "other"  # encoders outside the catalogue
PARADIGM_ORDER = tuple(name for name in PARADIGMS if name != CONTROL) + (OTHER, CONTROL, REFERENCE)
CELL_COLUMNS = ("model", "paradigm", "measure", "layer", "value", "ci_low", "ci_high", "status", "error", "step",
                "analysis")


@dataclass(frozen=True)
class Measure:
    """One column: its name (unique on the board: `<base> vs <reference>` where it has a reference), label, unit,
    whether higher is better, its chance level (or NaN), and for the export table its `base` (the measure without its
    reference; default: the name) and `reference` ("" for a measure of the model alone)."""

    name: str
    label: str
    unit: str
    higher_better: bool
    analysis: str
    chance: float = float("nan")
    base: str = ""
    reference: str = ""

    def __post_init__(self) -> None:
        if not self.base:
            object.__setattr__(self, "base", self.name)


def versus(base: str, reference: str, label: str, unit: str, higher_better: bool, analysis: str,
           chance: float = float("nan")) -> Measure:
    """A measure of a model against `reference`: named `<base> vs <reference>`, labelled `<label> vs <reference
    without its human · prefix>`, its base and reference kept apart for the export table."""
    return Measure(f"{base} vs {reference}", f"{label} vs {reference.removeprefix('human · ')}", unit, higher_better,
                   analysis, chance, base, reference)


@dataclass(frozen=True)
class Scoreboard:
    """Cells (one row per model × measure: CELL_COLUMNS), the measures by name, the layer rule and, per measure,
    model -> (B,) bootstrap values on shared resamples (same items drawn for every model)."""

    cells: pd.DataFrame
    measures: Mapping[str, Measure]
    rule: str
    samples: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict)
    # permutation nulls where computed: model, measure, observed, null_p, null_z, null_q95, beats_null, n_perm, seed
    nulls: pd.DataFrame | None = None

    @cached_property
    def models(self) -> list[str]:
        """Models in paradigm order, then in order of appearance."""
        order = {name: index for index, name in enumerate(PARADIGM_ORDER)}
        first = self.cells.drop_duplicates("model")
        return list(first.sort_values("paradigm", key=lambda column: column.map(order), kind="stable")["model"])

    def cell(self, model: str, measure: str) -> pd.Series:
        """The cell of `model` on `measure` (KeyError naming both when there is none)."""
        found = self.cells[(self.cells["model"] == model) & (self.cells["measure"] == measure)]
        if found.empty:
            raise KeyError(f"no cell for {model!r} on {measure!r}")
        return found.iloc[0]

    @property
    def references(self) -> list[str]:
        """The references the measures are taken against, in order of first appearance ([""] when none is)."""
        return list(dict.fromkeys(measure.reference for measure in self.measures.values() if measure.reference)) \
            or [""]

    def table(self) -> pd.DataFrame:
        """The export table (CLI CSV / JSON, the page's CSV, `study export`): one row per model × reference (every
        reference of the board for every model; reference "" when no measure has one), then model, paradigm,
        reference, `status` (failed where a cell of the row failed, else missing where one is missing, else ok), and
        per measure base (the measure without its reference) `<base>`, `<base>_ci_low`, `<base>_ci_high` and
        `<base>_status` ("ok", "missing", "failed: <error>", "n/a"; a measure taken against another reference is
        n/a on this row). A measure of the model alone (affect, probes, manifolds, inductive bias, lab) repeats on
        each of its model's rows. With nulls, `<base>_null_p`, `_null_z` and `_null_q95` where one is stored."""
        references = self.references
        rows = [(model, reference) for model in self.models for reference in references]
        table = pd.DataFrame(rows, columns=["model", "reference"])
        table.insert(1, "paradigm", table["model"].map(self.cells.drop_duplicates("model")
                                                       .set_index("model")["paradigm"]))
        indexed = self.cells.set_index(["model", "measure"])
        names = {}  # (base, reference) -> measure name
        for measure in self.measures.values():
            names.setdefault((measure.base, measure.reference), measure.name)
        bases = list(dict.fromkeys(measure.base for measure in self.measures.values()))

        def name_of(base: str, reference: str) -> str | None:
            return names.get((base, reference), names.get((base, "")))

        columns, statuses = {}, []
        for base in bases:
            found = [name_of(base, reference) for _, reference in rows]
            for column, source in ((base, "value"), (f"{base}_ci_low", "ci_low"), (f"{base}_ci_high", "ci_high")):
                columns[column] = [np.nan if name is None else indexed[source].get((model, name), np.nan)
                                   for (model, _), name in zip(rows, found)]
            statuses.append([("n/a" if name is None else _status_text(indexed, model, name))
                             for (model, _), name in zip(rows, found)])
            columns[f"{base}_status"] = statuses[-1]
        if self.nulls is not None:
            nulls = self.nulls.set_index(["model", "measure"])
            for base in bases:
                found = [name_of(base, reference) for _, reference in rows]
                if not any((model, name) in nulls.index for (model, _), name in zip(rows, found)):
                    continue
                for column in ("null_p", "null_z", "null_q95"):
                    columns[f"{base}_{column}"] = [nulls[column].get((model, name), np.nan)
                                                   for (model, _), name in zip(rows, found)]
        by_row = list(zip(*statuses)) if statuses else [()] * len(rows)
        table["status"] = ["failed" if any(text.startswith("failed") for text in row) else
                           "missing" if "missing" in row else "ok" for row in by_row]
        return pd.concat([table, pd.DataFrame(columns, index=table.index)], axis=1)

    def latex(self, digits: int = 3) -> str:
        """A paper-ready table: a row per model, a column per measure, cells `value [lo, hi]` (— where not ok)."""
        rows = {}
        indexed = self.cells.set_index(["model", "measure"])
        for model in self.models:
            rows[model] = {self.measures[measure].label: cell_text(indexed, model, measure, digits)
                           for measure in self.measures}
        table = pd.DataFrame.from_dict(rows, orient="index")
        table.index.name = "model"
        caption = f"Scores with 95% CIs in brackets. {self.rule}".replace("%", "\\%")
        return table.to_latex(caption=caption, label="tab:scoreboard", escape=True)


def per_layer_board(per_item: Mapping[tuple[str, str], Mapping[str, np.ndarray]],
                    samples: Mapping[tuple[str, str], Mapping[str, np.ndarray]], measures: Mapping[str, Measure], *,
                    layer: str | None = None, n_splits: int = 10, seed: int = 0) -> Scoreboard:
    """A scoreboard of per-layer measures: per_item[(model, measure)][layer] (N,) item scores (higher = better),
    samples[(model, measure)][layer] (B,) stored bootstrap values of that layer's score (the same resamples for every
    model). Each model's layer is chosen on half of the items and scored on the other (`held_out_layer_from_items`,
    `n_splits` seeded halvings), or fixed in advance (`layer`); the cell is that score, its CI the chosen layer's
    stored bootstrap interval, and the chosen layer's samples feed paired tests and rank stability."""
    cells, kept, rules = [], {}, set()
    for (model, measure), by_layer in per_item.items():
        if layer is None:
            choice = held_out_layer_from_items(by_layer, n_splits=n_splits, seed=seed)
        else:
            choice = fixed_layer({name: float(np.mean(values)) for name, values in by_layer.items()}, layer)
        rules.add(choice.rule)
        resampled = samples.get((model, measure), {}).get(choice.layer)
        if resampled is not None:
            kept.setdefault(measure, {})[model] = np.asarray(resampled, float)
        cells.append({"model": model, "paradigm": paradigm_of(model), "measure": measure, "layer": choice.layer,
                      "value": choice.score, "ci_low": np.nan, "ci_high": np.nan, "status": "ok", "error": "",
                      "step": "", "analysis": measures[measure].analysis})
    table = pd.DataFrame(cells, columns=list(CELL_COLUMNS))
    for measure, by_model in kept.items():  # every CI of a measure in one percentile call
        rows = np.flatnonzero((table["measure"] == measure) & table["model"].isin(list(by_model)))
        bounds = np.nanpercentile(np.stack([by_model[model] for model in table["model"].iloc[rows]]), [2.5, 97.5],
                                  axis=1)
        table.loc[table.index[rows], "ci_low"], table.loc[table.index[rows], "ci_high"] = bounds[0], bounds[1]
    return Scoreboard(table, measures, " ".join(sorted(rules)), kept)


def paradigm_of(name: str) -> str:
    """The catalogue paradigm of an encoder spec; untrained and pixel encoders are controls; non-encoders
    (human embeddings, model RDMs) are references; any other encoder is `other`."""
    spec = name.split(" · ")[0]
    for entry in CATALOGUE:
        if entry.spec == spec:
            return entry.paradigm
    if spec.startswith(("untrained:", "pixels:")):
        return CONTROL
    if ":" not in spec or spec.startswith(("human", "rdm")):
        return REFERENCE
    return OTHER


def percentile_ci(samples: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval of (B,) bootstrap values (NaNs dropped; NaN when none is left)."""
    finite = np.asarray(samples, float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def paired_test(board: Scoreboard, measure: str, first: str, second: str) -> PairedDifference:
    """first − second on `measure` over the stored resamples (the same items drawn for both): difference, 95% CI,
    two-sided bootstrap p; KeyError when the stored result kept no resamples of the two."""
    found = board.samples.get(measure, {})
    if first not in found or second not in found:
        raise KeyError(f"{measure}: the stored result kept no bootstrap resamples of {first!r} and {second!r}, so "
                       "there is no paired test (rerun the step with a bootstrap)")
    return paired_difference(found[first], found[second], board.cell(first, measure)["value"],
                             board.cell(second, measure)["value"])


def stability(board: Scoreboard, measure: str) -> RankStability:
    """How often each model with stored resamples of `measure` ranks 1st / in the top 3, and its 95% rank interval
    (rank 1 = best: a lower-is-better measure is ranked on its negative)."""
    found = board.samples.get(measure, {})
    if len(found) < 2:
        raise KeyError(f"{measure}: fewer than two models have stored bootstrap resamples, so there is no ranking "
                       "to resample")
    names = [model for model in board.models if model in found]
    sign = 1.0 if board.measures[measure].higher_better else -1.0
    return rank_stability(sign * np.column_stack([np.asarray(found[name], float) for name in names]), names)


def agreement(board: Scoreboard) -> tuple[float, pd.DataFrame]:
    """(Kendall's W over the models every measure scored, Spearman ρ between measures): do the measures rank the
    models alike? Lower-is-better measures are negated first; W uses the measures with a value for every model (NaN
    with fewer than 2 models or such measures)."""
    values = oriented(board, ok_values(board))
    complete = values.loc[:, values.notna().all()]  # W ranks the models on the measures that scored every one
    w = kendalls_w(complete.to_numpy()) if complete.shape[0] >= 2 and complete.shape[1] >= 2 else float("nan")
    return w, measure_agreement(values.to_numpy(), list(values.columns))


def ok_values(board: Scoreboard) -> pd.DataFrame:
    """Models × measures of the cells that are ok (NaN elsewhere), in the board's model and measure order."""
    ok = board.cells[board.cells["status"] == "ok"]
    table = ok.pivot_table(index="model", columns="measure", values="value", aggfunc="first")
    return table.reindex(index=[model for model in board.models if model in table.index],
                         columns=[measure for measure in board.measures if measure in table.columns])


def oriented(board: Scoreboard, values: pd.DataFrame) -> pd.DataFrame:
    """`values` (models × measures) with every lower-is-better column negated, so higher is better throughout."""
    signs = [1.0 if board.measures[measure].higher_better else -1.0 for measure in values.columns]
    return values * np.asarray(signs)


def _status_text(indexed: pd.DataFrame, model: str, measure: str) -> str:
    if (model, measure) not in indexed.index:
        return "n/a"
    row = indexed.loc[(model, measure)]
    row = row.iloc[0] if isinstance(row, pd.DataFrame) else row
    return f"failed: {row['error']}" if row["status"] == "failed" else row["status"]


def cell_text(indexed: pd.DataFrame, model: str, measure: str, digits: int = 3) -> str:
    """A cell as a table shows it: `value [lo, hi]` (the CI where stored), else its status; `indexed`: the cells
    indexed by (model, measure)."""
    if (model, measure) not in indexed.index:
        return "n/a"
    row = indexed.loc[(model, measure)]
    row = row.iloc[0] if isinstance(row, pd.DataFrame) else row
    if row["status"] != "ok":
        return row["status"]
    text = f"{row['value']:.{digits}f}"
    if np.isfinite(row["ci_low"]) and np.isfinite(row["ci_high"]):
        text += f" [{row['ci_low']:.{digits}f}, {row['ci_high']:.{digits}f}]"
    return text
