"""Study files: a whole comparison declared once in TOML, validated before anything runs.

    name = "demo"
    datasets = ["demo"]                      # or dataset = "oasis:/data/oasis"
    encoders = ["bundled:efficientnet_lite0", "pixels:32", "paradigm:CLIP"]
    layers = ["final"]                       # or "all"
    pooling = "auto"

    [[steps]]
    analysis = "affect"                      # affect | probes | similarity | alignment | manifolds | inductive_bias
    schemes = ["loto", "loco"]

Every key a step takes, its default and what it allows is in `ANALYSES`; `load_study` refuses an
unknown analysis, key, encoder, layer or value, or a dataset that does not load, with the file,
line and key, and what is allowed (`StudyError`). `paradigm:<name>` stands for every catalogue
entry of a training paradigm. Sources of similarity and alignment steps are named as on the
pages: `<spec> · <layer>` for an encoder layer, `human · <name>` for a reference embedding.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from core.analyses.cv import CATEGORY_SCHEMES, SCHEMES
from core.analyses.gwot import INITS, SEARCHES
from core.analyses.manifolds import MAP_METHODS
from core.analyses.rdm import RDM_METRICS
from core.analyses.similarity import MEASURES
from core.data.corruptions import parse_corruption
from core.data.datasets import DatasetError, ImageSet, load_dataset
from core.encoders.catalogue import PARADIGMS, entries_of
from core.encoders.registry import UNUSABLE, EncoderInfo, describe
from core.encoders.specs import POOLINGS, ModelLayer, pooling_name

MATRIX_KINDS = ("pairs", "layers", "reference")
MIN_EPSILON = 1e-6  # the Alignment page's smallest ε: a step opens on the page with the same settings
MIN_RESAMPLES = 20  # the Similarity page's fewest bootstrap resamples (0: no bootstrap)


class StudyError(ValueError):
    """A study file that cannot run: names the file, line and key, and what is allowed."""


@dataclass(frozen=True)
class Option:
    """One key of a step: its default and a check that returns the value or raises ValueError with what is allowed."""

    default: Any
    check: Callable[[Any], Any]


def _one_of(choices) -> Callable[[Any], Any]:
    def check(value):
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(map(str, choices))}")
        return value
    return check


def _list_of(choices) -> Callable[[Any], Any]:
    def check(value):
        if not isinstance(value, list) or not value or any(item not in choices for item in value):
            raise ValueError(f"must be a non-empty list of {', '.join(map(str, choices))}")
        return tuple(value)
    return check


def _integer(low: int, high: int) -> Callable[[Any], Any]:
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"must be an integer from {low} to {high}")
        return value
    return check


def _number(low: float, high: float) -> Callable[[Any], Any]:
    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise ValueError(f"must be a number from {low:g} to {high:g}")
        return float(value)
    return check


def _boolean(value):
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _names(value):
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError('must be a list of names, e.g. ["human · demo", "pixels:32 · final"]')
    return tuple(value)


def _name(value):
    if not isinstance(value, str) or not value:
        raise ValueError('must be a name, e.g. "human · demo" or "pixels:32 · final"')
    return value


def _eps_range(value):
    if (not isinstance(value, list) or len(value) != 2 or
            not all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in value)):
        raise ValueError("must be [smallest, largest], e.g. [1e-5, 1e-1]")
    low, high = map(float, value)
    if not MIN_EPSILON <= low <= high:
        raise ValueError(f"must be increasing, from {MIN_EPSILON:g} up; got [{low:g}, {high:g}]"
                         + (" (swap them?)" if high < low else ""))
    return low, high


def _resamples(value):
    if isinstance(value, bool) or not isinstance(value, int) or not (value == 0 or MIN_RESAMPLES <= value <= 10000):
        raise ValueError(f"must be 0 (no bootstrap) or a number of resamples from {MIN_RESAMPLES} to 10000")
    return value


def _corruptions(value):
    if not isinstance(value, list) or not value:
        raise ValueError('must be a non-empty list such as ["glo_2", "loc_8", "gamma_0.5"]')
    for name in value:
        parse_corruption(str(name))
    return tuple(value)


COMMON = {"encoders": Option(None, _names), "layers": Option(None, lambda value: value)}
ANALYSES: dict[str, dict[str, Option]] = {
    "affect": {"schemes": Option(("loto", "loco"), _list_of(SCHEMES)), "n_splits": Option(5, _integer(2, 20)),
               "geometry_scheme": Option(None, _one_of(SCHEMES)), "zscore": Option(False, _boolean),
               "bins": Option(20, _integer(8, 40))},
    "probes": {"scheme": Option("loto", _one_of(SCHEMES)), "category_scheme": Option("gkfold", _one_of(CATEGORY_SCHEMES)),
               "n_splits": Option(5, _integer(2, 20))},
    "similarity": {"measures": Option(("cka_linear", "rsa_spearman", "mutual_knn"), _list_of(MEASURES)),
                   "matrix": Option("pairs", _one_of(MATRIX_KINDS)), "sources": Option(None, _names),
                   "rows_encoder": Option(None, _name), "columns_encoder": Option(None, _name),
                   "references": Option(None, _names), "rdm_metric": Option("cosine", _one_of(RDM_METRICS)),
                   "k": Option(10, _integer(1, 1000)), "rbf_sigma": Option(0.8, _number(0.05, 10.0)),
                   "bootstrap": Option(0, _resamples)},
    "alignment": {"source": Option(None, _name), "targets": Option(None, _names),
                  "metric": Option("cosine", _one_of(RDM_METRICS)), "normalise": Option(False, _boolean),
                  "eps_range": Option(None, _eps_range), "n_eps": Option(10, _integer(1, 50)),
                  "n_inits": Option(1, _integer(1, 20)), "init": Option("random", _one_of(INITS)),
                  "search": Option("grid", _one_of(SEARCHES)), "anneal": Option(True, _boolean),
                  "backend": Option("numpy", _one_of(("numpy", "torch"))),
                  "max_iter": Option(1000, _integer(10, 5000))},
    "manifolds": {"m": Option(8, _integer(2, 64)), "images_per_class": Option(12, _integer(2, 10_000)),
                  "radius_scale": Option(8.5, _number(0.1, 50.0)), "map": Option("t-SNE", _one_of(MAP_METHODS)),
                  "map_parameter": Option(30, _integer(2, 100))},
    "inductive_bias": {"corruptions": Option(("glo_2", "glo_8", "loc_2", "loc_8"), _corruptions),
                       "images_per_class": Option(25, _integer(2, 10_000)),
                       "scheme": Option("gkfold", _one_of(CATEGORY_SCHEMES)), "n_splits": Option(5, _integer(2, 20)),
                       "k": Option(10, _integer(1, 200)), "train_on": Option("corrupted",
                                                                               _one_of(("corrupted", "clean")))},
}
TOP_LEVEL = ("name", "description", "dataset", "datasets", "encoders", "layers", "pooling", "device", "batch_size",
             "steps")


@dataclass(frozen=True)
class Step:
    """One analysis of a study on one dataset: its settings (every key, defaults filled) and encoder layers."""

    index: int  # position in the file's [[steps]], from 0
    analysis: str
    dataset: str  # dataset spec
    settings: Mapping[str, Any]
    encoders: tuple[str, ...]
    layers: Mapping[str, tuple[str, ...]]  # spec -> layer names, in depth order

    @property
    def model_layers(self) -> list[ModelLayer]:
        return [ModelLayer(spec, layer) for spec in self.encoders for layer in self.layers[spec]]

    @property
    def label(self) -> str:
        return f"{self.index + 1}. {self.analysis} · {self.dataset}"


@dataclass(frozen=True)
class Study:
    """A validated study file: datasets, encoders (specs resolved), pooling and its steps (one per dataset)."""

    path: Path
    name: str
    description: str
    datasets: tuple[str, ...]
    encoders: tuple[str, ...]
    pooling: str
    device: str
    batch_size: int
    steps: tuple[Step, ...]
    image_sets: Mapping[str, ImageSet] = field(compare=False, repr=False, default_factory=dict)
    infos: Mapping[str, EncoderInfo] = field(compare=False, repr=False, default_factory=dict)


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
            raise StudyError(where.top("datasets" if "datasets" in data else "dataset", f"{spec!r}: {error}")) from None
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
        if analysis not in ANALYSES:
            raise StudyError(where.step(index, "analysis", f"unknown analysis {analysis!r}; choose one of "
                                                           f"{', '.join(ANALYSES)}"))
        options = {**COMMON, **ANALYSES[analysis]}
        settings = {}
        for key, value in raw.items():
            if key == "analysis":
                continue
            if key not in options:
                raise StudyError(where.step(index, key, f"{analysis} takes no key {key!r}; it takes "
                                                        f"{', '.join(options)}"))
            try:
                settings[key] = options[key].check(value)
            except ValueError as error:
                raise StudyError(where.step(index, key, f"{value!r} {error}")) from None
        step_encoders = _encoders(raw["encoders"], where, index, infos) if "encoders" in raw else encoders
        if not step_encoders:
            raise StudyError(where.step(index, "encoders", "no encoders: list them at the top (encoders = [...]) or "
                                                           "in the step"))
        located = ((lambda message, index=index: where.step(index, "layers", message)) if "layers" in raw else
                   (lambda message: where.top("layers", message)))
        step_layers = _layers(raw.get("layers", layers), step_encoders, infos, located,
                              "all" if analysis == "probes" else None)
        for key, option in ANALYSES[analysis].items():
            settings.setdefault(key, option.default)
        for dataset in datasets:
            steps.append(Step(index, analysis, dataset, settings, step_encoders, step_layers))
    study = Study(path, str(data.get("name", path.stem)), str(data.get("description", "")), tuple(datasets),
                  encoders, pooling, device, batch_size, tuple(steps),
                  image_sets, infos)
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


def _check_sources(step: Step, study: Study, where: _Locator) -> None:
    """Named sources must exist: encoder layers of the step, or the dataset's reference embeddings."""
    image_set = study.image_sets[step.dataset]
    known = [layer.label for layer in step.model_layers] + [f"human · {ref.name}" for ref in image_set.references]
    settings = step.settings
    named = {"source": [settings.get("source")], "targets": settings.get("targets"),
             "sources": settings.get("sources"), "references": settings.get("references")}
    for key, names in named.items():
        for name in names or ():
            if name is not None and name not in known:
                raise StudyError(where.step(step.index, key, f"no source {name!r} on {step.dataset}; the step has "
                                                             f"{', '.join(known)}"))
    for key in ("rows_encoder", "columns_encoder"):
        if settings.get(key) and settings[key] not in step.encoders:
            raise StudyError(where.step(step.index, key, f"{settings[key]!r} is not one of the step's encoders "
                                                         f"({', '.join(step.encoders)})"))
    if step.analysis == "alignment" and (not settings.get("source") or not settings.get("targets")):
        raise StudyError(where.step(step.index, "source", "an alignment step names its source and its targets"))
    if not image_set.has_images and step.analysis not in ("similarity", "alignment"):
        raise StudyError(where.step(step.index, "analysis", f"{step.dataset} holds representations only; "
                                                            f"{step.analysis} needs images"))
    problem = _data_problem(step, image_set)
    if problem:
        raise StudyError(where.step(step.index, *problem))


