"""Logistic regression on raw, differently scaled features: few rounds, same optimum.

The optimiser works in preconditioned coordinates (centred, Hessian-diagonal
scaled) but evaluates the original objective, so the minimiser is scikit-learn's
at equal C whatever the features' units. The reference is scikit-learn's exact
Newton solver on the same raw data (its lbfgs needs thousands of iterations
there; the slow test compares with it too).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn import datasets
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from bubblechain.algorithms.base import MapContext, hash_arrays
from bubblechain.algorithms.local import fit_local, partition_bounds
from bubblechain.algorithms.logistic import ALGORITHM as LOGISTIC
from bubblechain.churn import FEATURES, TARGET, churn_table

TIGHT = {"tol": 1e-10, "max_iter": 10000}


@pytest.fixture(scope="module")
def churn():
    t = churn_table(200_000)
    X = np.column_stack([t[c].to_numpy().astype(np.float64) for c in FEATURES])
    return X, t[TARGET].to_numpy()


def exact(X, y, C):
    """scikit-learn's Newton-Cholesky solution: the optimum of the same objective."""
    return LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(X, y)


def objective(X, y, coef, intercept, C):
    """scikit-learn's binary objective, divided by n."""
    w = coef.ravel()
    z = X @ w + intercept[0]
    return float(np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 / (C * len(y)) * (w @ w))


def assert_same_model(params, ref, atol):
    coef, intercept = LOGISTIC.coef_intercept(params)
    np.testing.assert_allclose(coef, ref.coef_, rtol=0, atol=atol)
    np.testing.assert_allclose(intercept, ref.intercept_, rtol=0, atol=atol)


def test_raw_churn_converges_in_few_rounds_to_the_optimum(churn):
    X, y = churn
    ref = exact(X, y, 1.0)
    params, history = fit_local("logistic", X, y, partitions=4, hyper={"C": 1.0})
    # one labels round, then one round per objective evaluation; 119 rounds (and
    # max_iter reached, 0.7 away in coefficients) before preconditioning
    assert len(history) <= 40, len(history)
    assert str(params["status"]) == "converged: gradient ≤ tol"
    assert_same_model(params, ref, atol=1e-3)
    coef, intercept = LOGISTIC.coef_intercept(params)
    f_ours = objective(X, y, coef, intercept, 1.0)
    f_ref = objective(X, y, ref.coef_, ref.intercept_, 1.0)
    assert f_ours == pytest.approx(f_ref, rel=1e-9)
    assert LOGISTIC.score(params, X, y) == pytest.approx(ref.score(X, y), abs=1e-4)


def test_raw_churn_tight_tolerance_is_close_to_exact(churn):
    X, y = churn
    params, history = fit_local("logistic", X, y, partitions=8, hyper={"C": 1.0, **TIGHT})
    assert len(history) <= 40 and history[-1]["done"]
    assert_same_model(params, exact(X, y, 1.0), atol=1e-5)


@pytest.mark.parametrize(
    ("loader", "C"),
    [
        (datasets.load_breast_cancer, 1.0),
        (datasets.load_breast_cancer, 10.0),
        (datasets.load_wine, 1.0),
        (datasets.load_iris, 0.1),
    ],
)
def test_raw_bundled_datasets_match_the_exact_solution(loader, C):
    X, y = loader(return_X_y=True)  # unscaled: breast cancer spans 1e-3 .. 4e3
    params, history = fit_local("logistic", X, y, partitions=4, hyper={"C": C, **TIGHT})
    assert str(params["status"]).startswith("converged")
    assert len(history) < 1000  # breast cancer took 3,600-8,000 rounds before
    assert_same_model(params, exact(X, y, C), atol=1e-3)


def test_offsetting_a_feature_changes_only_the_intercept():
    """The penalty does not see the intercept, so x + a has the same coefficients.

    Unpreconditioned, an offset of 1e4 alone makes L-BFGS crawl; centred, the
    optimiser sees the same problem and takes the same steps.
    """
    X, y = datasets.load_breast_cancer(return_X_y=True)
    X = X[:, :8]
    offset = np.array([1e4, 0, -3e3, 0, 0, 50.0, 0, 0])
    hyper = {"C": 1.0, **TIGHT}
    pa, ha = fit_local("logistic", X, y, partitions=3, hyper=hyper)
    pb, hb = fit_local("logistic", X + offset, y, partitions=3, hyper=hyper)
    ca, ia = LOGISTIC.coef_intercept(pa)
    cb, ib = LOGISTIC.coef_intercept(pb)
    np.testing.assert_allclose(cb, ca, rtol=0, atol=1e-5)
    # ib = ia - ca · offset, up to the coefficients' tolerance times the offset
    np.testing.assert_allclose(ib, ia - ca @ offset, rtol=1e-6)
    np.testing.assert_allclose(
        LOGISTIC.decision_function(pb, X + offset),
        LOGISTIC.decision_function(pa, X),
        rtol=0,
        atol=1e-3,
    )
    # the same iterates, round by round (stopping differs: an offset feature's raw
    # gradient component is larger, and tol is judged on the raw gradient)
    la = [h["metrics"]["loss"] for h in ha[1:]]
    lb = [h["metrics"]["loss"] for h in hb[1:]]
    m = min(len(la), len(lb))
    np.testing.assert_allclose(lb[:m], la[:m], rtol=1e-9)
    assert len(hb) < 1.5 * len(ha)


