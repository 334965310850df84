"""Helpers for the worker processes this package starts (hashing pools, training workers).

A worker must end with the process that started it, however that one ends: a pool
worker holds both ends of its task queue, so it never reads end-of-file, and
outlives a parent killed by a signal it cannot catch, keeping its memory and its
caller's output pipes open for good. And Ctrl-C, which the terminal sends to the
whole process group, is the parent's to handle: a worker that raised on it too
printed tracebacks and could leave the parent's shutdown waiting on it.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time


def serve_parent(parent: int) -> None:
    """In a worker: leave Ctrl-C and SIGTERM to the parent, and end when it has ended."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    threading.Thread(target=_exit_with, args=(parent,), name="bc-parent-watch", daemon=True).start()


def _exit_with(parent: int) -> None:
    try:
        fd = os.pidfd_open(parent)  # Linux 5.3+: readable once the process has ended
    except ProcessLookupError:
        os._exit(1)  # already gone
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        select.select([fd], [], [])
    else:
        while _alive(parent):
            time.sleep(1.0)
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
