"""Study files: a whole comparison declared once in TOML, validated before anything runs.

    name = "demo"
    datasets = ["demo"]                      # or dataset = "oasis:/data/oasis"
    encoders = ["bundled:efficientnet_lite0", "pixels:32", "paradigm:CLIP"]
    layers = ["final"]                       # or "all"
    pooling = "auto"

    [[steps]]
    analysis = "affect"                      # affect | probes | similarity | alignment | manifolds | inductive_bias
    schemes = ["loto", "loco"]

Every key a step takes, its default and what it allows is its analysis's `Settings` (the registry,
`core.studies.analyses`); `load_study` refuses an
unknown analysis, key, encoder, layer or value, or a dataset that does not load, with the file,
line and key, and what is allowed (`StudyError`). `paradigm:<name>` stands for every catalogue
entry of a training paradigm. Sources of similarity and alignment steps are named as on the
pages: `<spec> · <layer>` for an encoder layer, `human · <name>` for a reference embedding.
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Callable

from core.analyses.registry import SettingError
from core.data.datasets import DatasetError, ImageSet, load_dataset
from core.data.tables import MissingPathError
from core.encoders.catalogue import PARADIGMS, entries_of
from core.encoders.registry import UNUSABLE, EncoderInfo, describe
from core.encoders.specs import POOLINGS, pooling_name
from core.studies import analyses
from core.studies.study import Step, Study

__all__ = ["COMMON", "Step", "Study", "StudyError", "load_study"]

COMMON = ("encoders", "layers")  # keys every step may take: its own encoders and layers
TOP_LEVEL = ("name", "description", "dataset", "datasets", "encoders", "layers", "pooling", "device", "batch_size",
             "steps", "scoreboard")
SCOREBOARD_KEYS = ("layer",)  # the [scoreboard] table: the layer per-layer measures are reported at
SOURCE_KEYS = ("source", "targets", "sources", "references")  # settings that name representations of the dataset


class StudyError(ValueError):
    """A study file that cannot run: names the file, line and key, and what is allowed. When the problem is a dataset
    path that does not exist here, `missing_path` is where it was looked for and `key` on `line` names it."""

    def __init__(self, message: str, *, key: str = "", line: int | None = None, missing_path: Path | None = None):
        super().__init__(message)
        self.key, self.line, self.missing_path = key, line, missing_path


def load_study(path: str | Path, cache: str | Path) -> Study:
    """Read and validate a study file; every problem is a StudyError naming the file, line and key."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise StudyError(f"{path}: cannot read the study file ({error.strerror}).") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise StudyError(f"{path}: not valid TOML: {error}.") from None
    where = _Locator(path, text)
    for key in data:
        if key not in TOP_LEVEL:
            raise StudyError(where.top(key, f"unknown key {key!r}; a study takes {', '.join(TOP_LEVEL)}"))
    datasets = data.get("datasets", [data["dataset"]] if "dataset" in data else None)
    if not datasets or not isinstance(datasets, list) or not all(isinstance(spec, str) for spec in datasets):
        raise StudyError(where.top("datasets", 'name the data: datasets = ["demo"] or dataset = "oasis:/data/oasis"'))
    image_sets = {}
    for spec in datasets:
        try:
            image_sets[spec] = load_dataset(spec, cache)
        except DatasetError as error:
            key = "datasets" if "datasets" in data else "dataset"
            raise StudyError(where.top(key, f"{spec!r}: {error}"), key=key, line=where.top_line(key),
                             missing_path=error.path if isinstance(error, MissingPathError) else None) from None
    pooling = data.get("pooling", "auto")
    try:
        if not isinstance(pooling, str):
            raise ValueError(pooling)
        pooling = pooling_name(pooling)
    except ValueError:
        raise StudyError(where.top("pooling", f"{pooling!r} is not a pooling; use one of {', '.join(POOLINGS)} or "
                                              "flat:<dim>")) from None
    device, batch_size = data.get("device", "auto"), data.get("batch_size", 32)
    if not isinstance(device, str) or not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", device):
        raise StudyError(where.top("device", f"{device!r} is not a device; use auto, cpu, cuda, cuda:<n> or mps"))
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 1024:
        raise StudyError(where.top("batch_size", f"{batch_size!r} must be an integer from 1 to 1024"))
    scoreboard = data.get("scoreboard", {})
    if not isinstance(scoreboard, dict) or set(scoreboard) - set(SCOREBOARD_KEYS) or not isinstance(
            scoreboard.get("layer", "final"), str):
        raise StudyError(where.top("scoreboard", '[scoreboard] takes layer = "<layer name>" (e.g. "final": the '
                                                 "layer per-layer measures are reported at)"))
    infos: dict[str, EncoderInfo] = {}
    encoders = _encoders(data.get("encoders", []), where, None, infos)
    layers = data.get("layers", ["final"])
    steps_data = data.get("steps", [])
    if not isinstance(steps_data, list) or not steps_data:
        raise StudyError(where.top("steps", "a study needs at least one [[steps]] table with an `analysis` key"))
    steps = []
    for index, raw in enumerate(steps_data):
        if not isinstance(raw, dict):
            raise StudyError(where.top("steps", "each step is a [[steps]] table with an `analysis` key"))
        analysis = raw.get("analysis")
        if not analyses.known(analysis):
            raise StudyError(where.step(index, "analysis", f"unknown analysis {analysis!r}; choose one of "
                                                           f"{', '.join(entry.name for entry in analyses.analyses())}"))
        entry = analyses.get(analysis)
        given = {key: value for key, value in raw.items() if key in COMMON}
        if "encoders" in given:
            given["encoders"] = _names(given["encoders"], where, index)
        try:
            settings = entry.settings.parse({key: value for key, value in raw.items()
                                             if key != "analysis" and key not in COMMON})
        except SettingError as error:
            message = f"{analysis} {error}" if str(error).startswith("takes no key") else str(error)
            if str(error).startswith("takes no key"):
                message += f", {', '.join(COMMON)}"
            raise StudyError(where.step(index, error.key, message)) from None
        if not entry.needs_encoders:
            named = next((key for key in COMMON if key in raw), None)
            if named:
                raise StudyError(where.step(index, named, f"{analysis} names no encoders or layers: it trains its own"))
            step_encoders, step_layers = (), {}
        else:
            step_encoders = _encoders(raw["encoders"], where, index, infos) if "encoders" in raw else encoders
            if not step_encoders:
                raise StudyError(where.step(index, "encoders", "no encoders: list them at the top (encoders = [...]) "
                                                               "or in the step"))
            located = ((lambda message, index=index: where.step(index, "layers", message)) if "layers" in raw else
                       (lambda message: where.top("layers", message)))
            step_layers = _layers(raw.get("layers", layers), step_encoders, infos, located,
                                  "all" if entry.all_layers else None)
        for dataset in datasets:
            steps.append(Step(index, analysis, dataset, settings, step_encoders, step_layers, given))
    study = Study(path, str(data.get("name", path.stem)), str(data.get("description", "")), tuple(datasets),
                  encoders, pooling, device, batch_size, tuple(steps),
                  image_sets, infos, scoreboard)
    for step in study.steps:
        _check_sources(step, study, where)
    return study


