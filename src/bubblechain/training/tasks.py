"""What runs inside a worker process: its identity, its verified partitions, map tasks.

Each worker process makes its own Ed25519 key when it starts (the private key never
leaves it); the coordinator has the admin register the public key on the ledger
the first time the worker reports. A map task reads its own partition (never
shipped through the scheduler), verifies it against the dataset commitment once
per worker and partition, computes on the parameters named by hash, stores its
partial result as an artifact and returns a signed `task.result`.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..algorithms._sums import compensated_sum, merge_moments, moments
from ..algorithms.base import MapContext, decode_arrays, encode_arrays
from ..algorithms.registry import get as get_algorithm
from ..artifacts import ArtifactStore
from ..crypto.keys import Identity
from .blas import pinned
from .bubble import Bubble, Signer
from .code import training_code_hash
from .partitions import (
    PartitionTampered,
    ReadCursor,
    UnusableValues,
    partition_cursor,
    plain_cursor,
    read_partition,
    read_rows,
)


@dataclass
class WorkerState:
    signer: Signer
    artifacts: ArtifactStore
    cache: dict[tuple, tuple[np.ndarray, np.ndarray | None]] = field(default_factory=dict)
    cursors: dict[tuple, ReadCursor] = field(default_factory=dict)  # one pass per file
    blas: Any = None
    params: tuple[str, Any] | None = None  # the last params read: every task of a round uses them

    def renew(self, old: str) -> None:
        """Take a new identity if this one is still `old`: the coordinator can record none
        of its messages any more (one of them never reached it)."""
        with _RENEWING:
            if self.signer.name == old:
                self.signer = _new_signer()

    def params_for(self, digest: str) -> Any:
        if self.params is None or self.params[0] != digest:
            self.params = (digest, decode_arrays(self.artifacts.get(digest)))
        return self.params[1]


# One identity per artifact store (that is, per home): a shared Dask cluster runs the
# tasks of jobs from several homes at once, each with its own store and its own
# ledger, on which this process is registered under a different name.
_WORKERS: dict[str, WorkerState] = {}
_RENEWING = threading.Lock()


def _new_signer() -> Signer:
    name = f"worker-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    return Signer(Identity.generate(name))


def init_worker(artifacts_root: str, blas_threads: int = 1) -> None:
    """Give this process its identity for the artifact store `artifacts_root` (a new
    one each time); pin BLAS threads so results are reproducible."""
    blas = pinned(blas_threads)
    state = WorkerState(_new_signer(), ArtifactStore(artifacts_root), blas=blas)
    _WORKERS[artifacts_root] = state


def drop_worker(artifacts_root: str) -> None:
    """Forget the identity and the cached partitions kept for `artifacts_root`."""
    _WORKERS.pop(artifacts_root, None)


def _worker(artifacts_root: str) -> WorkerState:
    w = _WORKERS.get(artifacts_root)
    if w is None:
        raise RuntimeError(
            f"this process was not initialised as a bubblechain worker for {artifacts_root}"
        )
    return w


def worker_identity(artifacts_root: str) -> tuple[str, bytes]:
    w = _worker(artifacts_root)
    return w.signer.name, w.signer.identity.public_key


def map_task(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one map task attempt; return the signed message and what the coordinator needs."""
    w = _worker(spec["artifacts"])
    t0 = time.perf_counter()
    job, it, p, attempt = spec["job"], spec["iteration"], spec["partition"], spec["attempt"]
    code = training_code_hash(spec["algorithm"])  # what this process runs, not what it was told
    signer = w.signer
    if signer.name in spec.get("renew", ()):
        w.renew(signer.name)
        signer = w.signer
    bubble = Bubble(signer, f"{job}/map/{it}/{p}/{attempt}", code, job=job)
    base = {"iteration": it, "partition": p, "attempt": attempt, "phase": spec["phase"]}
    try:
        X, y = _partition(w, spec)
    except (PartitionTampered, UnusableValues) as e:
        msg = bubble.send(
            "task.refused",
            {**base, "reason": str(e), **e.summary()},
            state=spec["params"],
            last=spec["params"],
            inputs=[spec["data"]["commit"]],
        )
        return _reply(signer, msg, refused=True, seconds=time.perf_counter() - t0)
    params = w.params_for(spec["params"])
    algo = get_algorithm(spec["algorithm"])
    ctx = MapContext(p, spec["partitions"], spec["seed"])
    if spec["phase"] == "evaluate":
        partial = evaluate_partial(algo, params, X, y)
    else:
        partial = algo.map(params, X, y, ctx)
    data = encode_arrays(partial)
    digest = w.artifacts.put(data, sync=False)  # synced with its block
    msg = bubble.send(
        "task.result",
        {**base, "rows": len(X), "seconds": round(time.perf_counter() - t0, 6)},
        state=digest,
        last=spec["params"],
        inputs=[spec["params"], spec["data"]["commit"]],
        outputs=[digest],
    )
    return _reply(signer, msg, partial=digest, partial_bytes=data, seconds=time.perf_counter() - t0)


