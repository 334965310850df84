"""The code hash a training bubble attests: the modules that decide what it computes."""

from __future__ import annotations

import functools
import importlib

from ..algorithms.registry import get as get_algorithm
from .bubble import code_hash

# Imported by name so that the worker-side module can attest itself without a cycle.
_RUNTIME_MODULES = (
    "bubblechain.algorithms.base",
    "bubblechain.algorithms._sums",
    "bubblechain.training.bubble",
    "bubblechain.training.partitions",
    "bubblechain.training.tasks",
)


@functools.cache
def training_code_hash(algorithm: str) -> str:
    """SHA-256 over the package version and the sources a job's bubbles run.

    Each worker computes it from the code it actually has loaded, so a worker
    running other code signs a different hash than the job declared.
    """
    modules = [importlib.import_module(type(get_algorithm(algorithm)).__module__)]
    modules += [importlib.import_module(m) for m in _RUNTIME_MODULES]
    return code_hash(*modules)
