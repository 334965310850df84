"""The small engine interface the runtime needs: submit, gather as completed, close."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from ...errors import UsageError

ENGINES = ("local", "dask")


class TaskHandle(Protocol):
    def result(self) -> Any: ...


class Engine(Protocol):
    name: str

    def start(self, artifacts_root: str) -> None:
        """Start workers; each gets its own identity (see training.tasks.init_worker)."""
        ...

    def submit(
        self, fn: Callable[[dict], Any], spec: dict, key: str, affinity: int = 0
    ) -> TaskHandle:
        """Run `fn(spec)` on a worker, preferably the `affinity`-th; never merged with
        another call of the same arguments."""
        ...

    def as_completed(self, handles: Iterable[TaskHandle]) -> Iterator[TaskHandle]: ...

    def lost(self, error: BaseException) -> bool:
        """Whether an attempt failed because its worker was lost (the runtime retries
        it) rather than because the task raised (the job fails: it would again)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the job record should say about where it ran."""
        ...

    def close(self) -> None: ...


def make_engine(name: str, *, workers: int | None = None, scheduler: str | None = None) -> Engine:
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if scheduler is not None and name != "dask":
        raise UsageError(f"--scheduler is for the dask engine, not {name!r}")
    if name == "local":
        from .local import LocalEngine

        return LocalEngine(workers=workers)
    if name == "dask":
        from .dask import DaskEngine

        return DaskEngine(scheduler=scheduler, workers=workers)
    if name == "inline":
        from .inline import InlineEngine

        return InlineEngine()
    raise UsageError(f"unknown engine {name!r}: choose {' or '.join(map(repr, ENGINES))}")
