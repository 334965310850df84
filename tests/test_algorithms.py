"""Parity of the map/reduce algorithms with scikit-learn on the same data.

Targets (issue 4): logistic and linear regression within 1e-3 in coefficients
at equal penalty, k-means inertia within 1%, naive Bayes predictions identical.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn import datasets  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge  # noqa: E402
from sklearn.naive_bayes import GaussianNB  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from bubblechain.algorithms.kmeans import ALGORITHM as KMEANS  # noqa: E402
from bubblechain.algorithms.linear import ALGORITHM as LINEAR  # noqa: E402
from bubblechain.algorithms.local import fit_local, predict_proba, score  # noqa: E402
from bubblechain.algorithms.logistic import ALGORITHM as LOGISTIC  # noqa: E402
from bubblechain.algorithms.naive_bayes import ALGORITHM as NB  # noqa: E402

TIGHT = {"tol": 1e-10, "max_iter": 10000}


def standardised(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def sklearn_logistic(X, y, C):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LogisticRegression(C=C, solver="lbfgs", **TIGHT).fit(X, y)


def synthetic_binary(n, d=20, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d) * 0.5
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(X @ w + 0.3)))).astype(np.int64)
    return X, y


def assert_logistic_parity(X, y, C, partitions, tol=1e-3):
    sk = sklearn_logistic(X, y, C)
    params, history = fit_local(
        "logistic", X, y, partitions=partitions, hyper={"C": C, **TIGHT}, seed=0
    )
    assert history[-1]["done"]
    assert str(params["status"]).startswith("converged"), str(params["status"])
    coef, intercept = LOGISTIC.coef_intercept(params)
    assert coef.shape == sk.coef_.shape
    np.testing.assert_allclose(coef, sk.coef_, rtol=0, atol=tol)
    np.testing.assert_allclose(intercept, sk.intercept_, rtol=0, atol=tol)
    np.testing.assert_array_equal(params["classes"], sk.classes_)
    assert np.mean(LOGISTIC.predict(params, X) == sk.predict(X)) >= 0.999
    np.testing.assert_allclose(predict_proba("logistic", params, X), sk.predict_proba(X), atol=tol)
    assert score("logistic", params, X, y) == pytest.approx(sk.score(X, y), abs=1e-3)
    return params


# --- logistic regression ---------------------------------------------------------


@pytest.mark.parametrize(
    "loader", [datasets.load_breast_cancer, datasets.load_iris, datasets.load_wine]
)
@pytest.mark.parametrize("C", [1.0, 0.1, 10.0])
def test_logistic_matches_sklearn(loader, C):
    X, y = standardised(loader)
    assert_logistic_parity(X, y, C, partitions=4)


def test_logistic_multinomial_digits():
    X, y = standardised(datasets.load_digits)
    assert_logistic_parity(X, y, 1.0, partitions=3)


def test_logistic_string_labels_give_the_same_model():
    X, y = standardised(datasets.load_iris)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    sk = sklearn_logistic(X, names, 1.0)
    params, _ = fit_local("logistic", X, names, partitions=5, hyper={"C": 1.0, **TIGHT})
    assert params["classes"].dtype.kind == "U"
    np.testing.assert_array_equal(params["classes"], sk.classes_)
    np.testing.assert_allclose(LOGISTIC.coef_intercept(params)[0], sk.coef_, atol=1e-3)
    np.testing.assert_array_equal(LOGISTIC.predict(params, X), sk.predict(X))


def test_logistic_binary_labels_order_positive_class_last():
    X, y = standardised(datasets.load_breast_cancer)
    labels = np.where(y == 1, "yes", "no")
    params = assert_logistic_parity(X, labels, 1.0, partitions=2)
    assert params["classes"].tolist() == ["no", "yes"]


def test_logistic_synthetic_200k_rows():
    X, y = synthetic_binary(200_000)
    assert_logistic_parity(X, y, 1.0, partitions=8)


@pytest.mark.slow
def test_logistic_synthetic_million_rows():
    X, y = synthetic_binary(1_000_000, seed=1)
    assert_logistic_parity(X, y, 1.0, partitions=8)
    assert_logistic_parity(X, y, 1e-4, partitions=8)


def test_logistic_max_iter_stops_early():
    X, y = standardised(datasets.load_breast_cancer)
    params, history = fit_local("logistic", X, y, partitions=2, hyper={"max_iter": 3})
    assert history[-1]["done"] and int(params["iteration"]) == 3
    assert str(params["status"]) == "stopped: max_iter reached"
    losses = [h["metrics"]["loss"] for h in history[1:]]
    assert all(b <= a for a, b in itertools.pairwise(losses))


# --- linear / ridge ----------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.0, 0.5, 10.0])
def test_linear_diabetes(alpha):
    X, y = datasets.load_diabetes(return_X_y=True)
    sk = (Ridge(alpha=alpha) if alpha else LinearRegression()).fit(X, y)
    params, history = fit_local("linear", X, y, partitions=4, hyper={"alpha": alpha})
    assert len(history) == 1 and history[0]["done"]  # one pass
    np.testing.assert_allclose(params["coef"], sk.coef_, rtol=0, atol=1e-3)
    assert float(params["intercept"]) == pytest.approx(sk.intercept_, abs=1e-3)
    assert history[0]["metrics"]["r2"] == pytest.approx(sk.score(X, y), abs=1e-9)
    assert LINEAR.score(params, X, y) == pytest.approx(sk.score(X, y), abs=1e-12)
    np.testing.assert_allclose(LINEAR.predict(params, X), sk.predict(X), atol=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 3.0])
def test_linear_synthetic_far_from_origin(alpha):
    """Features with mean 1e4 and spread 3: raw sums of squares would cancel badly."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((300_000, 12)) * 3 + 1e4
    y = X @ rng.standard_normal(12) + 5 + rng.standard_normal(len(X))
    sk = (Ridge(alpha=alpha) if alpha else LinearRegression()).fit(X, y)
    params, _ = fit_local("linear", X, y, partitions=8, hyper={"alpha": alpha})
    np.testing.assert_allclose(params["coef"], sk.coef_, rtol=0, atol=1e-6)
    assert float(params["intercept"]) == pytest.approx(sk.intercept_, abs=1e-3)


