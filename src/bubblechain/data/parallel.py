"""A reusable process pool for hashing, with an in-process fallback.

Workers are forked (where the platform can) and kept for the life of the
process, so that repeated commits pay the start-up once and no script needs a
``__main__`` guard. Forking a process that runs pyarrow threads is safe here
because the workers only ever call hashlib and numpy on bytes they are sent,
never into Arrow; elsewhere the fork server is used.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any

POOL_MIN_ROWS = 100_000
"""Below this many rows the pool's start-up and transfers cost more than they save."""

_pool: ProcessPoolExecutor | None = None
_pool_size = 0


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
    global _pool, _pool_size
    n = default_workers() if workers is None else workers
    if n <= 1 or (workers is None and rows < POOL_MIN_ROWS):
        return _Inline(), 1
    if _pool is None or _pool_size != n:
        if _pool is not None:
            _pool.shutdown()
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "forkserver")
        _pool, _pool_size = ProcessPoolExecutor(max_workers=n, mp_context=ctx), n
    return _pool, 2 * n


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
