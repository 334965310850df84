"""The contract every training algorithm fulfils, so the runtime can track and replay it.

An algorithm is three pure functions over numpy arrays:

- ``map(params, X, y, ctx) -> Partial``: what one partition contributes;
- ``reduce(partials) -> Partial``: combine partials *in partition order*, exactly
  or with compensated summation, so the result does not depend on scheduling;
- ``update(params, reduced) -> Update``: the coordinator's step to new params.

All state (iteration counters, optimiser history, phase, classes) lives in
``params``, a dict of numpy arrays whose canonical hash is the coordinator
bubble's state hash. Because ``update`` and ``reduce`` are pure, an auditor
replays them from recorded artifacts and must get the same bits.

``setup_rounds`` is how many rounds an algorithm always spends before the first
one that can improve its model (finding the classes, evaluating the starting
point). The runtime runs them on top of ``--iterations``, so a job of N
iterations makes N rounds of progress and ends with a usable model for any
N ≥ 1. An algorithm whose first round already fits something has none.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

Params = dict[str, np.ndarray]
Partial = dict[str, np.ndarray]


@dataclass(frozen=True)
class MapContext:
    """What a map task knows besides its data: which partition, and the job's seed."""

    partition: int
    partitions: int
    seed: int


@dataclass(frozen=True)
class Update:
    params: Params
    metrics: dict[str, float] = field(default_factory=dict)  # e.g. {"loss": 0.31}
    done: bool = False
    converged: bool | None = None  # when done: whether by the algorithm's own test (None: yes)


class Algorithm(Protocol):
    name: str  # "logistic", "linear", "kmeans", "naive-bayes"
    task: str  # "classification", "regression" or "clustering"
    setup_rounds: int  # rounds not counted against --iterations (see the module docstring)

    def initial_params(self, n_features: int, hyper: Mapping[str, Any], seed: int) -> Params: ...

    def map(
        self, params: Params, X: np.ndarray, y: np.ndarray | None, ctx: MapContext
    ) -> Partial: ...

    def reduce(self, partials: Sequence[Partial]) -> Partial: ...

    def update(self, params: Params, reduced: Partial) -> Update: ...

    def predict(self, params: Params, X: np.ndarray) -> np.ndarray: ...


def encode_arrays(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Canonical bytes of a dict of arrays: sorted names, dtype, shape, C-order data.

    Used for parameter and partial artifacts; equal arrays give equal bytes.
    """
    out = io.BytesIO()
    out.write(b"bubblechain-arrays/v1\n")
    for name in sorted(arrays):
        a = np.asarray(arrays[name], order="C")  # (ascontiguousarray would make 0-d 1-d)
        if a.dtype.byteorder == ">":
            a = a.astype(a.dtype.newbyteorder("<"))
        if a.dtype == object:
            raise TypeError(f"array {name!r} has dtype object; use a fixed-width dtype")
        header = f"{name}\t{a.dtype.str}\t{','.join(map(str, a.shape))}\t{a.nbytes}\n"
        out.write(header.encode())
        out.write(a.tobytes())
    return out.getvalue()


def decode_arrays(data: bytes) -> dict[str, np.ndarray]:
    """Inverse of `encode_arrays`."""
    head = b"bubblechain-arrays/v1\n"
    if not data.startswith(head):
        raise ValueError("not a bubblechain array artifact")
    pos = len(head)
    out: dict[str, np.ndarray] = {}
    while pos < len(data):
        nl = data.index(b"\n", pos)
        name, dtype, shape, nbytes = data[pos:nl].decode().split("\t")
        pos = nl + 1
        dims = tuple(int(s) for s in shape.split(",")) if shape else ()
        n = int(nbytes)
        out[name] = np.frombuffer(data[pos : pos + n], dtype=np.dtype(dtype)).reshape(dims).copy()
        pos += n
    return out


def hash_arrays(arrays: Mapping[str, np.ndarray]) -> str:
    """The state hash of params (or partials): SHA-256 of their canonical bytes, hex."""
    return hashlib.sha256(encode_arrays(arrays)).hexdigest()
