"""Tasks run in the coordinator's own process, one at a time.

For tests and debugging: a worker identity still signs every result, but no
process is spawned, so a test can stand in for a misbehaving worker.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..tasks import init_worker


class InlineEngine:
    name = "inline"

    def start(self, artifacts_root: str) -> None:
        init_worker(artifacts_root)

    def submit(
        self, fn: Callable[[dict], Any], spec: dict, key: str, affinity: int = 0
    ) -> cf.Future:
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(spec))
        except Exception as e:
            fut.set_exception(e)
        return fut

    def as_completed(self, handles: Iterable[cf.Future]) -> Iterator[cf.Future]:
        return iter(list(handles))

    def lost(self, error: BaseException) -> bool:
        return False  # no worker to lose: whatever failed was the task

    def describe(self) -> dict[str, Any]:
        return {"engine": "inline", "workers": 1}

    def close(self) -> None:
        pass
