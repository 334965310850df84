"""The plain in-memory driver: the reference loop the tracked runtime mirrors.

It does what the runtime does — split rows into P contiguous partitions, map
each, reduce in partition order, update, until ``done`` — without bubbles,
artifacts or a ledger. Tests use it for parity with scikit-learn, and the
benchmark uses it as the untracked baseline.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import _sums
from .base import Algorithm, MapContext, Params, hash_arrays
from .registry import get


def partition_bounds(n_rows: int, partitions: int) -> list[tuple[int, int]]:
    """Row ranges [start, stop) of P contiguous partitions, sizes differing by at most one."""
    if partitions < 1:
        raise ValueError(f"partitions must be ≥ 1, got {partitions}")
    cuts = [i * n_rows // partitions for i in range(partitions + 1)]
    return list(itertools.pairwise(cuts))


def resolve(algorithm: Algorithm | str) -> Algorithm:
    """An algorithm object, given it or its registered name."""
    return get(algorithm) if isinstance(algorithm, str) else algorithm


def fit_local(
    algorithm: Algorithm | str,
    X: Any,
    y: Any = None,
    partitions: int = 1,
    hyper: Mapping[str, Any] | None = None,
    seed: int = 0,
    max_rounds: int | None = None,
) -> tuple[Params, list[dict[str, Any]]]:
    """Fit in memory; returns the final params and one history entry per round.

    Each entry has ``round``, ``phase`` (of the params the round mapped over),
    ``metrics``, ``done`` and ``state`` (the hash of the new params). Stops at
    ``done`` or after ``max_rounds`` rounds (then the last entry has done=False).
    """
    alg = resolve(algorithm)
    X = _sums.as_features(X)
    if alg.task != "clustering":
        y = _sums.require_y(y, alg.name)
    elif y is not None:
        y = np.asarray(y)
    if y is not None and len(y) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    bounds = partition_bounds(len(X), partitions)
    params = alg.initial_params(X.shape[1], hyper or {}, seed)
    history: list[dict[str, Any]] = []
    rounds = 0
    while max_rounds is None or rounds < max_rounds:
        partials = [
            alg.map(params, X[a:b], None if y is None else y[a:b], MapContext(i, partitions, seed))
            for i, (a, b) in enumerate(bounds)
        ]
        step = alg.update(params, alg.reduce(partials))
        history.append(
            {
                "round": rounds,
                "phase": int(params["phase"]),
                "metrics": step.metrics,
                "done": step.done,
                "state": hash_arrays(step.params),
            }
        )
        params = step.params
        rounds += 1
        if step.done:
            break
    return params, history


def predict_proba(algorithm: Algorithm | str, params: Params, X: Any) -> np.ndarray:
    """Class probabilities, for the algorithms that have them."""
    alg = resolve(algorithm)
    method = getattr(alg, "predict_proba", None)
    if method is None:
        raise ValueError(f"algorithm {alg.name!r} has no predict_proba")
    return method(params, X)


def score(algorithm: Algorithm | str, params: Params, X: Any, y: Any = None) -> float:
    """The algorithm's training metric (its ``metric_name``): accuracy, R² or inertia."""
    return resolve(algorithm).score(params, X, y)  # type: ignore[attr-defined]


def metric_name(algorithm: Algorithm | str) -> str:
    return resolve(algorithm).metric_name  # type: ignore[attr-defined]
