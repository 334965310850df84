"""The embedded default: a process pool on this machine, one key per worker process.

A worker that dies breaks a `ProcessPoolExecutor` as a whole; the engine then
starts a fresh pool (fresh processes, fresh keys) for the next submissions, and
the runtime records the lost attempts and retries them.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..tasks import init_worker


class LocalEngine:
    name = "local"

    def __init__(self, workers: int | None = None):
        self.workers = workers or os.cpu_count() or 1
        self._pool: cf.ProcessPoolExecutor | None = None
        self._root: str | None = None
        self.restarts = 0

    def start(self, artifacts_root: str) -> None:
        self._root = artifacts_root
        self._new_pool()

    def _new_pool(self) -> None:
        # spawn, not fork: the coordinator runs sequencer threads that must not be forked
        self._pool = cf.ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=mp.get_context("spawn"),
            initializer=init_worker,
            initargs=(self._root,),
        )

    def submit(self, fn: Callable[[dict], Any], spec: dict, key: str) -> cf.Future:
        try:
            return self._pool.submit(fn, spec)
        except cf.process.BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self.restarts += 1
            self._new_pool()
            return self._pool.submit(fn, spec)

    def as_completed(self, handles: Iterable[cf.Future]) -> Iterator[cf.Future]:
        return cf.as_completed(list(handles))

    def pids(self) -> list[int]:
        return [p.pid for p in (self._pool._processes or {}).values()] if self._pool else []

    def describe(self) -> dict[str, Any]:
        return {"engine": "local", "workers": self.workers}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
