"""Ctrl-C and SIGTERM, held back while the ledger's state is half updated.

Python runs a signal handler in the main thread between any two bytecodes. An
exception raised there in the middle of an append (the validation state moved, the
log tree not yet) or of a block cut would leave them out of step, and no later
block could be cosigned. The command line's handlers call `interrupt`, which
raises at once, or, inside a `deferred()` section, as soon as it ends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_local = threading.local()  # handlers run in the main thread: they see its sections


@contextmanager
def deferred() -> Iterator[None]:
    """A section no interrupt breaks into; one that arrives inside is raised after it."""
    depth = getattr(_local, "depth", 0)
    _local.depth = depth + 1
    try:
        yield
    except BaseException as failure:
        _local.depth = depth
        if depth == 0:  # the interrupt is not lost for a later, unrelated section
            raise_pending(cause=failure)
        raise
    _local.depth = depth
    if depth == 0:
        raise_pending()


def interrupt(exc: BaseException) -> None:
    """Raise ``exc`` now, or at the end of the `deferred` section the thread is in."""
    if getattr(_local, "depth", 0):
        _local.pending = exc
        return
    raise exc


def raise_pending(cause: BaseException | None = None) -> None:
    """Raise an interrupt held back by the sections around this point: for a wait inside
    one that has changed nothing yet, so that Ctrl-C still ends it."""
    pending = getattr(_local, "pending", None)
    if pending is not None:
        _local.pending = None
        raise pending from cause
