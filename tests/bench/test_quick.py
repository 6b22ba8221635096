"""Every bench runs: `python bench/<name>.py --quick` (tiny sizes, seconds) exits 0 and prints the line that shows it
measured something (issue 30, item 10: "Benches rot").

The benches are found with a glob, so a new bench without `--quick`, or without a line below, fails here. Each runs
as a subprocess from the repository root with REPSCOPE_CACHE pointed at the test's own folder (the benches that
write a cache already use a temporary one in quick mode). All of them together take about three minutes on a 2-core
machine, hence slow."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from tests.paths import REPO_ROOT

TIMEOUT_S = 240
BENCHES = sorted((REPO_ROOT / "bench").glob("*.py"))
# Per bench: regular expressions its quick output must match (a ratio or the figure it reports, with its number).
KEY_LINES = {
    "brain.py": [r"speed-up rsatoolbox / ours: \d+\.\dx", r"point estimates agree: max \|ours - eval_fixed\| = \d"],
    "encoding.py": [r"RidgeCV per fold +\d+\.\d+ s +ratio +\d+\.\dx",
                    r"max \|prediction difference\| [\d.e+-]+, alphas equal in \d+\.\d% of \(fold, unit\)"],
    "explore.py": [r"selection -> table \+ highlighted map +\d+\.\d+ s +baseline +\d+\.\d+ s +ratio +\d+\.\d+",
                   r"click -> 10 neighbours in 2 representations .* ratio +\d+\.\d+"],
    "extract.py": [r"ours/bare  = \d+\.\d+", r"naive/ours = \d+\.\d+", r"app/CLI = \d+\.\d+"],
    "flat_memory.py": [r"flat:\d+ peak / cls peak = \d+\.\d+"],
    "gpu_check.py": [r"numpy / torch seconds = \d+\.\d+"],
    "gwot.py": [r"speed-up POT / ours: \d+\.\d+x"],
    "lab.py": [r"all four: \d+\.\d+ s; ratio to the 15-minute budget \d+\.\d+",
               r"measuring / training per epoch = \d+\.\d+ \(target < 0\.10\)"],
    "load.py": [r"N =  1: p50 +\d+\.\d+ s  p95 +\d+\.\d+ s  p50 / p50 at N = 1 +\d+\.\d+ .* exceptions 0",
                r"stored results: [1-9]\d* before, [1-9]\d* after, lost 0"],
    "pages.py": [r"Features \(final layer, baseline\) +\d+\.\d+ +1\.00",
                 r"Inductive bias quick .* +\d+\.\d+ +\d+\.\d+"],
    "scoreboard.py": [r"scoreboard: read \+ layer choice \+ CIs \+ rank stability \+ W +\d+\.\d+ s .*ratio to the "
                      r"floor \d+\.\dx", r"speed-up scipy loop / ours: \d+\.\dx",
                      r"same null: max \|difference\| = [\d.e+-]+ .*\(agree"],
    "similarity.py": [r"speed-up baseline / ours: \d+\.\d+x", r"\(agree: tolerance"],
    "study.py": [r"parallel efficiency time\(a\) / \(2 × time\(b\)\) = \d+\.\d+", r"same numbers on every engine:"],
}


def test_every_bench_is_listed():
    assert BENCHES, f"no bench found under {REPO_ROOT / 'bench'}"
    assert sorted(KEY_LINES) == [bench.name for bench in BENCHES]


@pytest.mark.slow
@pytest.mark.parametrize("bench", BENCHES, ids=[bench.name for bench in BENCHES])
def test_quick_mode_runs(bench, tmp_path):
    if bench.name not in KEY_LINES:
        pytest.fail(f"bench/{bench.name} has no key line in KEY_LINES: add the line its --quick output must print")
    environment = {**os.environ, "REPSCOPE_CACHE": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1",
                   "PYTHONIOENCODING": "utf-8"}
    # Its own process group: on a timeout the bench's children (a streamlit server, Ray workers) are stopped too.
    process = subprocess.Popen([sys.executable, str(bench), "--quick"], cwd=REPO_ROOT, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, encoding="utf-8", errors="replace",
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # a child in a session of its own still holds the pipe
            output = "(no output: a child of the bench still held its pipe)"
        pytest.fail(f"bench/{bench.name} --quick ran past {TIMEOUT_S} s:\n{output}")
    assert process.returncode == 0, f"bench/{bench.name} --quick exited {process.returncode}:\n{output}"
    for pattern in KEY_LINES[bench.name]:
        assert re.search(pattern, output), f"bench/{bench.name} --quick printed no line matching {pattern!r}:\n{output}"
