"""Data roots: on a shared server, the only folders a browser may make RepScope read.

Set `REPSCOPE_DATA_ROOTS` (folders separated by `:`), or `data_roots = [...]` in `repscope.toml` beside app.py
or in `.streamlit/secrets.toml`. With roots set, every dataset path, manifest row, embedding or category file
and `file:` weight path must resolve (after `..` and symlinks) inside one of them, and is refused before it is
opened otherwise. Without roots, every path is allowed (a single user on localhost). The roots are read each time a dataset or weight
file is opened, so a change applies at once. A symlink swapped between the check and the open by someone who can
write inside a root is outside this guard (README: Serving to a group).
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from core.data.tables import DatasetError

ROOTS_VARIABLE = "REPSCOPE_DATA_ROOTS"
ROOTS_KEY = "data_roots"
REPOSITORY = Path(__file__).resolve().parents[2]
CONFIG_FILES = (REPOSITORY / "repscope.toml", REPOSITORY / ".streamlit" / "secrets.toml")


class OutsideRootsError(DatasetError):
    """A path a browser named lies outside the data roots."""


@dataclass(frozen=True)
class DataRoots:
    """Resolved folders; `folders == ()` means unconfined."""

    folders: tuple[Path, ...] = ()

    @property
    def confined(self) -> bool:
        """Whether any root is set (else every path is allowed)."""
        return bool(self.folders)

    def check(self, path: str | Path, what: str = "path") -> Path:
        """The resolved path, or OutsideRootsError naming the roots; nothing is opened (resolving only stats)."""
        resolved = Path(path).expanduser().resolve()
        if self.confined and not any(resolved.is_relative_to(folder) for folder in self.folders):
            shown = f"{path}" if str(path) == str(resolved) else f"{path} (resolves to {resolved})"
            raise OutsideRootsError(
                f"{what} {shown} is outside the data roots of this server: {self.listing()}. Put the data under one "
                f"of them, or ask whoever runs RepScope to add its folder to {ROOTS_VARIABLE}.")
        return resolved

    def check_tree(self, folder: str | Path, what: str = "folder") -> Path:
        """Check a folder and every symlink below it (a link may point outside); returns the resolved folder."""
        resolved = self.check(folder, what)
        if self.confined and resolved.is_dir():
            for parent, folders, files in os.walk(resolved):
                for name in folders + files:
                    entry = Path(parent) / name
                    if entry.is_symlink():
                        self.check(entry, f"{what} entry")
        return resolved

    def check_all(self, paths: Iterable[str | Path], what: str) -> None:
        """`check` each path."""
        for path in paths:
            self.check(path, what)

    def listing(self) -> str:
        """The roots, comma-separated, for messages."""
        return ", ".join(str(folder) for folder in self.folders) or "(none: unconfined)"


def data_roots(environment: Mapping[str, str] | None = None,
               config_files: Iterable[Path] = CONFIG_FILES) -> DataRoots:
    """The server's data roots: `$REPSCOPE_DATA_ROOTS`, else `data_roots` of the first config file that sets it."""
    environment = os.environ if environment is None else environment
    text = environment.get(ROOTS_VARIABLE, "").strip()
    folders: list[str] = [part for part in text.split(os.pathsep) if part.strip()] if text else []
    if not folders:
        for path in config_files:
            folders = _configured(path)
            if folders:
                break
    return DataRoots(tuple(Path(folder).expanduser().resolve() for folder in folders))


def _configured(path: Path) -> list[str]:
    """`data_roots` (a list, or one `:`-separated string) of a TOML file, at top level or under [repscope]."""
    try:
        config = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise DatasetError(f"cannot read {path} ({error}); fix its TOML or remove it.") from error
    section = config.get("repscope", {})
    value = config.get(ROOTS_KEY, section.get(ROOTS_KEY, []) if isinstance(section, dict) else [])
    folders = value.split(os.pathsep) if isinstance(value, str) else value
    if not isinstance(folders, list) or not all(isinstance(folder, str) for folder in folders):
        raise DatasetError(f"{path}: {ROOTS_KEY} must be a list of folder paths, e.g. {ROOTS_KEY} = [\"/data\"]; "
                           f"got {value!r}.")
    return [folder for folder in folders if folder.strip()]
