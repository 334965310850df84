"""A reusable process pool for hashing, with an in-process fallback.

Workers are forked (where the platform can) and kept for the life of the
process, so that repeated commits pay the start-up once and no script needs a
``__main__`` guard. Forking a process that runs pyarrow threads is safe here
because the workers only ever call hashlib and numpy on bytes they are sent,
never into Arrow; elsewhere the fork server is used.

Encoded rows reach forked workers through a ring of slots in an anonymous
shared mapping created before the fork: one memcpy instead of pickling and
piping ~100 bytes per row. Task k uses slot k mod (window + 1); since at most
``window`` tasks are in flight and results are taken in order, a slot is
reused only after the worker that read it has answered.
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any

import numpy as np

from ..procs import serve_parent
from ._hashing import hash_task

POOL_MIN_ROWS = 100_000
"""Below this many rows the pool's start-up and transfers cost more than they save."""

SLOT_BYTES = 8 << 20
"""Bytes per ring slot: a task of 65,536 rows of ~100 bytes fits; a larger one is pickled."""

_pool: ProcessPoolExecutor | None = None
_pool_size = 0
_ring: mmap.mmap | None = None


def default_workers() -> int:
    """One worker per core the process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class _Inline(Executor):
    """Runs each task at once in this process."""

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def executor(workers: int | None, rows: int) -> tuple[Executor, int]:
    """The executor to hash ``rows`` rows with, and how many tasks to keep in flight."""
    global _pool, _pool_size, _ring
    n = default_workers() if workers is None else workers
    if n <= 1 or (workers is None and rows < POOL_MIN_ROWS):
        return _Inline(), 1
    if _pool is None or _pool_size != n:
        if _pool is not None:
            _pool.shutdown()
        fork = "fork" in multiprocessing.get_all_start_methods()
        _ring = mmap.mmap(-1, SLOT_BYTES * (2 * n + 1)) if fork else None
        ctx = multiprocessing.get_context("fork" if fork else "forkserver")
        _pool = ProcessPoolExecutor(
            max_workers=n, mp_context=ctx, initializer=serve_parent, initargs=(os.getpid(),)
        )
        _pool_size = n
    return _pool, 2 * n


def hash_slot(
    slot: int, size: int, offsets: bytes | None, width: int, counts: list[int], fmt: int | None
) -> tuple[bytes, list[bytes], list[bytes] | None]:
    """Worker side of a ring task: the rows are in ``slot`` of the inherited mapping."""
    start = slot * SLOT_BYTES
    return hash_task(_ring[start : start + size], offsets, width, counts, fmt)


class Pipeline:
    """Hashing tasks of encoded rows on the pool (through the ring) or in this process."""

    def __init__(self, workers: int | None, rows: int):
        self.pool, self.window = executor(workers, rows)
        self.ring = _ring if isinstance(self.pool, ProcessPoolExecutor) else None
        self.count = 0

    def hash_rows(
        self,
        buf: np.ndarray,
        offsets: np.ndarray,
        width: int,
        counts: list[int],
        digest_format: int | None = None,
    ) -> tuple[Callable, tuple]:
        """(function, arguments) of a task hashing rows, and the roots of runs (and their
        rows digests, for a ``digest_format`` that hashes rows: see `hash_task`)."""
        offs = None if width else offsets.tobytes()
        size = buf.nbytes
        if self.ring is not None and size <= SLOT_BYTES:
            slot = self.count % (self.window + 1)
            self.count += 1
            start = slot * SLOT_BYTES
            self.ring[start : start + size] = memoryview(np.ascontiguousarray(buf))
            return hash_slot, (slot, size, offs, width, counts, digest_format)
        return hash_task, (buf.tobytes(), offs, width, counts, digest_format)

    def results(self, tasks: Iterable[tuple[Any, Callable, tuple]]) -> Iterator[tuple[Any, Any]]:
        """Run ``(meta, fn, args)`` tasks, yielding (meta, result) in order."""
        return ordered(self.pool, self.window, tasks)


def ordered(
    pool: Executor, window: int, tasks: Iterable[tuple[Any, Callable, tuple]]
) -> Iterator[tuple[Any, Any]]:
    """Submit ``(meta, fn, args)`` tasks, ``window`` at most in flight; yield results in order."""
    pending: deque = deque()
    for meta, fn, args in tasks:
        pending.append((meta, pool.submit(fn, *args)))
        while len(pending) > window:
            m, f = pending.popleft()
            yield m, f.result()
    while pending:
        m, f = pending.popleft()
        yield m, f.result()
