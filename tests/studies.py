"""A one-step study the page and browser tests share: human vs raw pixels on the demo, two ε, one cold init."""
from __future__ import annotations

from pathlib import Path

from core.studies.engines import LocalEngine
from core.studies.run import StepStatus, run_study
from core.studies.spec import load_study

TINY_ENCODER = "pixels:32"


def run_tiny_alignment_study(folder: Path, cache: Path, eps_range: tuple[float, float] = (1e-3, 1e-1)) -> StepStatus:
    """Write the study into `folder`, run it headless on `cache` (seconds), return its one step's status."""
    path = folder / "tiny_alignment.toml"
    path.write_text(f'''name = "tiny alignment"
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
''')
    [status] = run_study(load_study(path, cache), cache, LocalEngine())
    assert status.state == "done", status.error
    return status
