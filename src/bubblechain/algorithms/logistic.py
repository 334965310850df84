"""L2-penalised logistic regression (binary and multinomial) by full-batch L-BFGS.

The objective is scikit-learn's (≥ 1.5, ``LogisticRegression(C, fit_intercept=True)``)::

    sum_i log_loss_i(W, b) + 0.5 / C * ||W||²      (intercepts b not penalised)

with one coefficient row for two classes (the second class is positive) and
one row per class (symmetric softmax) for more. We minimise it divided by the
row count n, which has the same minimiser and makes ``tol`` mean what
scikit-learn's ``tol`` (L-BFGS ``gtol``) means: the largest gradient component.

Every map-reduce round evaluates loss and gradient at ``params["x"]``; the
L-BFGS two-loop recursion and an Armijo backtracking line search run in
``update`` as an ask/tell state machine, so the whole optimiser state — the
current iterate, trial step, curvature pairs — is in ``params`` and an
auditor's replay of ``update`` gives the same bits.

Raw features differ in scale by orders of magnitude (months, currency, 0/1
flags) and sit far from the origin, which makes the objective badly
conditioned: plain L-BFGS then needs hundreds of rounds, each a full pass over
the data. So the optimiser works in preconditioned coordinates ``u``, an exact
change of variables, not a change of objective::

    coef = u_coef / scale[:d],    intercept = u_intercept / scale[d] - coef · shift

``shift`` is the features' mean; ``scale`` is the square root of the diagonal
of the objective's Hessian at the start point (all-zero coefficients, where
every class has probability 1/K) in centred coordinates: ``c·var_j + λ`` for a
feature, ``c`` for an intercept, with ``c = (1 - 1/K)/K`` and ``λ = 1/(C n)``.
So in ``u`` that Hessian has unit diagonal whatever the features' units, and a
tiny-variance feature is scaled by its penalty rather than blown up. The labels
round gathers the moments at no extra pass. Maps always evaluate the original
objective at the original point ``x``; the update pulls the gradient back
(``g_u = Mᵀ g``), steps in ``u`` and maps the new point forward. Convergence is
still judged on the original gradient, so ``tol`` keeps scikit-learn's meaning.
Phases:

0. labels: map returns the partition's distinct labels and feature moments,
   reduce their union and the compensated merge of the moments;
1. optimise: map returns the summed loss and gradient at ``x``;
2. done: ``x`` is the final point.

The labels round and the first optimise round (the objective at the all-zero
starting point, which gives the first direction) cannot move the model, so
they are the algorithm's two ``setup_rounds``: the runtime runs them on top of
``--iterations``, and N iterations are N evaluations of new points — one
iteration is already one L-BFGS step, not the untrained starting point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import _sums
from .base import MapContext, Params, Partial, Update

LABELS, OPTIMISE, DONE = 0, 1, 2
MEMORY = 10  # curvature pairs kept (scikit-learn/scipy default maxcor)
MAX_LS = 50  # backtracking steps per line search (scikit-learn's maxls)
ARMIJO = 1e-4  # sufficient-decrease constant c1
FTOL = 64 * np.finfo(float).eps  # relative decrease below which we stop (as scikit-learn)
STATUS = "<U40"


class Logistic:
    """Logistic regression as map/reduce/update; see the module docstring."""

    name = "logistic"
    task = "classification"
    metric_name = "accuracy"
    setup_rounds = 2  # the labels round and the objective at the starting point
    defaults: Mapping[str, Any] = {"C": 1.0, "max_iter": 100, "tol": 1e-4}

    def initial_params(self, n_features: int, hyper: Mapping[str, Any], seed: int) -> Params:
        h = _sums.check_hyper(self.name, hyper, self.defaults)
        if not h["C"] > 0:
            raise ValueError("logistic: C must be positive")
        if h["max_iter"] < 1 or not h["tol"] >= 0:
            raise ValueError("logistic: max_iter must be ≥ 1 and tol ≥ 0")
        empty = np.zeros(0)
        return {
            "phase": np.int64(LABELS),
            "status": np.array("finding classes", dtype=STATUS),
            "C": np.float64(h["C"]),
            "tol": np.float64(h["tol"]),
            "max_iter": np.int64(h["max_iter"]),
            "n_features": np.int64(n_features),
            "classes": empty,
            "n_samples": np.int64(0),
            "shift": np.zeros(n_features),  # feature means (found in the labels round)
            "scale": np.ones(n_features + 1),  # per coefficient, then the intercept
            "x": empty,  # the point the next map evaluates (original coordinates)
            "u": empty,  # the same point in preconditioned coordinates
            "x_k": empty,  # current iterate, its objective and (original) gradient
            "u_k": empty,
            "f_k": np.float64(0.0),
            "g_k": empty,
            "gu_k": empty,  # the gradient in preconditioned coordinates
            "direction": empty,  # in preconditioned coordinates
            "gd": np.float64(0.0),  # g_k · direction
            "alpha": np.float64(0.0),  # trial step along direction
            "ls_count": np.int64(0),
            "S": np.zeros((MEMORY, 0)),  # steps, oldest first
            "Y": np.zeros((MEMORY, 0)),  # gradient changes
            "mem": np.int64(0),  # valid rows of S and Y
            "iteration": np.int64(0),
            "evaluations": np.int64(0),
        }

    # --- map / reduce -----------------------------------------------------------

    def map(self, params: Params, X: np.ndarray, y: np.ndarray | None, ctx: MapContext) -> Partial:
        phase = int(params["phase"])
        d = int(params["n_features"])
        X = _sums.as_features(X, d)
        if phase == LABELS:
            _, mean, m2 = _sums.moments(X)
            return {**_sums.map_labels(y, self.name), "x_mean": mean, "x_m2": m2}
        if phase != OPTIMISE:
            raise ValueError("logistic: the model is already fitted; nothing to map")
        classes = params["classes"]
        idx = _sums.encode_labels(_sums.require_y(y, self.name), classes)
        W = params["x"].reshape(-1, d + 1)
        if len(classes) == 2:
            # One pass per array, in place where it can be: this runs every round.
            z = X @ W[0, :d]
            z += W[0, d]
            pos = idx == 1
            e = np.abs(z)
            np.negative(e, out=e)
            np.exp(e, out=e)  # exp(-|z|): never overflows
            # Row loss log(1 + exp(z)) - y z, a sum of non-negative terms.
            t = np.log1p(e)
            t += np.maximum(z, 0.0)
            t -= np.where(pos, z, 0.0)
            loss = np.sum(t)
            # sigmoid(z) = 1 / (1 + e) for z >= 0, e / (1 + e) below.
            r = np.where(z >= 0, 1.0, e)
            e += 1.0
            r /= e
            r -= pos
            grad = np.concatenate([r @ X, [r.sum()]])[None, :]
        else:
            Z = X @ W[:, :d].T + W[:, d]
            rows = np.arange(len(idx))
            zmax = Z.max(axis=1, keepdims=True)
            E = np.exp(Z - zmax)
            s = E.sum(axis=1, keepdims=True)
            loss = np.sum(np.log(s) + zmax) - np.sum(Z[rows, idx])
            R = E / s
            R[rows, idx] -= 1.0
            grad = np.concatenate([R.T @ X, R.sum(axis=0)[:, None]], axis=1)
        return {"loss": np.float64(loss), "grad": grad, "n": np.int64(len(idx))}

    def reduce(self, partials: Sequence[Partial]) -> Partial:
        if "labels" in partials[0]:
            _, mean, m2 = _sums.merge_moments(
                [p["n"] for p in partials],
                [p["x_mean"] for p in partials],
                [p["x_m2"] for p in partials],
            )
            return {**_sums.reduce_labels(partials), "x_mean": mean, "x_m2": m2}
        return {
            "loss": _sums.compensated_sum([p["loss"] for p in partials]),
            "grad": _sums.compensated_sum([p["grad"] for p in partials]),
            "n": _sums.int_sum([p["n"] for p in partials]),
        }

    # --- update: the L-BFGS state machine ---------------------------------------

    def update(self, params: Params, reduced: Partial) -> Update:
        p = _sums.copy_params(params)
        phase = int(p["phase"])
        if phase == LABELS:
            return self._start(p, reduced)
        if phase != OPTIMISE:
            raise ValueError("logistic: the model is already fitted")
        if int(reduced["n"]) != int(p["n_samples"]):
            raise ValueError(
                f"logistic: {int(reduced['n'])} rows reduced, {int(p['n_samples'])} expected"
            )
        f, g = self._objective(p, reduced)
        p["evaluations"] = p["evaluations"] + 1
        if int(p["evaluations"]) == 1:
            return self._accept(p, f, g, first=True)
        if math.isfinite(f) and f <= float(p["f_k"]) + ARMIJO * float(p["alpha"]) * float(p["gd"]):
            return self._accept(p, f, g, first=False)
        return self._backtrack(p, f)

    def _start(self, p: Params, reduced: Partial) -> Update:
        classes = np.asarray(reduced["labels"])
        if len(classes) < 2:
            raise ValueError(
                f"logistic: needs at least two classes in y, found {len(classes)}: "
                f"{classes.tolist()}"
            )
        k = 1 if len(classes) == 2 else len(classes)
        nvar = k * (int(p["n_features"]) + 1)
        n = int(reduced["n"])
        d = int(p["n_features"])
        # Any shift and positive scale give the same minimiser; these only set the
        # conditioning. Without moments (a hand-built reduce) features are taken as
        # standardised; non-finite moments fall back to that too.
        shift = np.asarray(reduced.get("x_mean", np.zeros(d)), dtype=np.float64)
        var = np.asarray(reduced.get("x_m2", np.full(d, n)), dtype=np.float64) / max(n, 1)
        shift = np.where(np.isfinite(shift), shift, 0.0)
        var = np.where(np.isfinite(var), var, 1.0)
        c = (1.0 - 1.0 / len(classes)) / len(classes)
        lam = 1.0 / (float(p["C"]) * max(n, 1))
        scale = np.sqrt(np.append(c * var + lam, c))
        p.update(
            phase=np.int64(OPTIMISE),
            status=np.array("optimising", dtype=STATUS),
            classes=classes,
            n_samples=np.int64(n),
            shift=shift,
            scale=scale,
            x=np.zeros(nvar),
            u=np.zeros(nvar),
            S=np.zeros((MEMORY, nvar)),
            Y=np.zeros((MEMORY, nvar)),
        )
        return Update(p, {"n_samples": float(reduced["n"]), "classes": float(len(classes))})

    def _objective(self, p: Params, reduced: Partial) -> tuple[float, np.ndarray]:
        """Objective / n and its gradient at p["x"], penalty added here (not in map)."""
        d = int(p["n_features"])
        n = float(p["n_samples"])
        lam = 1.0 / (float(p["C"]) * n)
        W = p["x"].reshape(-1, d + 1)
        coef = W[:, :d]
        f = float(reduced["loss"]) / n + 0.5 * lam * _sums.fdot(coef, coef)
        G = np.asarray(reduced["grad"], dtype=np.float64) / n
        G[:, :d] += lam * coef
        if G.shape[0] > 2:
            # The loss is invariant to shifting all intercepts together, so the
            # exact gradient has no component along that direction: drop rounding.
            G[:, d] -= math.fsum(G[:, d].tolist()) / G.shape[0]
        return f, G.ravel()

    # --- the change of variables ------------------------------------------------

    @staticmethod
    def _to_x(p: Params, u: np.ndarray) -> np.ndarray:
        """Original coordinates of the preconditioned point ``u`` (BLAS-free, replayable)."""
        d = int(p["n_features"])
        U = u.reshape(-1, d + 1)
        W = np.empty_like(U)
        scale = p["scale"]
        W[:, :d] = U[:, :d] / scale[:d]
        for r in range(W.shape[0]):
            W[r, d] = U[r, d] / scale[d] - _sums.fdot(W[r, :d], p["shift"])
        return W.ravel()

    @staticmethod
    def _to_u_grad(p: Params, g: np.ndarray) -> np.ndarray:
        """The gradient in preconditioned coordinates: Mᵀ g for x = M u (elementwise)."""
        d = int(p["n_features"])
        G = g.reshape(-1, d + 1)
        Gu = np.empty_like(G)
        scale = p["scale"]
        Gu[:, :d] = (G[:, :d] - G[:, d : d + 1] * p["shift"]) / scale[:d]
        Gu[:, d] = G[:, d] / scale[d]
        return Gu.ravel()

    # --- L-BFGS in preconditioned coordinates -----------------------------------

    def _accept(self, p: Params, f: float, g: np.ndarray, first: bool) -> Update:
        x, u = p["x"], p["u"]
        gu = self._to_u_grad(p, g)
        if not first:
            s = u - p["u_k"]
            yv = gu - p["gu_k"]
            sy = _sums.fdot(s, yv)
            if sy > np.finfo(float).eps * _sums.fdot(yv, yv):
                self._remember(p, s, yv)
            p["iteration"] = p["iteration"] + 1
        f_prev = float(p["f_k"])
        p.update(x_k=x.copy(), u_k=u.copy(), f_k=np.float64(f), g_k=g, gu_k=gu)
        gmax = float(np.max(np.abs(g)))
        if gmax <= float(p["tol"]):
            return self._finish(p, "converged: gradient ≤ tol")
        if not first and (f_prev - f) <= FTOL * max(abs(f_prev), abs(f), 1.0):
            return self._finish(p, "converged: relative decrease ≤ ftol")
        if int(p["iteration"]) >= int(p["max_iter"]):
            return self._finish(p, "stopped: max_iter reached")
        self._new_direction(p)
        return Update(p, self._metrics(p))

    def _backtrack(self, p: Params, f: float) -> Update:
        alpha, gd, f_k = float(p["alpha"]), float(p["gd"]), float(p["f_k"])
        p["ls_count"] = p["ls_count"] + 1
        denom = 2.0 * (f - f_k - gd * alpha)
        trial = -gd * alpha * alpha / denom if math.isfinite(f) and denom > 0 else 0.5 * alpha
        alpha = min(max(trial, 0.1 * alpha), 0.5 * alpha)
        u_new = p["u_k"] + alpha * p["direction"]
        if int(p["ls_count"]) > MAX_LS or np.array_equal(u_new, p["u_k"]):
            if int(p["mem"]) == 0:
                return self._finish(p, "stopped: line search failed")
            p["mem"] = np.int64(0)  # curvature pairs misled us: restart from steepest descent
            self._new_direction(p)
            return Update(p, self._metrics(p))
        p.update(alpha=np.float64(alpha), u=u_new, x=self._to_x(p, u_new))
        return Update(p, self._metrics(p))

    def _remember(self, p: Params, s: np.ndarray, yv: np.ndarray) -> None:
        m = int(p["mem"])
        if m == MEMORY:
            p["S"] = np.concatenate([p["S"][1:], s[None, :]])
            p["Y"] = np.concatenate([p["Y"][1:], yv[None, :]])
        else:
            p["S"][m] = s
            p["Y"][m] = yv
            p["mem"] = np.int64(m + 1)

    def _new_direction(self, p: Params) -> None:
        """Two-loop recursion in ``u`` → direction; first step 1/||g_u|| with no memory."""
        g = p["gu_k"]
        m = int(p["mem"])
        S, Y = p["S"], p["Y"]
        q = g.copy()
        rho = [1.0 / _sums.fdot(Y[i], S[i]) for i in range(m)]
        a = [0.0] * m
        for i in reversed(range(m)):
            a[i] = rho[i] * _sums.fdot(S[i], q)
            q = q - a[i] * Y[i]
        if m:
            q = q * (_sums.fdot(S[m - 1], Y[m - 1]) / _sums.fdot(Y[m - 1], Y[m - 1]))
        for i in range(m):
            b = rho[i] * _sums.fdot(Y[i], q)
            q = q + (a[i] - b) * S[i]
        direction = -q
        gd = _sums.fdot(g, direction)
        if m and not gd < 0:  # not a descent direction: forget the memory
            p["mem"] = np.int64(0)
            direction, gd = -g, -_sums.fdot(g, g)
            m = 0
        alpha = 1.0 if m else 1.0 / math.sqrt(_sums.fdot(g, g))
        u = p["u_k"] + alpha * direction
        p.update(
            direction=direction,
            gd=np.float64(gd),
            alpha=np.float64(alpha),
            ls_count=np.int64(0),
            u=u,
            x=self._to_x(p, u),
        )

    def _finish(self, p: Params, status: str) -> Update:
        p.update(
            phase=np.int64(DONE),
            status=np.array(status, dtype=STATUS),
            x=p["x_k"].copy(),
            u=p["u_k"].copy(),
        )
        return Update(p, self._metrics(p), done=True, converged=status.startswith("converged"))

    @staticmethod
    def _metrics(p: Params) -> dict[str, float]:
        return {
            "loss": float(p["f_k"]),
            "grad_max": float(np.max(np.abs(p["g_k"]))),
            "iteration": float(p["iteration"]),
            "evaluations": float(p["evaluations"]),
        }

    # --- using the model --------------------------------------------------------

    @staticmethod
    def coef_intercept(params: Params) -> tuple[np.ndarray, np.ndarray]:
        """``coef_`` (rows, features) and ``intercept_`` (rows,) as scikit-learn lays them out."""
        d = int(params["n_features"])
        if int(params["phase"]) == LABELS or params["x_k"].size == 0:
            raise ValueError("logistic: the model has not been fitted")
        W = params["x_k"].reshape(-1, d + 1)
        return W[:, :d].copy(), W[:, d].copy()

    def decision_function(self, params: Params, X: np.ndarray) -> np.ndarray:
        coef, intercept = self.coef_intercept(params)
        scores = _sums.as_features(X, coef.shape[1]) @ coef.T + intercept
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict(self, params: Params, X: np.ndarray) -> np.ndarray:
        scores = self.decision_function(params, X)
        idx = (scores > 0).astype(np.intp) if scores.ndim == 1 else scores.argmax(axis=1)
        return params["classes"][idx]

    def predict_proba(self, params: Params, X: np.ndarray) -> np.ndarray:
        scores = self.decision_function(params, X)
        if scores.ndim == 1:
            e = np.exp(-np.abs(scores))
            p1 = np.where(scores >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
            return np.stack([1.0 - p1, p1], axis=1)
        E = np.exp(scores - scores.max(axis=1, keepdims=True))
        return E / E.sum(axis=1, keepdims=True)

    def score(self, params: Params, X: np.ndarray, y: np.ndarray | None) -> float:
        """Accuracy, as scikit-learn's classifiers score."""
        y = _sums.require_y(y, self.name)
        return float(np.mean(self.predict(params, X) == y))


ALGORITHM = Logistic()
