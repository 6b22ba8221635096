"""The analyses a study runs and the app shows, one module each, registered on import (core.analyses.registry).

Adding an analysis = a module here that declares its Settings, units, run and draw and calls `register`, one import
line below, its core module, its figure module and its page.
"""
from core.analyses.registry import (Analysis, CannotOpen, Settings, analyses, get, known, owner_of, register,
                                    unregister)
from core.studies.analyses import (affect, probes, similarity, alignment, manifolds, inductive_bias, brain,  # noqa: F401
                                   encoding)

__all__ = ["Analysis", "CannotOpen", "Settings", "analyses", "get", "known", "owner_of", "register", "unregister"]
