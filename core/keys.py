"""The one key recipe: hex digits of sha256 over the canonical JSON of what a key names.

Stored results, feature arrays and jobs are found again by such a key (`core.features.results.result_key`,
`FeatureKey.digest`, `core.jobs.job_key`): the same inputs give the same key in the app, a headless study and after
a restart; any change gives a new one. (Similarity matrices keep their own, unsorted JSON: see `matrix_key`.)
"""
from __future__ import annotations

import hashlib
import json
from typing import Any


def digest(value: Any, length: int = 24) -> str:
    """`length` hex digits of sha256 over `value` as JSON with sorted keys (values JSON cannot hold as strings)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:length]
