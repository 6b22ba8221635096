"""The Objective lab: `runs` (settings, runs on disk, the `lab:<run id>` encoder source), `train` (losses, loop).

Importing the package registers the `lab:` source with `core.encoders.registry`.
"""
from core.lab import runs as _runs  # noqa: F401  (registers the source)