def _data_problem(step: Step, image_set: ImageSet) -> tuple[str, str] | None:
    """(key, what is wrong) when the dataset cannot give what the step's settings ask, else None."""
    settings, metadata = step.settings, image_set.metadata
    if step.analysis == "affect" and not image_set.has_affect:
        return "analysis", f"{step.dataset} has no valence/arousal ratings, which affect probes predict"
    if settings.get("geometry_scheme") and settings["geometry_scheme"] not in settings["schemes"]:
        return "geometry_scheme", f"{settings['geometry_scheme']!r} is not one of the step's schemes"
    if step.analysis == "similarity" and settings["matrix"] == "reference" and not (
            settings.get("references") or image_set.references):
        return "matrix", f"{step.dataset} has no reference embedding to compare every layer with"
    n_categories, n_groups = metadata["category"].nunique(), metadata["group"].nunique()
    schemes = [settings[key] for key in ("scheme", "category_scheme") if key in settings]
    schemes += list(settings.get("schemes", ()))
    if "loco" in schemes and n_categories < 2:
        return "schemes" if "schemes" in settings else "scheme", f"{step.dataset} has one category: no LOCO"
    if step.analysis == "inductive_bias" and n_categories < 2:
        return "analysis", f"{step.dataset} has one category: no category probe to degrade"
    if step.analysis == "probes" and n_categories < 2 and not image_set.has_affect:
        return "analysis", f"{step.dataset} has one category and no ratings: nothing to probe"
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
        return self._format(self._find(key, 0, self.first_table), key, message)

    def step(self, index: int, key: str, message: str) -> str:
        start = self.step_starts[index] if index < len(self.step_starts) else 0
        end = self.step_starts[index + 1] if index + 1 < len(self.step_starts) else len(self.lines)
        return self._format(self._find(key, start, end) or start + 1, f"steps[{index + 1}].{key}", message)

    def _find(self, key: str, start: int, end: int) -> int | None:
        pattern = re.compile(rf"\s*{re.escape(key)}\s*=")
        return next((number + 1 for number in range(start, end) if pattern.match(self.lines[number])), None)

    def _format(self, line: int | None, key: str, message: str) -> str:
        return f"{self.path}:{line or 1}: {key}: {message}."
