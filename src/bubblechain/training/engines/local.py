"""The embedded default: worker processes on this machine, one key per process.

Each worker slot is its own single-process pool, so a partition can be sent to
the same process every round (it verified and cached that partition once) and a
worker that dies takes down only its slot: the engine starts a fresh process
(with a fresh key) there, and the runtime records the lost attempt and retries.

On Linux workers are forked from a forkserver, a clean process started once per
coordinator process that has imported what the coordinator had (numpy, pyarrow,
bubblechain): a spawned worker spent ~0.5 s of CPU importing them again, in every
job. Never a plain fork: the coordinator runs sequencer and witness threads.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import contextlib
import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ...procs import serve_parent
from ..heap import keep_freed_memory
from ..tasks import init_worker


def worker_context() -> mp.context.BaseContext:
    """forkserver on Linux, preloading the bubblechain modules this process has
    imported (its ``__main__``, re-run in each worker, then finds them loaded);
    spawn elsewhere (macOS frameworks do not survive a fork).

    Not the ``__main__`` module itself (``python -m bubblechain.demo``): each worker
    re-runs it as ``__mp_main__``, and runpy warns when it is already imported.
    """
    if not sys.platform.startswith("linux"):
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    loaded = {m for m in sys.modules if m == "bubblechain" or m.startswith("bubblechain.")}
    ctx.set_forkserver_preload(sorted({*loaded, __name__}))  # used when the server starts
    return ctx


def _init_process(artifacts_root: str, coordinator: int) -> None:
    keep_freed_memory()  # the process is ours: its tasks reuse freed memory
    init_worker(artifacts_root)
    atexit.register(_exit_without_teardown)
    serve_parent(coordinator)


def _exit_without_teardown() -> None:
    """End the worker once the pool has taken its last result, skipping interpreter teardown.

    Where workers are spawned (a forked worker already ends this way). Runs at exit,
    after multiprocessing has flushed the result queue. Tearing down numpy, pyarrow
    and the cached partitions module by module took a worker about 0.1 s, which every
    job waited for in `close`; the kernel frees it all at once. Nothing is left to
    lose: artifacts are written (and renamed) before a result is sent.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            stream.flush()
    os._exit(0)


class LocalEngine:
    name = "local"

    def __init__(self, workers: int | None = None):
        self.workers = workers or os.cpu_count() or 1
        self._slots: list[cf.ProcessPoolExecutor] = []
        self._root: str | None = None
        self.restarts = 0

    def start(self, artifacts_root: str) -> None:
        self._root = artifacts_root
        self._slots = [self._new_slot() for _ in range(self.workers)]

    def _new_slot(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=1,
            mp_context=worker_context(),
            initializer=_init_process,
            initargs=(self._root, os.getpid()),
        )

    def submit(
        self, fn: Callable[[dict], Any], spec: dict, key: str, affinity: int = 0
    ) -> cf.Future:
        i = affinity % len(self._slots)
        try:
            return self._slots[i].submit(fn, spec)
        except cf.process.BrokenProcessPool:
            self._slots[i].shutdown(wait=False, cancel_futures=True)
            self.restarts += 1
            self._slots[i] = self._new_slot()
            return self._slots[i].submit(fn, spec)

    def as_completed(self, handles: Iterable[cf.Future]) -> Iterator[cf.Future]:
        return cf.as_completed(list(handles))

    def lost(self, error: BaseException) -> bool:
        return isinstance(error, cf.process.BrokenProcessPool | cf.CancelledError)

    def pids(self) -> list[int]:
        return [p.pid for s in self._slots for p in (s._processes or {}).values()]

    def describe(self) -> dict[str, Any]:
        return {"engine": "local", "workers": self.workers}

    def abort(self) -> None:
        """Close at once: the workers are stopped in whatever task they run (they leave
        Ctrl-C to the coordinator, and a first-round task may take seconds)."""
        for slot in self._slots:
            for proc in list((slot._processes or {}).values()):
                with contextlib.suppress(OSError):
                    proc.terminate()
        self.close()

    def close(self) -> None:
        slots, self._slots = self._slots, []
        # All at once: each worker takes ~0.1 s to exit; one after another left cores idle.
        with cf.ThreadPoolExecutor(max(len(slots), 1)) as closing:
            list(closing.map(_shut, slots))


def _shut(slot: cf.ProcessPoolExecutor) -> None:
    slot.shutdown(wait=True, cancel_futures=True)
