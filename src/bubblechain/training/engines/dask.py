"""Dask distributed: a given scheduler, or a `LocalCluster` of worker processes.

Each worker gets its identity from a `WorkerPlugin` (a fresh key made inside the
worker, also for workers that join or restart later). Tasks are submitted with
`pure=False` under a key naming job, round, partition and attempt, so Dask never
merges two calls. On the cluster we start, `allowed-failures` is 0: a task whose
worker dies fails at once with `KilledWorker`, and the coordinator records the
lost attempt and submits the next one, so every attempt is on the record.

A given scheduler may be shared: the plugin is named after the job's artifact store,
so jobs of other homes running on the same workers keep their own identities and
stores, and it is removed when the job ends (with the partitions its workers cached).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import hashlib
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import dask
import distributed
from distributed import Client, LocalCluster, WorkerPlugin
from distributed.comm import connect
from distributed.comm.addressing import parse_address, parse_host_port
from distributed.comm.core import CommClosedError
from distributed.scheduler import KilledWorker

from ...errors import UsageError
from ..tasks import drop_worker, init_worker

CONNECT_SECONDS = 10
NO_WORKERS_SECONDS = 30
"""How long a given scheduler may have no worker: before a job starts, and while it runs."""
POLL_SECONDS = 1.0


class SchedulerLost(ConnectionError):
    """The Dask scheduler went away, or has had no worker for too long: the job cannot
    go on (the runtime ends it on the record, with this message as the reason)."""


def plugin_name(artifacts_root: str) -> str:
    return "bubblechain-identity-" + hashlib.sha256(artifacts_root.encode()).hexdigest()[:16]


class IdentityPlugin(WorkerPlugin):
    """Gives every worker process its own bubblechain identity and BLAS pinning."""

    def __init__(self, artifacts_root: str):
        self.artifacts_root = artifacts_root
        self.name = plugin_name(artifacts_root)

    def setup(self, worker: distributed.Worker) -> None:
        init_worker(self.artifacts_root)

    def teardown(self, worker: distributed.Worker) -> None:
        drop_worker(self.artifacts_root)


def _worker_pid() -> int:
    return os.getpid()


def _unreachable(address: str) -> str | None:
    """Why no Dask scheduler answers at ``address``, found before the client tries: it
    retries a refused connection for its whole timeout, and waits forever on a server
    that accepts a connection but never answers the handshake (another service's port).
    None if a scheduler answered, or if the address is not plain TCP (the client then
    says what is wrong)."""
    try:
        scheme, loc = parse_address(address)
        host, port = parse_host_port(loc, default_port=8786)
    except (ValueError, TypeError):
        return None
    if scheme not in ("tcp", "tls"):
        return None
    try:
        socket.create_connection((host, port), timeout=CONNECT_SECONDS).close()
    except ConnectionRefusedError:
        return "connection refused (is a scheduler listening at that host and port?)"
    except socket.gaierror as e:
        return f"unknown host {host} ({e.strerror})"
    except TimeoutError:
        return f"no answer within {CONNECT_SECONDS} s"
    except OSError as e:
        return e.strerror or str(e)
    if scheme == "tls":
        return None  # its handshake needs the TLS settings only the client has
    with cf.ThreadPoolExecutor(1) as probing:  # its own loop: the caller may run one
        try:
            probing.submit(asyncio.run, _handshake(address)).result()
        except TimeoutError:
            return (
                f"it accepts connections but gives no Dask handshake within {CONNECT_SECONDS}"
                " s (another service's port? a scheduler's is usually 8786)"
            )
        except Exception:  # e.g. an HTTP reply, read as a frame length, asks for exabytes
            return (
                "it does not answer as a Dask scheduler (another service's port? a "
                "scheduler's is usually 8786)"
            )
    return None


async def _handshake(address: str) -> None:
    comm = await asyncio.wait_for(connect(address, timeout=CONNECT_SECONDS), CONNECT_SECONDS)
    await comm.close()


class DaskEngine:
    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int | None = None):
        self.scheduler = scheduler
        self.workers = workers or os.cpu_count() or 1
        self.cluster: LocalCluster | None = None
        self.client: Client | None = None
        self._plugin: str | None = None
        self._no_workers_since: float | None = None
        self._sent_to: dict[str, str] = {}  # task key -> the worker it was sent to

    def start(self, artifacts_root: str) -> None:
        try:
            self._start(artifacts_root)
        except BaseException:
            self.close()
            raise

    def _start(self, artifacts_root: str) -> None:
        if self.scheduler is not None:
            if not self.scheduler.strip():
                raise UsageError("--scheduler is empty: give the address as tcp://HOST:PORT")
            why = _unreachable(self.scheduler)
            if why is not None:
                raise UsageError(f"cannot reach Dask scheduler {self.scheduler}: {why}")
            try:
                self.client = Client(self.scheduler, timeout=CONNECT_SECONDS)
            except Exception as e:  # refused, timed out, or not a Dask scheduler at all
                raise UsageError(
                    f"cannot reach Dask scheduler {self.scheduler}: {type(e).__name__}: {e}"
                ) from None
            try:
                self.client.wait_for_workers(1, timeout=NO_WORKERS_SECONDS)
            except TimeoutError:
                raise UsageError(
                    f"Dask scheduler {self.scheduler} has no workers (waited "
                    f"{NO_WORKERS_SECONDS} s for one): start some with "
                    f"`dask worker {self.scheduler}`"
                ) from None
        else:
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                self.cluster = LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,  # one task at a time: a worker signs in order
                    processes=True,
                    dashboard_address=None,
                    # No dashboard, and its HTTP server (health, metrics) on any free port:
                    # on the default 8787, taken by another cluster, Dask warned on stderr.
                    scheduler_kwargs={"dashboard_address": ":0"},
                )
            self.client = Client(self.cluster)
        self._plugin = plugin_name(artifacts_root)
        self.client.register_plugin(IdentityPlugin(artifacts_root), name=self._plugin)

    def _where(self) -> str:
        return self.scheduler or "of the local cluster"

    def _check_scheduler(self) -> None:
        if self.client is None or self.client.status != "running":
            raise SchedulerLost(
                f"lost the Dask scheduler {self._where()} (it stopped, or the network to it failed)"
            )

    def _workers(self) -> list[str]:
        self._check_scheduler()
        try:
            return sorted(self.client.scheduler_info()["workers"])
        except KeyError:  # the client closed in between: it lost the scheduler
            self._check_scheduler()
            raise

    def submit(
        self, fn: Callable[[dict], Any], spec: dict, key: str, affinity: int = 0
    ) -> distributed.Future:
        """Prefer the same worker for the same partition (it cached it), but allow others."""
        workers = self._workers()
        # No worker for a moment (one just died, none has joined yet): any, when one comes.
        where = (
            {"workers": [workers[affinity % len(workers)]], "allow_other_workers": True}
            if workers
            else {}
        )
        if workers:
            self._sent_to[key] = where["workers"][0]
        return self.client.submit(fn, spec, key=key, pure=False, retries=0, **where)

    def as_completed(self, handles: Iterable[distributed.Future]) -> Iterator[distributed.Future]:
        """The tasks as they finish; raises `SchedulerLost` once the scheduler is gone or
        has had no worker for NO_WORKERS_SECONDS (the tasks would wait for one forever)."""
        pending = set(handles)
        while pending:
            try:  # Dask's own as_completed: waiting on each task in turn was ~2x slower
                for f in distributed.as_completed(pending, timeout=POLL_SECONDS):
                    pending.discard(f)
                    self._no_workers_since = None
                    try:
                        yield f
                    finally:  # its result was taken: Dask would compute it again (a
                        f.release()  # second signed result, never sent) if its worker died
                        self._sent_to.pop(f.key, None)
            except TimeoutError:  # none finished in the last POLL_SECONDS
                self._check_workers()
                self._cancel_stranded(pending)

    def _cancel_stranded(self, pending: set[distributed.Future]) -> None:
        """Cancel the tasks sent to a worker that has gone and that no worker runs: the
        runtime records each as a lost attempt and sends the next one.

        Dask moves such a task to another worker, but when none was left at that moment
        (a cluster of one worker, restarted by its nanny) it waits for one for ever, even
        once a new worker has joined.
        """
        workers = set(self._workers())
        gone = [f for f in pending if self._sent_to.get(f.key, "") not in workers | {""}]
        if gone:
            running = {k for keys in self.client.processing().values() for k in keys}
            for f in gone:
                if f.key not in running:
                    f.cancel(reason=f"the worker it was sent to, {self._sent_to[f.key]}, has gone")

    def _check_workers(self) -> None:
        if self._workers():
            self._no_workers_since = None
            return
        now = time.monotonic()
        if self._no_workers_since is None:
            self._no_workers_since = now
        elif now - self._no_workers_since >= NO_WORKERS_SECONDS:
            raise SchedulerLost(
                f"Dask scheduler {self._where()} has had no workers for {NO_WORKERS_SECONDS} s"
            )

    def lost(self, error: BaseException) -> bool:
        if isinstance(error, cf.CancelledError):
            # Dask cancels every task when it loses the scheduler: no worker was lost, and
            # another attempt cannot run either.
            self._check_scheduler()
        return isinstance(error, KilledWorker | CommClosedError | cf.CancelledError)

    def pids(self) -> dict[str, int]:
        """Worker address -> process id (tests kill one to check retries)."""
        return self.client.run(_worker_pid)

    def describe(self) -> dict[str, Any]:
        info = self.client.scheduler_info()
        return {
            "engine": "dask",
            "scheduler": info.get("address"),
            "workers": len(info.get("workers", {})),
            # Threads run tasks side by side in a worker: each pins its BLAS to 1 thread.
            "threads": sum(w.get("nthreads", 0) for w in info.get("workers", {}).values()),
            "dask": dask.__version__,
            "distributed": distributed.__version__,
        }

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            if self._plugin is not None and self.cluster is None and client.status == "running":
                # A given cluster outlives the job: its workers drop the job's identities
                # and cached partitions, and workers that join later are not given them.
                with contextlib.suppress(Exception):
                    client.unregister_worker_plugin(self._plugin)
            client.close()
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None
