"""Linear and ridge regression by the normal equations, in one map-reduce pass.

Each partition returns its row count, the mean of ``[X, y]`` and the centred
scatter matrix of ``[X, y]``; the reduce merges them in partition order
(compensated Chan update), which is the exact centred X'X, X'y and y'y of all
rows without the cancellation that raw sums of squares suffer when features
have large means. The update solves

    (Xc'Xc + alpha I) coef = Xc'yc,    intercept = mean(y) - mean(X) · coef

— ``sklearn.linear_model.Ridge(alpha)``; with ``alpha=0`` the minimum-norm
least-squares solution of ``LinearRegression``. Phases: 0 = one pass, 1 = done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import _sums
from .base import MapContext, Params, Partial, Update

PASS, DONE = 0, 1


def _targets(y: Any, n_rows: int | None = None) -> np.ndarray:
    if y is None:
        raise ValueError("algorithm 'linear' is supervised: y (the target) is required")
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"linear: y must be one-dimensional, got shape {y.shape}")
    if n_rows is not None and len(y) != n_rows:
        raise ValueError(f"linear: X has {n_rows} rows but y has {len(y)}")
    return y


class Linear:
    """Least squares with an unpenalised intercept; see the module docstring."""

    name = "linear"
    task = "regression"
    metric_name = "r2"
    setup_rounds = 0  # one pass fits the model
    defaults: Mapping[str, Any] = {"alpha": 0.0}

    def initial_params(self, n_features: int, hyper: Mapping[str, Any], seed: int) -> Params:
        h = _sums.check_hyper(self.name, hyper, self.defaults)
        if not h["alpha"] >= 0:
            raise ValueError("linear: alpha must be ≥ 0")
        return {
            "phase": np.int64(PASS),
            "alpha": np.float64(h["alpha"]),
            "n_features": np.int64(n_features),
            "n_samples": np.int64(0),
            "coef": np.zeros(n_features),
            "intercept": np.float64(0.0),
            "r2": np.float64(0.0),
        }

    def map(self, params: Params, X: np.ndarray, y: np.ndarray | None, ctx: MapContext) -> Partial:
        if int(params["phase"]) != PASS:
            raise ValueError("linear: the model is already fitted; nothing to map")
        X = _sums.as_features(X, int(params["n_features"]))
        Z = np.column_stack([X, _targets(y, len(X))])
        n, mean, scatter = _sums.moments(Z, full=True)
        return {"n": n, "mean": mean, "scatter": scatter}

    def reduce(self, partials: Sequence[Partial]) -> Partial:
        n, mean, scatter = _sums.merge_moments(
            [p["n"] for p in partials],
            [p["mean"] for p in partials],
            [p["scatter"] for p in partials],
        )
        return {"n": n, "mean": mean, "scatter": scatter}

    def update(self, params: Params, reduced: Partial) -> Update:
        if int(params["phase"]) != PASS:
            raise ValueError("linear: the model is already fitted")
        p = _sums.copy_params(params)
        n = int(reduced["n"])
        if n == 0:
            raise ValueError("linear: no rows to fit")
        d = int(p["n_features"])
        mean, S = np.asarray(reduced["mean"]), np.asarray(reduced["scatter"])
        Sxx, Sxy, Syy = S[:d, :d], S[:d, d], float(S[d, d])
        alpha = float(p["alpha"])
        if alpha > 0:
            coef = np.linalg.solve(Sxx + alpha * np.eye(d), Sxy)
        else:
            coef = np.linalg.lstsq(Sxx, Sxy, rcond=None)[0]
        intercept = float(mean[d]) - _sums.fdot(mean[:d], coef)
        ss_res = max(Syy - 2.0 * _sums.fdot(coef, Sxy) + _sums.fdot(coef, Sxx @ coef), 0.0)
        r2 = _r2(ss_res, Syy)
        p.update(
            phase=np.int64(DONE),
            n_samples=np.int64(n),
            coef=coef,
            intercept=np.float64(intercept),
            r2=np.float64(r2),
        )
        return Update(p, {"loss": ss_res / n, "r2": r2}, done=True)

    def predict(self, params: Params, X: np.ndarray) -> np.ndarray:
        X = _sums.as_features(X, int(params["n_features"]))
        return X @ params["coef"] + params["intercept"]

    def score(self, params: Params, X: np.ndarray, y: np.ndarray | None) -> float:
        """R², as ``sklearn.metrics.r2_score``."""
        y = _targets(y, len(X))
        resid = y - self.predict(params, X)
        return _r2(float(resid @ resid), float(np.sum((y - y.mean()) ** 2)))


def _r2(ss_res: float, ss_tot: float) -> float:
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else 0.0
    return 1.0 - ss_res / ss_tot


ALGORITHM = Linear()