# --- k-means -----------------------------------------------------------------------


def kmeans_cases():
    iris = datasets.load_iris().data
    blobs, _ = datasets.make_blobs(n_samples=60_000, centers=8, n_features=6, random_state=3)
    wide, _ = datasets.make_blobs(
        n_samples=40_000, centers=5, n_features=10, cluster_std=4.0, random_state=5
    )
    return [
        pytest.param(iris, 3, id="iris"),
        pytest.param(blobs, 8, id="blobs"),
        pytest.param(wide, 5, id="overlapping"),
    ]


@pytest.mark.parametrize("X,k", kmeans_cases())
def test_kmeans_inertia_within_one_percent(X, k):
    sk = KMeans(n_clusters=k, n_init=10, random_state=0).fit(X)
    for seed in (0, 1):
        params, history = fit_local("kmeans", X, None, partitions=4, hyper={"k": k}, seed=seed)
        assert history[-1]["done"]
        inertia = float(params["inertia"])
        assert inertia <= 1.01 * sk.inertia_, (seed, inertia / sk.inertia_)
        # the recorded inertia belongs to the final centres
        assert KMEANS.score(params, X) == pytest.approx(inertia, rel=1e-12)
        assert history[-1]["metrics"]["inertia"] == inertia


def test_kmeans_runs_lloyd_rounds_on_the_full_data():
    """With more rows than the sample, Lloyd rounds after the init move the centres."""
    X, _ = datasets.make_blobs(
        n_samples=50_000, centers=10, n_features=4, cluster_std=2.5, random_state=11
    )
    sk = KMeans(n_clusters=10, n_init=10, random_state=0).fit(X)
    params, history = fit_local(
        "kmeans", X, None, partitions=5, hyper={"k": 10, "n_init": 1, "sample_size": 500}
    )
    lloyd = [h for h in history if h["phase"] == 1]
    assert len(lloyd) >= 2
    inertias = [h["metrics"]["inertia"] for h in lloyd]
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(inertias))
    assert float(params["inertia"]) <= 1.01 * sk.inertia_
    labels = KMEANS.predict(params, X)
    assert labels.shape == (len(X),) and set(np.unique(labels)) <= set(range(10))


# --- Gaussian naive Bayes ----------------------------------------------------------


def nb_cases():
    out = []
    for loader in (
        datasets.load_iris,
        datasets.load_wine,
        datasets.load_breast_cancer,
        datasets.load_digits,
    ):
        X, y = loader(return_X_y=True)
        out.append(pytest.param(X, y, id=loader.__name__.removeprefix("load_")))
    X, y = datasets.make_classification(
        n_samples=150_000, n_features=20, n_informative=8, n_classes=4, random_state=0
    )
    labels = np.array(["churn", "stay", "upgrade", "x"])[y]
    out.append(pytest.param(X * 50 + 300, labels, id="synthetic-150k"))
    return out


@pytest.mark.parametrize("X,y", nb_cases())
def test_naive_bayes_predictions_identical(X, y):
    sk = GaussianNB().fit(X, y)
    params, history = fit_local("naive-bayes", X, y, partitions=6)
    assert len(history) == 2 and history[-1]["done"]  # labels, then one pass of statistics
    np.testing.assert_array_equal(params["classes"], sk.classes_)
    np.testing.assert_array_equal(NB.predict(params, X), sk.predict(X))
    np.testing.assert_allclose(params["theta"], sk.theta_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(params["var"], sk.var_, rtol=1e-10)
    np.testing.assert_allclose(params["class_prior"], sk.class_prior_, rtol=1e-15)
    assert float(params["epsilon"]) == pytest.approx(sk.epsilon_, rel=1e-10)
    np.testing.assert_allclose(NB.predict_proba(params, X), sk.predict_proba(X), atol=1e-9)
    assert NB.score(params, X, y) == sk.score(X, y)
