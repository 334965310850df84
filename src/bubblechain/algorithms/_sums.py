"""Order-fixed reductions and small helpers shared by the algorithms.

Reduce steps must give the same bits for the same partitions in the same order,
whatever the scheduling, and must lose as little as possible when many
partitions are added up. So partitions are added one after another with
Neumaier's compensated summation (vectorised over array elements), and
moments are merged from per-partition *centred* statistics (Chan, Golub and
LeVeque's parallel update) rather than from raw sums of squares, which cancel
badly when a feature's mean is large compared with its spread.

The coordinator's small vector algebra (L-BFGS) uses `fdot`, an exactly
rounded dot product (`math.fsum`), so replaying ``update`` does not depend on
the BLAS library or its thread count.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .base import Params, Partial


def compensated_sum(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Sum equally shaped float arrays in the given order (Neumaier), elementwise.

    Deterministic for a given order; error independent of the number of terms
    to first order, so P=1 and P=8 agree to the accuracy of the inputs.
    """
    if not arrays:
        raise ValueError("nothing to reduce: no partial results")
    s = np.array(arrays[0], dtype=np.float64, copy=True)
    c = np.zeros_like(s)
    for a in arrays[1:]:
        a = np.asarray(a, dtype=np.float64)
        if a.shape != s.shape:
            raise ValueError(f"partial results disagree in shape: {a.shape} vs {s.shape}")
        t = s + a
        big = np.abs(s) >= np.abs(a)
        c += np.where(big, (s - t) + a, (a - t) + s)
        s = t
    return s + c


