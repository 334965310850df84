"""Gaussian naive Bayes from one pass of per-class counts, means and squared deviations.

Phases: 0 = labels (map: the partition's distinct labels; reduce: their sorted
union); 1 = statistics (map: per class the row count, mean and sum of squared
deviations from the partition's class mean; reduce: a compensated Chan merge
in partition order — exact per-class means and variances without the
cancellation of raw sums of squares); 2 = done. The update reproduces
``sklearn.naive_bayes.GaussianNB``: ``var_ = class variance + epsilon`` with
``epsilon = var_smoothing * max(feature variance over all rows)``, priors from
class counts; prediction uses scikit-learn's joint log-likelihood formula.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import _sums
from .base import MapContext, Params, Partial, Update

LABELS, STATS, DONE = 0, 1, 2


class GaussianNaiveBayes:
    """Gaussian naive Bayes; see the module docstring."""

    name = "naive-bayes"
    task = "classification"
    metric_name = "accuracy"
    defaults: Mapping[str, Any] = {"var_smoothing": 1e-9}

    def initial_params(self, n_features: int, hyper: Mapping[str, Any], seed: int) -> Params:
        h = _sums.check_hyper(self.name, hyper, self.defaults)
        if not h["var_smoothing"] >= 0:
            raise ValueError("naive-bayes: var_smoothing must be ≥ 0")
        return {
            "phase": np.int64(LABELS),
            "var_smoothing": np.float64(h["var_smoothing"]),
            "n_features": np.int64(n_features),
            "n_samples": np.int64(0),
            "classes": np.zeros(0),
            "class_count": np.zeros(0, dtype=np.int64),
            "class_prior": np.zeros(0),
            "theta": np.zeros((0, n_features)),
            "var": np.zeros((0, n_features)),
            "epsilon": np.float64(0.0),
        }

    def map(self, params: Params, X: np.ndarray, y: np.ndarray | None, ctx: MapContext) -> Partial:
        phase = int(params["phase"])
        if phase == LABELS:
            return _sums.map_labels(y, self.name)
        if phase != STATS:
            raise ValueError("naive-bayes: the model is already fitted; nothing to map")
        X = _sums.as_features(X, int(params["n_features"]))
        classes = params["classes"]
        idx = _sums.encode_labels(_sums.require_y(y, self.name), classes)
        k = len(classes)
        count = np.bincount(idx, minlength=k).astype(np.int64)
        onehot = (idx[:, None] == np.arange(k)).astype(np.float64)
        mean = (onehot.T @ X) / np.maximum(count, 1)[:, None]
        D = X - mean[idx]
        m2 = onehot.T @ (D * D)
        return {"count": count, "mean": mean, "m2": m2}

    def reduce(self, partials: Sequence[Partial]) -> Partial:
        if "labels" in partials[0]:
            return _sums.reduce_labels(partials)
        count, mean, m2 = _sums.merge_moments(
            [p["count"] for p in partials],
            [p["mean"] for p in partials],
            [p["m2"] for p in partials],
        )
        return {"count": count, "mean": mean, "m2": m2}

    def update(self, params: Params, reduced: Partial) -> Update:
        p = _sums.copy_params(params)
        phase = int(p["phase"])
        if phase == LABELS:
            classes = np.asarray(reduced["labels"])
            if len(classes) == 0:
                raise ValueError("naive-bayes: no rows to fit")
            p.update(phase=np.int64(STATS), classes=classes, n_samples=np.int64(reduced["n"]))
            return Update(p, {"n_samples": float(reduced["n"]), "classes": float(len(classes))})
        if phase != STATS:
            raise ValueError("naive-bayes: the model is already fitted")
        count = np.asarray(reduced["count"], dtype=np.int64)
        mean, m2 = np.asarray(reduced["mean"]), np.asarray(reduced["m2"])
        n = int(count.sum())
        if n != int(p["n_samples"]):
            raise ValueError(f"naive-bayes: {n} rows reduced, {int(p['n_samples'])} expected")
        # Variance of each feature over all rows, merged from the classes in class order.
        _, _, total_m2 = _sums.merge_moments(list(count), list(mean), list(m2))
        epsilon = float(p["var_smoothing"]) * float(np.max(total_m2 / n))
        var = m2 / count[:, None] + epsilon
        p.update(
            phase=np.int64(DONE),
            class_count=count,
            class_prior=count / float(n),
            theta=mean,
            var=var,
            epsilon=np.float64(epsilon),
        )
        return Update(p, {"n_samples": float(n), "epsilon": epsilon}, done=True)

    # --- using the model --------------------------------------------------------

    def joint_log_likelihood(self, params: Params, X: np.ndarray) -> np.ndarray:
        """log P(c) + log P(x | c) per row and class, computed as scikit-learn does."""
        if int(params["phase"]) != DONE:
            raise ValueError("naive-bayes: the model has not been fitted")
        X = _sums.as_features(X, int(params["n_features"]))
        prior, theta, var = params["class_prior"], params["theta"], params["var"]
        jll = []
        for i in range(len(prior)):
            n_ij = -0.5 * np.sum(np.log(2.0 * np.pi * var[i, :]))
            n_ij -= 0.5 * np.sum(((X - theta[i, :]) ** 2) / (var[i, :]), 1)
            jll.append(np.log(prior[i]) + n_ij)
        return np.array(jll).T

    def predict(self, params: Params, X: np.ndarray) -> np.ndarray:
        return params["classes"][np.argmax(self.joint_log_likelihood(params, X), axis=1)]

    def predict_proba(self, params: Params, X: np.ndarray) -> np.ndarray:
        jll = self.joint_log_likelihood(params, X)
        top = jll.max(axis=1, keepdims=True)
        log_norm = top + np.log(np.sum(np.exp(jll - top), axis=1, keepdims=True))
        return np.exp(jll - log_norm)

    def score(self, params: Params, X: np.ndarray, y: np.ndarray | None) -> float:
        """Accuracy."""
        y = _sums.require_y(y, self.name)
        return float(np.mean(self.predict(params, X) == y))


ALGORITHM = GaussianNaiveBayes()
