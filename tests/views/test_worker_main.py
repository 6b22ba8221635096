"""A feature extraction's DataLoader workers (forkserver or spawn, started from the app's job thread) import the
main script again as `__mp_main__`; under `streamlit run` that is app.py. They must not build the app: that logged
"missing ScriptRunContext" from every worker (42 lines in a new user's server log) and slowed each worker's start."""
from __future__ import annotations

import subprocess
import sys

from tests.paths import REPO_ROOT as ROOT

AS_A_WORKER = ("import runpy, sys; runpy.run_path('app.py', run_name='__mp_main__'); "
               "print(sorted(name for name in sys.modules if name.startswith('views')))")


def test_a_worker_importing_the_app_as_its_main_module_builds_nothing() -> None:
    worker = subprocess.run([sys.executable, "-c", AS_A_WORKER], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert worker.returncode == 0, worker.stderr
    assert worker.stdout.strip() == "[]"  # no page module, no Streamlit cache
    assert "ScriptRunContext" not in worker.stderr and "No runtime found" not in worker.stderr
