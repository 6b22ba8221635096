"""Writing study files: TOML by hand (only the keys an analysis's `Settings` declares), validated whole before anything is written.

`add_step(path, analysis, settings, header=…, cache=…)` appends one `[[steps]]` table to a study file (a new
file starts with `header`, see `study_header_toml`), runs `load_study` on the whole new text in a temporary
file, and only when it validates replaces the file (`atomic_write`): a step that does not validate raises
`StudyError` (naming the target file, line and key) and leaves the file as it was.
"""
from __future__ import annotations

import math
import tempfile
import tomllib
from pathlib import Path
from typing import Any, Mapping, Sequence

from core.paths import atomic_write
from core.studies import analyses
from core.studies.spec import Study, StudyError, load_study

HEADER_COMMENT = ("# Written by RepScope's \"Add to study\"; run it headless (the app never runs a study):",
                  "#   python -m core study run <this file> [--engine ray]")


def toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    named = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    return '"' + "".join(named.get(char) or (f"\\u{ord(char):04X}" if ord(char) < 0x20 or ord(char) == 0x7F
                                             else char) for char in text) + '"'


def toml_value(value: Any) -> str:
    """A value in TOML syntax: booleans lowercase, floats by repr (round-trip exact), strings quoted, lists."""
    if hasattr(value, "item") and not isinstance(value, (list, tuple, str)):
        value = value.item()  # numpy scalars
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) in a study file")


def step_settings(analysis: str, settings: Mapping[str, Any]) -> dict:
    """The settings a step of `analysis` takes (its Settings' fields), in their order, None left out."""
    known = analyses.get(analysis).settings.names()
    return {key: settings[key] for key in known if settings.get(key) is not None}


def step_toml(analysis: str, settings: Mapping[str, Any], extra: Mapping[str, Any] | None = None, *,
              comment: str = "") -> str:
    """One `[[steps]]` table: an optional `# comment`, the analysis, `extra` keys (encoders, layers), its settings."""
    lines = [f"# {comment}"] if comment else []
    lines += ["[[steps]]", f"analysis = {toml_string(analysis)}"]
    lines += [f"{key} = {toml_value(value)}" for key, value in {**(extra or {}), **step_settings(analysis, settings)}
              .items()]
    return "\n".join(lines) + "\n"


def study_header_toml(name: str, datasets: Sequence[str], encoders: Sequence[str], layers: Sequence[str],
                      pooling: str) -> str:
    """The top of a new study file: a comment on how to run it, name, datasets, encoders, layers and pooling."""
    return "\n".join([
        *HEADER_COMMENT,
        f"name = {toml_string(name)}",
        f"datasets = {toml_value(list(datasets))}",
        f"encoders = {toml_value(list(encoders))}",
        f"layers = {toml_value(list(layers) or ['final'])}",
        f"pooling = {toml_string(pooling)}", ""])


def read_header(path: str | Path) -> dict:
    """The parsed TOML of an existing study file (its top-level keys); StudyError when unreadable or not TOML."""
    try:
        return tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise StudyError(f"{path}: cannot add a step to it: {error}") from None


def appended(text: str, step: str) -> str:
    """`text` ended by a newline (an empty text stays empty), a blank line, then `step`."""
    text = text if text.endswith("\n") or not text else text + "\n"
    return text + "\n" + step


def validated_text(path: str | Path, text: str, cache: str | Path) -> Study:
    """`load_study` on `text` in a temporary file named like `path`; its errors name `path`."""
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="repscope-study-") as folder:
        trial = Path(folder) / path.name
        trial.write_text(text)
        try:
            return load_study(trial, cache)
        except StudyError as error:
            raise StudyError(str(error).replace(str(trial), str(path))) from None


def add_step(path: str | Path, analysis: str, settings: Mapping[str, Any], *, extra: Mapping[str, Any] | None = None,
             header: str | None = None, comment: str = "", cache: str | Path) -> Study:
    """Append a step to `path` (a new file starts with `header`), validated first; StudyError and nothing written
    when the result does not validate."""
    path = Path(path)
    if path.exists():
        try:
            text = path.read_text()
        except OSError as error:
            raise StudyError(f"{path}: cannot add a step to it: {error}") from None
    else:
        text = header or ""
    text = appended(text, step_toml(analysis, settings, extra, comment=comment))
    study = validated_text(path, text, cache)
    atomic_write(path, lambda temporary: temporary.write_text(text))
    return study