def test_constant_and_tiny_features_are_harmless():
    X, y = datasets.load_iris(return_X_y=True)
    X = np.column_stack([X, np.full(len(X), 5.0), 1e-6 * X[:, 0]])
    params, _ = fit_local("logistic", X, y, partitions=2, hyper={"C": 1.0, **TIGHT})
    assert np.all(np.isfinite(params["scale"])) and np.all(params["scale"] > 0)
    coef, _ = LOGISTIC.coef_intercept(params)
    np.testing.assert_allclose(coef[:, 4], 0.0, atol=1e-8)  # constant: only the penalty acts
    assert_same_model(params, exact(X, y, 1.0), atol=1e-3)


def test_change_of_variables_is_linear_and_its_gradient_is_the_adjoint():
    rng = np.random.default_rng(3)
    d, k = 5, 3
    p = LOGISTIC.initial_params(d, {}, 0)
    p["shift"] = rng.normal(size=d) * 100
    p["scale"] = rng.uniform(0.01, 10.0, size=d + 1)
    u, v, g = (rng.normal(size=k * (d + 1)) for _ in range(3))
    x = LOGISTIC._to_x(p, u)
    np.testing.assert_allclose(
        LOGISTIC._to_x(p, 2.0 * u - v), 2.0 * x - LOGISTIC._to_x(p, v), rtol=1e-12, atol=1e-9
    )
    # g · (M u) == (Mᵀ g) · u: the pulled-back gradient is the gradient in u
    lhs = math.fsum(g * x)
    rhs = math.fsum(LOGISTIC._to_u_grad(p, g) * u)
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-9)
    assert not np.any(LOGISTIC._to_x(p, np.zeros_like(u)))


def test_moments_ride_on_the_labels_round_and_merge_exactly(churn):
    X, y = churn
    X, y = X[:50_000], y[:50_000]
    params = LOGISTIC.initial_params(X.shape[1], {}, 0)
    reduced = {}
    for parts in (1, 7):
        partials = [
            LOGISTIC.map(params, X[a:b], y[a:b], MapContext(i, parts, 0))
            for i, (a, b) in enumerate(partition_bounds(len(X), parts))
        ]
        reduced[parts] = LOGISTIC.reduce(partials)
    for r in reduced.values():
        np.testing.assert_allclose(r["x_mean"], X.mean(axis=0), rtol=1e-13)
        np.testing.assert_allclose(r["x_m2"], X.var(axis=0) * len(X), rtol=1e-11)
    started = LOGISTIC.update(params, reduced[7]).params
    n = len(X)
    expected = np.sqrt(np.append(0.25 * X.var(axis=0) + 1.0 / n, 0.25))
    np.testing.assert_allclose(started["scale"], expected, rtol=1e-11)


def test_fits_are_deterministic_and_agree_across_partitionings(churn):
    X, y = churn
    X, y = X[:20_000], y[:20_000]
    hyper = {"C": 1.0, **TIGHT}
    p1, h1 = fit_local("logistic", X, y, partitions=4, hyper=hyper)
    p2, h2 = fit_local("logistic", X, y, partitions=4, hyper=hyper)
    assert [h["state"] for h in h1] == [h["state"] for h in h2]
    assert hash_arrays(p1) == hash_arrays(p2)
    p8, _ = fit_local("logistic", X, y, partitions=8, hyper=hyper)
    np.testing.assert_allclose(
        LOGISTIC.coef_intercept(p8)[0], LOGISTIC.coef_intercept(p1)[0], rtol=0, atol=1e-7
    )


@pytest.mark.slow
def test_raw_churn_matches_sklearn_lbfgs(churn):
    """The issue's yardstick: scikit-learn's lbfgs on the same raw data (about a minute)."""
    X, y = churn
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = LogisticRegression(C=1.0, tol=1e-8, max_iter=10000).fit(X, y)
    params, history = fit_local("logistic", X, y, partitions=4, hyper={"C": 1.0})
    assert len(history) <= 40
    assert_same_model(params, sk, atol=1e-3)