def _encoders(values, where: _Locator, step: int | None, infos: dict[str, EncoderInfo]) -> tuple[str, ...]:
    """Specs, with `paradigm:<name>` expanded to its catalogue entries; each described once (a bad one refused)."""
    where_key = (lambda message: where.top("encoders", message)) if step is None else (
        lambda message: where.step(step, "encoders", message))
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise StudyError(where_key('must be a list of encoder specs, e.g. ["bundled:efficientnet_lite0", "pixels:32"]'))
    specs = []
    for value in values:
        if value.startswith("paradigm:"):
            paradigm = value.partition(":")[2]
            if paradigm not in PARADIGMS:
                raise StudyError(where_key(f"unknown paradigm {paradigm!r}; choose one of {', '.join(PARADIGMS)}"))
            specs += [entry.spec for entry in entries_of((paradigm,))]
        else:
            specs.append(value)
    for spec in specs:
        if spec not in infos:
            try:
                infos[spec] = describe(spec)
            except UNUSABLE as error:
                raise StudyError(where_key(f"encoder {spec!r}: {error}")) from None
    return tuple(dict.fromkeys(infos[spec].spec for spec in specs))


def _layers(value, encoders, infos, located: Callable[[str], str], forced: str | None) -> dict[str, tuple[str, ...]]:
    """spec -> its layers in depth order ("all", or names every encoder must have; probes always take all)."""
    value = forced or value
    if value != "all" and (not isinstance(value, list) or not all(isinstance(item, str) for item in value)):
        raise StudyError(located('must be "all" or a list of layer names, e.g. ["final"]'))
    layers = {}
    for spec in encoders:
        info = infos[spec]
        if value != "all":
            unknown = [layer for layer in value if layer not in info.layers]
            if unknown:
                raise StudyError(located(f"{spec} has no layer {unknown[0]!r}; it has {', '.join(info.layers)}"))
        layers[spec] = info.resolve_layers(value)
    return layers


