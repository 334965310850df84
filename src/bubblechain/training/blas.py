"""BLAS threads: pinned, so that a replay reproduces every sum bit for bit, and recorded."""

from __future__ import annotations

import sys
from typing import Any

import numpy  # noqa: F401  (its BLAS must be loaded before the libraries are looked for)
from threadpoolctl import ThreadpoolController

_found: tuple[int, ThreadpoolController] | None = None


def controller() -> ThreadpoolController:
    """The loaded BLAS/OpenMP libraries, looked for again only after new imports.

    Looking walks every shared library in the process (~10-20 ms with pyarrow
    loaded), which each job would otherwise pay to pin and to record them; a
    library is loaded by an import (numpy's BLAS with numpy).
    """
    global _found
    if _found is None or _found[0] != len(sys.modules):
        _found = (len(sys.modules), ThreadpoolController())
    return _found[1]


def pinned(threads: int = 1) -> Any:
    """Context manager (also effective when kept unexited) limiting BLAS to ``threads``."""
    return controller().limit(limits=threads)


def described() -> list[dict[str, Any]]:
    """What `job.start` records of the libraries: API, version, threads."""
    return [
        {k: i.get(k) for k in ("internal_api", "version", "num_threads")}
        for i in controller().info()
    ]
