"""k-means: Lloyd's algorithm, initialised by k-means++ on a seeded, recorded sample.

Phases kept in ``params["phase"]``:

0. sample — each map returns a seeded random sample of its partition's rows
   (a prefix of a random permutation drawn from ``default_rng([seed, partition,
   0])``), its row count and its feature moments; the reduce concatenates the
   samples in partition order, so the sample is itself an artifact the runtime
   records. The update takes from each partition a share of the sample
   proportional to its rows, runs greedy k-means++ (scikit-learn's, with
   ``n_local_trials = 2 + log k``) ``n_init`` times with seeded generators,
   polishes each by Lloyd on the sample and keeps the lowest sample inertia.
1. lloyd — each map returns per-cluster sums and counts and the inertia at the
   current centres; the update moves the centres (an empty cluster keeps its
   centre) and stops when the squared shift is ≤ ``tol * mean feature
   variance`` (scikit-learn's rule) or after ``max_iter`` moves.
2. final — one more pass scores the final centres (skipped when they did not
   move), so ``params["inertia"]`` belongs to ``params["centers"]``.
3. done.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import _sums
from .base import MapContext, Params, Partial, Update

SAMPLE, LLOYD, FINAL, DONE = 0, 1, 2, 3
MIN_SAMPLE = 4096
CHUNK = 1 << 22  # distance-matrix entries per block


def default_sample_size(k: int) -> int:
    """Rows sampled for the initialisation: max(10·k·ln k, 4096)."""
    return max(math.ceil(10 * k * math.log(max(k, 2))), MIN_SAMPLE)


def assign(X: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre per row and the exact squared distance to it.

    The argmin uses the expanded form ||c||² - 2 x·c; the distance is then
    recomputed as ||x - c||², which does not cancel for data far from the origin.
    """
    n, k = len(X), len(centers)
    labels = np.empty(n, dtype=np.intp)
    cc = np.einsum("ij,ij->i", centers, centers)
    step = max(1, CHUNK // max(k, 1))
    for a in range(0, n, step):
        labels[a : a + step] = np.argmin(cc - 2.0 * (X[a : a + step] @ centers.T), axis=1)
    diff = X - centers[labels]
    return labels, np.einsum("ij,ij->i", diff, diff)


def cluster_sums(X: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster row sums (k, d) and counts (k,)."""
    counts = np.bincount(labels, minlength=k).astype(np.int64)
    onehot = (labels[:, None] == np.arange(k)).astype(np.float64)
    return onehot.T @ X, counts


def kmeans_plusplus(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ (as scikit-learn): each new centre is the best of a few D²-draws."""
    n = len(X)
    trials = 2 + int(np.log(k))
    centers = np.empty((k, X.shape[1]))
    centers[0] = X[rng.integers(n)]
    closest = np.einsum("ij,ij->i", X - centers[0], X - centers[0])
    pot = float(closest.sum())
    for c in range(1, k):
        draws = rng.uniform(size=trials) * pot
        ids = np.minimum(np.searchsorted(np.cumsum(closest), draws), n - 1)
        diff = X[None, :, :] - X[ids][:, None, :]
        cand = np.minimum(closest, np.einsum("tij,tij->ti", diff, diff))
        pots = cand.sum(axis=1)
        best = int(np.argmin(pots))
        pot, closest = float(pots[best]), cand[best]
        centers[c] = X[ids[best]]
    return centers


def lloyd(
    X: np.ndarray, centers: np.ndarray, max_iter: int, tol: float
) -> tuple[np.ndarray, float]:
    """Plain in-memory Lloyd (used on the sample); returns centres and their inertia."""
    k = len(centers)
    for _ in range(max_iter):
        labels, _ = assign(X, centers)
        sums, counts = cluster_sums(X, labels, k)
        new = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centers)
        shift = float(np.sum((new - centers) ** 2))
        centers = new
        if shift <= tol:
            break
    return centers, float(assign(X, centers)[1].sum())


HYPER_WORDS: Mapping[str, Mapping[str, int]] = {"n_init": {"auto": 1}}
"""scikit-learn's default since 1.4, ``n_init="auto"``: one k-means++ run."""


class KMeans:
    """k-means as map/reduce/update; see the module docstring."""

    name = "kmeans"
    task = "clustering"
    metric_name = "inertia"
    setup_rounds = 0  # the sample round already fits centres (k-means++, Lloyd on the sample)
    defaults: Mapping[str, Any] = {
        "k": 8,
        "max_iter": 300,
        "tol": 1e-4,
        "n_init": 3,
        "sample_size": 0,  # 0: default_sample_size(k)
    }

    def initial_params(self, n_features: int, hyper: Mapping[str, Any], seed: int) -> Params:
        h = _sums.check_hyper(self.name, hyper, self.defaults, HYPER_WORDS)
        if h["k"] < 1 or h["max_iter"] < 1 or h["n_init"] < 1 or h["sample_size"] < 0:
            raise ValueError("kmeans: k, max_iter and n_init must be ≥ 1, sample_size ≥ 0")
        if not h["tol"] >= 0:
            raise ValueError("kmeans: tol must be ≥ 0")
        return {
            "phase": np.int64(SAMPLE),
            "k": np.int64(h["k"]),
            "max_iter": np.int64(h["max_iter"]),
            "tol": np.float64(h["tol"]),
            "n_init": np.int64(h["n_init"]),
            "sample_size": np.int64(h["sample_size"] or default_sample_size(h["k"])),
            "seed": np.int64(seed),
            "n_features": np.int64(n_features),
            "n_samples": np.int64(0),
            "tol_abs": np.float64(0.0),
            "centers": np.zeros((h["k"], n_features)),
            "inertia": np.float64(0.0),
            "shift": np.float64(0.0),
            "iteration": np.int64(0),
        }

    def map(self, params: Params, X: np.ndarray, y: np.ndarray | None, ctx: MapContext) -> Partial:
        X = _sums.as_features(X, int(params["n_features"]))
        phase = int(params["phase"])
        if phase == SAMPLE:
            rng = np.random.default_rng([ctx.seed, ctx.partition, 0])
            take = min(len(X), int(params["sample_size"]))
            rows = rng.choice(len(X), size=take, replace=False) if take else np.zeros(0, int)
            n, mean, m2 = _sums.moments(X)
            return {
                "sample": X[rows],
                "taken": np.array([take], dtype=np.int64),
                "rows": np.array([len(X)], dtype=np.int64),
                "n": n,
                "mean": mean,
                "m2": m2,
            }
        if phase not in (LLOYD, FINAL):
            raise ValueError("kmeans: the model is already fitted; nothing to map")
        centers = params["centers"]
        labels, d2 = assign(X, centers)
        sums, counts = cluster_sums(X, labels, len(centers))
        return {"sums": sums, "counts": counts, "inertia": np.float64(d2.sum())}

    def reduce(self, partials: Sequence[Partial]) -> Partial:
        if "sample" in partials[0]:
            n, mean, m2 = _sums.merge_moments(
                [p["n"] for p in partials],
                [p["mean"] for p in partials],
                [p["m2"] for p in partials],
            )
            return {
                "sample": np.concatenate([p["sample"] for p in partials]),
                "taken": np.concatenate([p["taken"] for p in partials]),
                "rows": np.concatenate([p["rows"] for p in partials]),
                "n": n,
                "mean": mean,
                "m2": m2,
            }
        return {
            "sums": _sums.compensated_sum([p["sums"] for p in partials]),
            "counts": _sums.int_sum([p["counts"] for p in partials]),
            "inertia": _sums.compensated_sum([p["inertia"] for p in partials]),
        }

    def update(self, params: Params, reduced: Partial) -> Update:
        p = _sums.copy_params(params)
        phase = int(p["phase"])
        if phase == SAMPLE:
            return self._initialise(p, reduced)
        if phase not in (LLOYD, FINAL):
            raise ValueError("kmeans: the model is already fitted")
        counts = np.asarray(reduced["counts"], dtype=np.int64)
        if int(counts.sum()) != int(p["n_samples"]):
            raise ValueError(
                f"kmeans: {int(counts.sum())} rows reduced, {int(p['n_samples'])} expected"
            )
        inertia = float(reduced["inertia"])
        p["inertia"] = np.float64(inertia)
        if phase == FINAL:  # entered when the centres settled or at max_iter
            p["phase"] = np.int64(DONE)
            settled = float(p["shift"]) <= float(p["tol_abs"])
            return Update(p, self._metrics(p), done=True, converged=settled)
        old = p["centers"]
        sums = np.asarray(reduced["sums"])
        new = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], old)
        shift = _sums.fdot(new - old, new - old)
        p.update(centers=new, shift=np.float64(shift), iteration=p["iteration"] + 1)
        if shift == 0:  # nothing moved: the inertia just computed is the final one
            p["phase"] = np.int64(DONE)
            return Update(p, self._metrics(p), done=True)
        if shift <= float(p["tol_abs"]) or int(p["iteration"]) >= int(p["max_iter"]):
            p["phase"] = np.int64(FINAL)
        return Update(p, self._metrics(p))

    def _initialise(self, p: Params, reduced: Partial) -> Update:
        k = int(p["k"])
        n = int(reduced["n"])
        if n < k:
            raise ValueError(f"kmeans: k={k} clusters but only {n} rows")
        sample = self._proportional_sample(p, reduced)
        tol_abs = float(p["tol"]) * float(np.mean(np.asarray(reduced["m2"]) / n))
        best: tuple[float, np.ndarray] | None = None
        for trial in range(int(p["n_init"])):
            rng = np.random.default_rng([int(p["seed"]), 0x6B6D, trial])
            centers, inertia = lloyd(
                sample, kmeans_plusplus(sample, k, rng), int(p["max_iter"]), tol_abs
            )
            if best is None or inertia < best[0]:
                best = (inertia, centers)
        assert best is not None
        p.update(
            phase=np.int64(LLOYD),
            n_samples=np.int64(n),
            tol_abs=np.float64(tol_abs),
            centers=best[1],
        )
        return Update(p, {"sample_rows": float(len(sample)), "sample_inertia": best[0]})

    @staticmethod
    def _proportional_sample(p: Params, reduced: Partial) -> np.ndarray:
        """Each partition's share of the sample in proportion to its rows (largest remainder)."""
        rows = np.asarray(reduced["rows"], dtype=np.int64)
        taken = np.asarray(reduced["taken"], dtype=np.int64)
        n = int(rows.sum())
        size = min(int(p["sample_size"]), n)
        quota = [size * int(r) for r in rows]  # shares times n, in exact integers
        share = [q // n for q in quota]
        order = sorted(range(len(rows)), key=lambda i: (-(quota[i] % n), i))
        for i in order[: size - sum(share)]:
            share[i] += 1
        starts = np.concatenate([[0], np.cumsum(taken)[:-1]])
        sample = np.asarray(reduced["sample"])
        parts = [sample[s : s + min(c, t)] for s, c, t in zip(starts, share, taken, strict=True)]
        return np.concatenate(parts)

    @staticmethod
    def _metrics(p: Params) -> dict[str, float]:
        return {
            "inertia": float(p["inertia"]),
            "shift": float(p["shift"]),
            "iteration": float(p["iteration"]),
        }

    # --- using the model --------------------------------------------------------

    def predict(self, params: Params, X: np.ndarray) -> np.ndarray:
        """Index of the nearest centre for each row."""
        if int(params["phase"]) == SAMPLE:
            raise ValueError("kmeans: the model has not been fitted")
        return assign(_sums.as_features(X, int(params["n_features"])), params["centers"])[0]

    def score(self, params: Params, X: np.ndarray, y: np.ndarray | None = None) -> float:
        """Inertia: the sum of squared distances to the nearest centre (lower is better)."""
        X = _sums.as_features(X, int(params["n_features"]))
        return float(assign(X, params["centers"])[1].sum())


ALGORITHM = KMeans()
