"""Paths every test shares: the repository, the app entry point, the real data folder beside the checkout."""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
APP = str(REPO_ROOT / "app.py")
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