def int_sum(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Exact sum of integer count arrays, in order."""
    if not arrays:
        raise ValueError("nothing to reduce: no partial results")
    out = np.array(arrays[0], dtype=np.int64, copy=True)
    for a in arrays[1:]:
        out = out + np.asarray(a, dtype=np.int64)
    return out


def fdot(a: np.ndarray, b: np.ndarray) -> float:
    """Exactly rounded dot product of two flat vectors (independent of BLAS)."""
    return math.fsum(np.multiply(a, b).ravel().tolist())


_BLOCK_BYTES = 1 << 18


def moments(Z: np.ndarray, full: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count, mean and centred second moment of the rows of Z.

    ``full`` gives the scatter matrix (Z-m)'(Z-m); otherwise its diagonal.
    An empty block has mean 0 and moment 0.
    """
    n, d = Z.shape
    m2 = np.zeros((d, d) if full else d)
    if n == 0:
        return np.int64(0), np.zeros(d), m2
    mean = Z.mean(axis=0)
    # Centred a cache-sized block at a time into one buffer: a centred copy of a whole
    # partition is a fresh multi-megabyte array, whose first touch (page faults and
    # zeroing) cost a worker up to 3x the arithmetic.
    step = max(1, _BLOCK_BYTES // (8 * max(d, 1)))
    D = np.empty((min(n, step), d))
    for s in range(0, n, step):
        block = np.subtract(Z[s : s + step], mean, out=D[: min(step, n - s)])
        m2 += block.T @ block if full else np.einsum("ij,ij->j", block, block)
    return np.int64(n), mean, m2


def merge_moments(
    ns: Sequence[np.ndarray], means: Sequence[np.ndarray], m2s: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge per-block (count, mean, centred moment) in order, with compensation.

    Counts may carry leading batch axes (e.g. one row per class): ``ns[p]`` has
    shape S, ``means[p]`` S+(d,), ``m2s[p]`` S+(d,) (diagonal) or S+(d, d) (full).
    Result is in the same form, so merged blocks can be merged again.
    """
    n = int_sum(ns)
    nf = n.astype(np.float64)
    weighted = [
        np.asarray(k, np.float64)[..., None] * np.asarray(m) for k, m in zip(ns, means, strict=True)
    ]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = compensated_sum(weighted) / nf[..., None]
    mean = np.where(nf[..., None] > 0, mean, 0.0)
    terms = []
    for k, m, m2 in zip(ns, means, m2s, strict=True):
        delta = np.asarray(m, np.float64) - mean
        kf = np.asarray(k, np.float64)
        if np.ndim(m2) == np.ndim(m):  # diagonal moments
            between = kf[..., None] * delta * delta
        else:
            between = kf[..., None, None] * (delta[..., :, None] * delta[..., None, :])
        terms.append(np.asarray(m2, np.float64) + between)
    return n, mean, compensated_sum(terms)


# --- labels: discovered through map/reduce, never by a global pass -------------


def as_labels(y: Any, *, checked: bool = False) -> np.ndarray:
    """Labels as a 1-d array of a fixed-width dtype (object arrays become strings).

    A missing label (None, NaN, pandas' NA) is an error naming its positions: it
    would otherwise become a class of its own ('None', 'nan', '<NA>'). ``checked``:
    the rows were already refused if they had one (a map task's verified partition,
    read every round: the check is a Python call per row of an object array).
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be one-dimensional, got shape {y.shape}")
    missing = () if checked else missing_rows(y)
    if len(missing):
        raise ValueError(f"y (the target) is missing at positions {show_rows(missing)}")
    if y.dtype == object:
        y = y.astype(str)
    if y.dtype.kind == "f" and y.size and not np.isfinite(y).all():
        rows = np.flatnonzero(~np.isfinite(y))
        raise ValueError(f"y (the target) is not finite at positions {show_rows(rows)}")
    return y


def missing_rows(y: np.ndarray) -> np.ndarray:
    """Positions of the missing values of a 1-d array: None, NaN, NaT, pandas' NA."""
    if y.dtype.kind in "fc":
        return np.flatnonzero(np.isnan(y))
    if y.dtype.kind in "mM":
        return np.flatnonzero(np.isnat(y))
    if y.dtype != object:
        return np.empty(0, dtype=np.intp)
    return np.flatnonzero(np.fromiter(map(_missing, y), dtype=bool, count=len(y)))


def _missing(v: Any) -> bool:
    if v is None or type(v).__name__ in ("NAType", "NaTType"):  # pandas, not imported here
        return True
    try:
        return bool(v != v)  # NaN of any type: float, numpy, Decimal
    except (TypeError, ValueError):  # an array as a value: not missing
        return False


SHOW_ROWS = 20


def show_rows(rows: np.ndarray) -> str:
    """The first positions of ``rows`` and how many there are: '[3, 9] (2 rows)'."""
    shown = ", ".join(str(int(r)) for r in rows[:SHOW_ROWS])
    more = ", …" if len(rows) > SHOW_ROWS else ""
    return f"[{shown}{more}] ({len(rows)} row{'s' * (len(rows) != 1)})"


def map_labels(y: np.ndarray | None, name: str) -> Partial:
    """Phase-0 map: the partition's sorted distinct labels and its row count."""
    y = require_y(y, name)
    return {"labels": np.unique(y), "n": np.int64(y.shape[0])}


MAX_CLASSES = 1000
"""More distinct labels than this is almost always an id or a measurement given as the
target; the multinomial map would hold rows × classes values per task."""


def reduce_labels(partials: Sequence[Partial]) -> Partial:
    """Sorted union of the partitions' labels (exact, order-independent)."""
    labels = np.unique(np.concatenate([np.asarray(p["labels"]) for p in partials]))
    if labels.dtype.kind == "f" and not np.all(labels == np.round(labels)):
        example = labels[labels != np.round(labels)][0].item()
        raise ValueError(
            f"y (the target) holds non-integer values such as {example!r}: a classifier "
            "needs class labels (for a continuous target, use linear regression)"
        )
    if len(labels) > MAX_CLASSES:
        raise ValueError(
            f"y (the target) holds {len(labels)} distinct values, more than the {MAX_CLASSES} "
            "classes a classifier here takes: is the target an id or a measurement? (for a "
            "continuous target, use linear regression)"
        )
    return {"labels": labels, "n": int_sum([p["n"] for p in partials])}


def encode_labels(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Indices of y's labels in the sorted ``classes``; unknown labels are an error.

    Two classes (the usual case) take two comparisons instead of a binary search
    per row: a tenth of the cost, paid by every map task of every round.
    """
    if len(classes) == 2:
        pos = y == classes[1]
        bad = ~(pos | (y == classes[0]))
        idx = pos.astype(np.intp)
    else:
        idx = np.minimum(np.searchsorted(classes, y), len(classes) - 1)
        bad = classes[idx] != y
    if np.any(bad):
        raise ValueError(
            f"label {y[np.argmax(bad)].item()!r} was not seen when the classes were found"
        )
    return idx


def require_y(y: Any, name: str) -> np.ndarray:
    """y as labels; a supervised algorithm without a target is a usage error.

    For the algorithms' own steps, whose rows were refused upstream if a label was
    missing (a map task's verified partition, an estimator's checked y).
    """
    if y is None:
        raise ValueError(f"algorithm {name!r} is supervised: y (the target) is required")
    return as_labels(y, checked=True)


# --- inputs and hyperparameters -------------------------------------------------


def as_features(X: Any, n_features: int | None = None) -> np.ndarray:
    """X as a 2-d float64 array, checked against the model's feature count."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be two-dimensional, got shape {X.shape}")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features, the model expects {n_features}")
    return X


def _shown(value: Any) -> str:
    """A hyperparameter's value as given: JSON, as `--param KEY=VALUE` takes it."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):  # not JSON (a library caller's object)
        return repr(value)


def check_hyper(
    name: str,
    hyper: Mapping[str, Any] | None,
    defaults: Mapping[str, Any],
    words: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Defaults overlaid with ``hyper``, with the same types; unknown names are an error.

    ``words``: the words a hyperparameter also takes, and the value each stands for
    (k-means' ``n_init="auto"``, as in scikit-learn)."""
    hyper = dict(hyper or {})
    unknown = sorted(map(str, set(hyper) - set(defaults)))
    if unknown:
        raise ValueError(
            f"unknown hyperparameter{'s' * (len(unknown) > 1)} {', '.join(unknown)} for "
            f"{name}; valid: {', '.join(sorted(defaults))}"
        )
    out = dict(defaults)
    for key, value in hyper.items():
        kind = type(defaults[key])
        said = (words or {}).get(key, {})
        if isinstance(value, str) and value in said:
            value = said[value]
        try:
            if kind is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            if isinstance(value, bool) and kind is not bool:  # true is no count: a slip
                raise ValueError
            out[key] = kind(value)
        except (TypeError, ValueError):
            what = "an integer" if kind is int else "a number"
            what += "".join(f' or "{w}"' for w in said)
            raise ValueError(
                f"hyperparameter {key} of {name} must be {what}, got {_shown(value)}"
            ) from None
    return out


def copy_params(params: Params) -> Params:
    """A deep copy, so ``update`` never mutates its input."""
    return {k: np.array(v, copy=True) for k, v in params.items()}
