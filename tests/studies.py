"""A one-step study the page and browser tests share: human vs raw pixels on the demo, two ε, one cold init."""
from __future__ import annotations

from pathlib import Path

from core.studies.engines import LocalEngine
from core.studies.files import step_toml, study_header_toml
from core.studies.run import StepStatus, run_study
from core.studies.spec import Study, load_study

TINY_ENCODER = "pixels:32"


def run_one_step_study(path: Path, cache: Path, text: str) -> tuple[Study, StepStatus]:
    """Write study file `text` (one step) to `path`, run it headless on `cache`; the study and its step's status
    (checked done)."""
    path.write_text(text)
    study = load_study(path, cache)
    [status] = run_study(study, cache, LocalEngine())
    assert status.state == "done", status.error
    return study, status


def run_step(folder: Path, cache: Path, dataset: str, analysis: str, settings: dict,
             encoders: tuple[str, ...] = (TINY_ENCODER,)) -> tuple[Study, StepStatus]:
    """`run_one_step_study` of a study file written from one step's `settings` (layer `final` of the encoders)."""
    text = study_header_toml(analysis, [dataset], encoders, ["final"], "auto") + step_toml(analysis, settings)
    return run_one_step_study(folder / f"{analysis}.toml", cache, text)


def run_tiny_alignment_study(folder: Path, cache: Path, eps_range: tuple[float, float] = (1e-3, 1e-1)) -> StepStatus:
    """Write the study into `folder`, run it headless on `cache` (seconds), return its one step's status."""
    return run_one_step_study(folder / "tiny_alignment.toml", cache, f'''name = "tiny alignment"
datasets = ["demo"]
encoders = ["{TINY_ENCODER}"]
[[steps]]
analysis = "alignment"
source = "human · demo human"
targets = ["{TINY_ENCODER} · final"]
metric = "euclidean"
normalise = true
eps_range = [{eps_range[0]!r}, {eps_range[1]!r}]
n_eps = 2
n_inits = 1
anneal = false
''')[1]


SCOREBOARD_STUDY = '''name = "small scoreboard"
datasets = ["demo"]
encoders = ["pixels:32", "pixels:1"]

[[steps]]
analysis = "affect"
schemes = ["loto", "loco"]

[[steps]]
analysis = "similarity"
measures = ["cka_linear", "rsa_spearman"]
bootstrap = 20

[[steps]]
analysis = "alignment"
source = "human · demo human"
targets = ["pixels:32 · final", "pixels:1 · final"]
metric = "euclidean"
normalise = true
eps_range = [1e-3, 1e-1]
n_eps = 2
n_inits = 1
anneal = false

[[steps]]
analysis = "manifolds"
m = 2
images_per_class = 3
'''


def run_scoreboard_study(folder: Path, cache: Path) -> Path:
    """Write a four-step study of two pixel encoders on the demo into `folder`, run it on `cache` (seconds once the
    demo exists), return the study file's path."""
    path = folder / "small_scoreboard.toml"
    path.write_text(SCOREBOARD_STUDY)
    statuses = run_study(load_study(path, cache), cache, LocalEngine())
    assert all(status.state == "done" for status in statuses), [status.error for status in statuses]
    return path
