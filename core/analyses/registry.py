"""One registry of analyses, in the manner of timm's model registry: every analysis is declared once.

An `Analysis` entry holds everything the rest of RepScope needs to know about one analysis: its name (the
`analysis = "…"` of a study step and the prefix of its page's widget keys), its page, a frozen `Settings`
dataclass (every setting's default, bounds or choices and help text), what a step extracts (`units`), how it runs
(`run`), what it checks of a dataset (`check`) and which figures `study export` draws from a stored result
(`draw`). The navigation (`app.py`), study validation (`core.studies.spec`), the study runner, `study export` and
the Studies page's openers read the entries; nothing else keeps a table keyed by analysis names.

The entries themselves are declared in `core.studies.analyses` (one module per analysis, registered on import);
this module holds only the types and the registry, so it sits below everything that declares or reads one.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable, Iterator

WIDGET_SEPARATOR = "."  # a page's widget for setting `f` of analysis `a` has the key "a.f"


@dataclass(frozen=True)
class Setting:
    """How one setting is offered and checked: help text, bounds (`low`..`high`) or `choices`, or its own check.

    The check follows the default's type: a bool is true/false, an int an integer in [low, high], a float a number
    in [low, high], a value with `choices` one of them (`many`: a non-empty list of them). `check` replaces all of
    that for settings of their own shape (an ε range, a list of corruptions); it returns the value or raises
    ValueError saying what is allowed.
    """

    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    many: bool = False
    check: Callable[[Any], Any] | None = None

    def validate(self, value: Any, default: Any) -> Any:
        """`value` as the setting keeps it (lists as tuples, ints as floats where a number is asked)."""
        if self.check is not None:
            return self.check(value)
        if self.choices and self.many:
            if not isinstance(value, (list, tuple)) or not value or any(item not in self.choices for item in value):
                raise ValueError(f"must be a non-empty list of {', '.join(map(str, self.choices))}")
            return tuple(value)
        if self.choices:
            if value not in self.choices:
                raise ValueError(f"must be one of {', '.join(map(str, self.choices))}")
            return value
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError("must be true or false")
            return value
        if isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int) or not self.low <= value <= self.high:
                raise ValueError(f"must be an integer from {self.low:g} to {self.high:g}")
            return value
        if isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not self.low <= value <= self.high:
                raise ValueError(f"must be a number from {self.low:g} to {self.high:g}")
            return float(value)
        raise TypeError(f"a setting with default {default!r} needs choices or a check")


def setting(default: Any, help: str, *, low: float | None = None, high: float | None = None, choices=(),
            many: bool = False, check: Callable[[Any], Any] | None = None) -> Any:
    """A field of a `Settings` dataclass: its default and how it is offered and checked (`Setting`)."""
    return field(default=default, metadata={"setting": Setting(help, low, high, tuple(choices), many, check)})


@dataclass(frozen=True)
class Settings(Mapping):
    """Base of every analysis's settings: a frozen dataclass whose fields are declared with `setting(...)`.

    It reads like a mapping too (`settings["k"]`, `dict(settings)`), which is how a step's settings are stored,
    hashed into its key and written back to a study file.
    """

    @classmethod
    def describe(cls, name: str) -> Setting:
        """The `Setting` of field `name` (help text, bounds, choices): what a page's widget offers."""
        return _declared(cls)[name][1]

    @classmethod
    def default(cls, name: str) -> Any:
        return _declared(cls)[name][0]

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(_declared(cls))

    @classmethod
    def parse(cls, values: Mapping[str, Any]) -> "Settings":
        """Settings from a study step's keys (defaults for the rest); SettingError names the key and what is allowed."""
        declared = _declared(cls)
        checked = {}
        for name, value in values.items():
            if name not in declared:
                raise SettingError(name, f"takes no key {name!r}; it takes {', '.join(declared)}")
            default, described = declared[name]
            try:
                checked[name] = described.validate(value, default)
            except ValueError as error:
                raise SettingError(name, f"{value!r} {error}") from None
        return cls(**checked)

    @classmethod
    def lenient(cls, values: Mapping[str, Any]) -> "Settings":
        """Settings from stored values, keys it does not declare (or can no longer check) left at their default."""
        declared, kept = _declared(cls), {}
        for name, value in values.items():
            if name in declared and value is not None:
                try:
                    kept[name] = declared[name][1].validate(value, declared[name][0])
                except (ValueError, TypeError):
                    continue
        return cls(**kept)

    def __getitem__(self, name: str) -> Any:
        if name not in _declared(type(self)):
            raise KeyError(name)
        return getattr(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(_declared(type(self)))

    def __len__(self) -> int:
        return len(_declared(type(self)))


class CannotOpen(ValueError):
    """A stored result that cannot be opened on its page (says why)."""


class SettingError(ValueError):
    """A setting a study step cannot take: `key` names it, the message says what is allowed."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def _declared(cls: type) -> dict[str, tuple[Any, Setting]]:
    """name -> (default, Setting) of every field of a Settings dataclass, in declaration order."""
    found = {}
    for item in fields(cls):
        described = item.metadata.get("setting")
        if described is None:
            raise TypeError(f"{cls.__name__}.{item.name} is not declared with setting(...)")
        found[item.name] = (item.default if item.default is not MISSING else item.default_factory(), described)
    return found


def no_problem(step, image_set) -> tuple[str, str] | None:
    """The `check` of an analysis that any dataset with images can run."""
    return None


def no_rows(step, stored) -> list[tuple[str, str]]:
    """The `methods_rows` of an analysis whose settings say all there is to say."""
    return []


@dataclass(frozen=True)
class Board:
    """How the Scoreboard reads a stored step of one analysis (core.studies.scoreboard): `columns(step, context)` ->
    the Measures a step fills, `read(step, tables, meta, context, rule)` -> (cells, measures, bootstrap samples);
    where its cells have permutation nulls (core.studies.scoreboard_nulls), `nulls(step, stored, context, rule,
    n_perm, seed, progress)` -> a record per cell (model, measure, observed, null_p, null_z, null_q95, beats_null,
    n_perm, seed), computed from the cached features."""

    columns: Callable
    read: Callable
    nulls: Callable | None = None


@dataclass(frozen=True)
class Analysis:
    """One analysis, declared once: what a study step, its page, `study export` and the openers read.

    `units(step, context)` lists the feature arrays a step needs (extracted first, all layers of an encoder in one
    pass); `run(step, context, engine, report)` computes the step from them and returns its `StepOutput` (tables to
    store, a summary); `draw(step, stored, tables, context)` gives `study export`'s figures of a stored step
    (figures, extra tables, what is left out and why); `check(step, image_set)` returns (key, what is wrong) when a
    dataset cannot give what the step asks; `page_state(settings, meta)` gives the session-state keys that open a
    stored step on the page (by default each setting's widget `"<name>.<setting>"`), with notes on what differs;
    `methods_rows(step, stored)` adds or replaces rows of the step's settings table in methods.md. Results its page
    stores itself (kinds in `result_kinds`) reopen through `open_stored(kind, meta, store)`, which returns (the
    step-like meta of what it read: dataset, encoders, layers, pooling; the page's widget values; notes) or raises
    CannotOpen.
    """

    name: str
    title: str
    page: str  # the page script, e.g. "views/affect.py"
    icon: str
    settings: type[Settings]
    units: Callable
    run: Callable
    draw: Callable
    check: Callable = no_problem
    page_state: Callable | None = None
    methods_rows: Callable = no_rows
    needs_images: bool = True  # False: the step also runs on a dataset of representations only (embeddings:)
    needs_encoders: bool = True  # False: the step names no encoders or layers (the lab trains its own)
    all_layers: bool = False  # True: the step reads every layer of its encoders, whatever the study's layers
    order: int = 100  # its place in the navigation among the pages
    result_kinds: tuple[str, ...] = ()
    open_stored: Callable | None = None
    board: Board | None = None  # its columns on the Scoreboard; None: a stored step shows as n/a there

    def widget_key(self, name: str) -> str:
        """The session-state key of the page widget that holds setting `name`."""
        return f"{self.name}{WIDGET_SEPARATOR}{name}"

    def opening_state(self, settings: Settings, meta: Mapping) -> tuple[dict, list[str]]:
        """The page's widget values that show a stored step with `settings`, and notes on what differs."""
        if self.page_state is not None:
            return self.page_state(settings, meta)
        return {self.widget_key(name): value for name, value in settings.items() if value is not None}, []


_REGISTRY: dict[str, Analysis] = {}


def register(analysis: Analysis) -> Analysis:
    """Add `analysis` to the registry (a second entry of the same name replaces the first)."""
    _REGISTRY[analysis.name] = analysis
    return analysis


def unregister(name: str) -> None:
    """Remove an entry (a test's own analysis, once the test is done)."""
    _REGISTRY.pop(name, None)


def analyses() -> tuple[Analysis, ...]:
    """Every registered analysis, in the order they were declared."""
    return tuple(_REGISTRY.values())


def get(name: str) -> Analysis:
    """The entry named `name`; KeyError naming the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown analysis {name!r}; choose one of {', '.join(_REGISTRY)}") from None


def known(name: Any) -> bool:
    return isinstance(name, str) and name in _REGISTRY


def owner_of(kind: str) -> Analysis | None:
    """The analysis whose page stores results of `kind` (None: no page opens them)."""
    return next((entry for entry in _REGISTRY.values() if kind in entry.result_kinds), None)
