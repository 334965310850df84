"""Gaussian naive Bayes in one pass of per-class counts, means and squared deviations.

Phases: 0 = the pass (map: the partition's sorted distinct labels and, per
label, the row count, mean and sum of squared deviations from the partition's
class mean; reduce: the sorted union of the labels, each partition's
statistics placed at its labels' rows (zero for a class it lacks) and merged
by a compensated Chan update in partition order — exact per-class means and
variances without the cancellation of raw sums of squares); 2 = done. The
classes need no round of their own, so one round fits the model, whatever
``--iterations``. (Phase 1 was the statistics round when the labels had one;
``DONE`` keeps its value so model files written then still load.) The update
reproduces ``sklearn.naive_bayes.GaussianNB``: ``var_ = class variance +
epsilon`` with ``epsilon = var_smoothing * max(feature variance over all
rows)``, priors from class counts; prediction uses scikit-learn's joint
log-likelihood formula.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import _sums
from .base import MapContext, Params, Partial, Update

PASS, DONE = 0, 2


class GaussianNaiveBayes:
    """Gaussian naive Bayes; see the module docstring."""

    name = "naive-bayes"
    task = "classification"
    metric_name = "accuracy"
    setup_rounds = 0  # the classes are found in the same pass as the statistics
    defaults: Mapping[str, Any] = {"var_smoothing": 1e-9}

    def initial_params(self, n_features: int, hyper: Mapping[str, Any], seed: int) -> Params:
        h = _sums.check_hyper(self.name, hyper, self.defaults)
        if not h["var_smoothing"] >= 0:
            raise ValueError("naive-bayes: var_smoothing must be ≥ 0")
        return {
            "phase": np.int64(PASS),
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
        if int(params["phase"]) != PASS:
            raise ValueError("naive-bayes: the model is already fitted; nothing to map")
        y = _sums.require_y(y, self.name)
        out = _sums.map_labels(y, self.name)
        classes = out["labels"]
        k = len(classes)
        if k > _sums.MAX_CLASSES:  # the reduce refuses the target: skip rows × classes arrays
            return out
        X = _sums.as_features(X, int(params["n_features"]))
        idx = _sums.encode_labels(y, classes)
        count = np.bincount(idx, minlength=k).astype(np.int64)
        onehot = (idx[:, None] == np.arange(k)).astype(np.float64)
        mean = (onehot.T @ X) / np.maximum(count, 1)[:, None]
        D = X - mean[idx]
        m2 = onehot.T @ (D * D)
        return {**out, "count": count, "mean": mean, "m2": m2}

    def reduce(self, partials: Sequence[Partial]) -> Partial:
        labels = _sums.reduce_labels(partials)  # refuses too many or non-integer labels
        classes = labels["labels"]
        k = len(classes)
        d = np.shape(partials[0]["mean"])[1]
        counts, means, m2s = [], [], []
        for p in partials:  # each partition's classes at their rows among all classes
            rows = np.searchsorted(classes, p["labels"])
            count = np.zeros(k, dtype=np.int64)
            mean, m2 = np.zeros((k, d)), np.zeros((k, d))
            count[rows], mean[rows], m2[rows] = p["count"], p["mean"], p["m2"]
            counts.append(count)
            means.append(mean)
            m2s.append(m2)
        count, mean, m2 = _sums.merge_moments(counts, means, m2s)
        return {**labels, "count": count, "mean": mean, "m2": m2}

    def update(self, params: Params, reduced: Partial) -> Update:
        p = _sums.copy_params(params)
        if int(p["phase"]) != PASS:
            raise ValueError("naive-bayes: the model is already fitted")
        classes = np.asarray(reduced["labels"])
        if len(classes) == 0:
            raise ValueError("naive-bayes: no rows to fit")
        count = np.asarray(reduced["count"], dtype=np.int64)
        mean, m2 = np.asarray(reduced["mean"]), np.asarray(reduced["m2"])
        n = int(count.sum())
        if n != int(reduced["n"]):
            raise ValueError(f"naive-bayes: {n} rows in the class counts, {int(reduced['n'])} read")
        # Variance of each feature over all rows, merged from the classes in class order.
        _, _, total_m2 = _sums.merge_moments(list(count), list(mean), list(m2))
        epsilon = float(p["var_smoothing"]) * float(np.max(total_m2 / n))
        var = m2 / count[:, None] + epsilon
        p.update(
            phase=np.int64(DONE),
            classes=classes,
            n_samples=np.int64(n),
            class_count=count,
            class_prior=count / float(n),
            theta=mean,
            var=var,
            epsilon=np.float64(epsilon),
        )
        metrics = {"n_samples": float(n), "classes": float(len(classes)), "epsilon": epsilon}
        return Update(p, metrics, done=True)

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