def _names(value, where: _Locator, index: int) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise StudyError(where.step(index, "encoders", 'must be a list of names, e.g. ["pixels:32"]'))
    return tuple(value)


def _check_sources(step: Step, study: Study, where: _Locator) -> None:
    """Named sources must exist, the dataset must hold what the analysis needs (its entry's `check`), and the
    cross-validation must fit the dataset."""
    image_set = study.image_sets[step.dataset]
    known = [layer.label for layer in step.model_layers] + [f"human · {ref.name}" for ref in image_set.references]
    known += [f"rdm · {group.name}" for group in image_set.rdm_references]
    for key in SOURCE_KEYS:
        value = step.settings.get(key)
        for name in ([value] if isinstance(value, str) else value or ()):
            if name not in known:
                raise StudyError(where.step(step.index, key, f"no source {name!r} on {step.dataset}; the step has "
                                                             f"{', '.join(known)}"))
    entry = analyses.get(step.analysis)
    if not image_set.has_images and entry.needs_images:
        raise StudyError(where.step(step.index, "analysis", f"{step.dataset} holds representations only; "
                                                            f"{step.analysis} needs images"))
    problem = entry.check(step, image_set) or _folds_problem(step, image_set)
    if problem:
        raise StudyError(where.step(step.index, *problem))


def _folds_problem(step: Step, image_set: ImageSet) -> tuple[str, str] | None:
    """(key, what is wrong) when a cross-validation scheme of the step cannot split the dataset, else None."""
    settings, metadata = step.settings, image_set.metadata
    n_categories, n_groups = metadata["category"].nunique(), metadata["group"].nunique()
    schemes = [settings[key] for key in ("scheme", "category_scheme") if key in settings]
    schemes += list(settings.get("schemes", ()))
    if "loco" in schemes and n_categories < 2:
        return "schemes" if "schemes" in settings else "scheme", f"{step.dataset} has one category: no LOCO"
    for scheme in schemes:
        limit = {"kfold": len(metadata), "gkfold": n_groups}.get(scheme)
        if limit is not None and settings["n_splits"] > limit:
            return "n_splits", f"{settings['n_splits']} folds of {scheme} need at least as many " \
                               f"{'images' if scheme == 'kfold' else 'theme groups'}; {step.dataset} has {limit}"
    return None


class _Locator:
    """Turns a key of the parsed file back into `file:line: key: message`."""

    def __init__(self, path: Path, text: str):
        self.path, self.lines = path, text.splitlines()
        headers = [number for number, line in enumerate(self.lines) if re.match(r"\s*\[\[\s*steps\s*\]\]", line)]
        self.step_starts = headers
        self.first_table = next((number for number, line in enumerate(self.lines) if re.match(r"\s*\[", line)),
                                len(self.lines))

    def top(self, key: str, message: str) -> str:
        return self._format(self.top_line(key), key, message)

    def top_line(self, key: str) -> int:
        """The line of a top-level key (1 when the file does not spell it out)."""
        return self._find(key, 0, self.first_table) or 1

    def step(self, index: int, key: str, message: str) -> str:
        start = self.step_starts[index] if index < len(self.step_starts) else 0
        end = self.step_starts[index + 1] if index + 1 < len(self.step_starts) else len(self.lines)
        return self._format(self._find(key, start, end) or start + 1, f"steps[{index + 1}].{key}", message)

    def _find(self, key: str, start: int, end: int) -> int | None:
        pattern = re.compile(rf"\s*{re.escape(key)}\s*=")
        return next((number + 1 for number in range(start, end) if pattern.match(self.lines[number])), None)

    def _format(self, line: int | None, key: str, message: str) -> str:
        return f"{self.path}:{line or 1}: {key}: {message.rstrip('.')}."  # one full stop, not the message's and ours