def _reply(signer: Signer, msg, **extra: Any) -> dict[str, Any]:
    """The signed message and what the coordinator needs, from the signer that signed it
    (another task's thread may have renewed the worker's identity since)."""
    return {
        "worker": signer.name,
        "public_key": signer.identity.public_key,
        "payload": msg.payload,
        "signature": msg.signature,
        **extra,
    }


def _partition(w: WorkerState, spec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    d = spec["data"]
    key = (
        d["source"],
        d["root"],
        spec["row_start"],
        spec["row_stop"],
        tuple(d["features"]),
        d["target"],
    )
    hit = w.cache.get(key)
    if hit is None:
        at = (d["source"], d["root"])
        if at not in w.cursors:
            w.cursors = {at: partition_cursor(d["source"], d["commitment"])}
        cursor = w.cursors[at]
        mine = cursor.lock.acquire(blocking=False)  # a worker running tasks on threads
        try:
            hit = read_partition(
                d["source"],
                d["commitment"],
                w.artifacts,
                spec["row_start"],
                spec["row_stop"],
                d["features"],
                d["target"],
                cursor if mine else None,
            )
        finally:
            if mine:
                cursor.lock.release()
        w.cache[key] = hit
    return hit


def evaluate_partial(algo, params, X: np.ndarray, y: np.ndarray | None) -> dict[str, np.ndarray]:
    """Sums from which the coordinator computes the training metric exactly."""
    if algo.task == "clustering":
        nearest = params["centers"][algo.predict(params, X)]
        return {
            "inertia": np.asarray(float(np.sum((X - nearest) ** 2))),
            "n": np.asarray(len(X), dtype=np.int64),
        }
    pred = algo.predict(params, X)
    if algo.task == "classification":
        return {
            "correct": np.asarray(int(np.sum(pred == y)), dtype=np.int64),
            "n": np.asarray(len(X), dtype=np.int64),
        }
    y = np.asarray(y, dtype=np.float64)
    # The target's spread as a mean and a centred moment: sum(y*y) - sum(y)**2/n loses
    # every digit of R² to cancellation when the mean is large against the spread.
    n, mean, m2 = moments(y[:, None])
    return {
        "sse": np.asarray(float(np.sum((y - pred) ** 2))),
        "y_mean": mean,
        "y_m2": m2,
        "n": np.asarray(n, dtype=np.int64),
    }


_PLAIN_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray | None]] = {}
_PLAIN_CURSORS: dict[tuple, ReadCursor] = {}


def plain_map_task(spec: dict[str, Any]) -> dict[str, np.ndarray]:
    """The same map with tracking switched off: no key, no verification, no message.

    Used only as the baseline that measures what tracking costs.
    """
    d = spec["data"]
    key = (d["source"], spec["row_start"], spec["row_stop"], tuple(d["features"]), d["target"])
    if key not in _PLAIN_CACHE:
        at = (d["source"], tuple(d["features"]), d["target"])
        if at not in _PLAIN_CURSORS:
            _PLAIN_CURSORS.clear()
            _PLAIN_CURSORS[at] = plain_cursor(d["source"], d["features"], d["target"])
        _PLAIN_CACHE[key] = read_rows(
            d["source"],
            spec["row_start"],
            spec["row_stop"],
            d["features"],
            d["target"],
            _PLAIN_CURSORS[at],
        )
    X, y = _PLAIN_CACHE[key]
    algo = get_algorithm(spec["algorithm"])
    if spec["phase"] == "evaluate":
        return evaluate_partial(algo, spec["params_arrays"], X, y)
    ctx = MapContext(spec["partition"], spec["partitions"], spec["seed"])
    return algo.map(spec["params_arrays"], X, y, ctx)


def metric_from_partials(algo, parts: list[dict[str, np.ndarray]]) -> tuple[str, float]:
    """The training metric from the evaluation partials, summed in partition order."""
    if "y_m2" in parts[0]:
        _, _, m2 = merge_moments(
            [p["n"] for p in parts], [p["y_mean"] for p in parts], [p["y_m2"] for p in parts]
        )
        sse = float(compensated_sum([p["sse"] for p in parts]))
        sst = float(m2[0])
        return "r2", 1.0 - sse / sst if sst else 0.0
    total = {k: sum(np.asarray(p[k]).item() for p in parts) for k in parts[0]}
    if algo.task == "classification":
        return "accuracy", total["correct"] / max(total["n"], 1)
    if algo.task == "clustering":
        return "inertia", float(total["inertia"])
    # Evaluation results recorded before the target's moments were (sums of y and y*y).
    n = total["n"]
    sst = total["syy"] - total["sy"] ** 2 / n if n else 0.0
    return "r2", 1.0 - total["sse"] / sst if sst else 0.0
