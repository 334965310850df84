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

from bubblechain.algorithms import _sums  # noqa: E402
from bubblechain.algorithms.base import MapContext  # noqa: E402
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
    assert len(history) == 1 and history[-1]["done"]  # labels and statistics in one pass
    np.testing.assert_array_equal(params["classes"], sk.classes_)
    np.testing.assert_array_equal(NB.predict(params, X), sk.predict(X))
    np.testing.assert_allclose(params["theta"], sk.theta_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(params["var"], sk.var_, rtol=1e-10)
    np.testing.assert_allclose(params["class_prior"], sk.class_prior_, rtol=1e-15)
    assert float(params["epsilon"]) == pytest.approx(sk.epsilon_, rel=1e-10)
    np.testing.assert_allclose(NB.predict_proba(params, X), sk.predict_proba(X), atol=1e-9)
    assert NB.score(params, X, y) == sk.score(X, y)


def test_naive_bayes_refuses_a_partition_of_more_labels_than_classes_without_its_arrays():
    """The one pass skips the rows × classes statistics where the reduce refuses anyway."""
    n = _sums.MAX_CLASSES + 1
    X, ids = np.zeros((n, 2)), np.arange(n)
    partial = NB.map(NB.initial_params(2, {}, 0), X, ids, MapContext(0, 1, 0))
    assert "count" not in partial and len(partial["labels"]) == n
    with pytest.raises(ValueError, match=rf"y \(the target\) holds {n} distinct values"):
        fit_local("naive-bayes", X, ids, partitions=1)


def test_naive_bayes_partitions_missing_classes_merge_to_the_one_partition_model():
    X, y = datasets.load_iris(return_X_y=True)  # sorted by class: each partition lacks some
    one, _ = fit_local("naive-bayes", X, y, partitions=1)
    for parts in (2, 3, 7, 150):
        many, history = fit_local("naive-bayes", X, y, partitions=parts)
        assert len(history) == 1 and history[0]["done"]
        np.testing.assert_array_equal(many["classes"], one["classes"])
        np.testing.assert_array_equal(many["class_count"], one["class_count"])
        np.testing.assert_allclose(many["theta"], one["theta"], rtol=1e-14)
        np.testing.assert_allclose(many["var"], one["var"], rtol=1e-13)
        np.testing.assert_array_equal(NB.predict(many, X), NB.predict(one, X))


# --- any --iterations N ≥ 1 ends with a usable model ---------------------------------


def test_setup_rounds():
    """Only logistic has rounds that cannot move its model: classes and starting point."""
    assert LOGISTIC.setup_rounds == 2
    assert NB.setup_rounds == LINEAR.setup_rounds == KMEANS.setup_rounds == 0


def test_logistic_before_its_starting_point_is_not_fitted():
    X, y = synthetic_binary(500)
    params, _ = fit_local("logistic", X, y, max_rounds=1)  # classes found, nothing evaluated
    with pytest.raises(ValueError, match="logistic: the model has not been fitted"):
        LOGISTIC.predict(params, X)


TRAIN_ROWS = 3000


@pytest.fixture(scope="module")
def small_home(tmp_path_factory):
    """A ledger with one committed dataset: a binary, a 3-class and a continuous target."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from bubblechain.data.ledger import commit_dataset
    from bubblechain.ledger import Ledger

    rng = np.random.default_rng(11)
    X = rng.normal(size=(TRAIN_ROWS, 4)) * [1.0, 3.0, 0.5, 10.0] + [0.0, 5.0, -2.0, 100.0]
    Z = (X - [0.0, 5.0, -2.0, 100.0]) / [1.0, 3.0, 0.5, 10.0]
    binary = (Z @ [1.0, -2.0, 0.5, 1.5] + rng.normal(size=TRAIN_ROWS) > 0).astype(np.int64)
    three = np.array(["low", "mid", "high"])[np.digitize(Z[:, 0] + Z[:, 1], [-0.7, 0.7])]
    value = X @ [2.0, -1.0, 0.5, 0.1] + rng.normal(size=TRAIN_ROWS)
    tmp = tmp_path_factory.mktemp("iterations")
    data = tmp / "small.parquet"
    cols = {"id": np.arange(TRAIN_ROWS), **{f"x{j}": X[:, j] for j in range(4)}}
    pq.write_table(pa.table({**cols, "binary": binary, "three": three, "value": value}), data)
    home = tmp / "home"
    with Ledger.init(home) as led:
        commit_dataset(led, data, "id", name="small")
    return home, X, {"binary": binary, "three": three, "value": value}


def tracked(home, tmp, algorithm, target, iterations, hyper=None):
    """A tracked job on the inline engine: (result, params of its model file)."""
    from bubblechain.ledger import Ledger
    from bubblechain.training.model import read_model
    from bubblechain.training.runtime import train

    out = tmp / f"{algorithm}-{target}-{iterations}.model"
    with Ledger.open(home) as led:
        res = train(
            led,
            data="small",
            algorithm=algorithm,
            target=target,
            features=["x0", "x1", "x2", "x3"],
            partitions=3,
            iterations=iterations,
            engine="inline",
            hyper=hyper,
            out=out,
        )
    params, _, digest = read_model(out)
    assert digest == res.model_hash
    return res, params


@pytest.mark.parametrize("target", ["binary", "three"])
def test_logistic_trains_in_one_and_two_iterations(small_home, tmp_path, target):
    """--iterations 1 used to fail (the only round found the classes) and 2 gave the
    all-zero starting point: now N iterations are N steps after the setup rounds."""
    home, X, targets = small_home
    y = targets[target]
    majority = max(np.mean(y == c) for c in np.unique(y))
    full, full_params = tracked(home, tmp_path, "logistic", target, 100)
    assert full.converged and full.value > majority + 0.2
    accuracy = []
    for n in (1, 2):
        res, params = tracked(home, tmp_path, "logistic", target, n)
        assert (res.iterations, res.rounds) == (n, n + 2)  # + classes, starting point
        assert not res.converged
        assert int(params["iteration"]) == n  # each round beyond setup was an L-BFGS step
        assert np.any(params["x_k"] != 0), "the model is the untrained starting point"
        np.testing.assert_array_equal(params["classes"], full_params["classes"])
        pred = LOGISTIC.predict(params, X)
        assert np.mean(pred == y) == pytest.approx(res.value)
        assert res.value > majority + 0.15
        accuracy.append(res.value)
    assert accuracy[1] >= accuracy[0] - 0.02  # a second step does not undo the first


def one_round_fits(home, tmp_path, algorithm: str, target: str):
    """A run to convergence, then --iterations 1 and 2, each of which must take one round."""
    full = tracked(home, tmp_path, algorithm, target, 100)
    short = [tracked(home, tmp_path, algorithm, target, n) for n in (1, 2)]
    assert all(res.iterations == res.rounds == 1 and res.converged for res, _ in short)
    return full, short


def test_naive_bayes_is_fitted_by_one_iteration(small_home, tmp_path):
    home, X, _ = small_home
    (full, full_params), short = one_round_fits(home, tmp_path, "naive-bayes", "three")
    for res, params in short:
        for key in ("classes", "class_count", "theta", "var", "class_prior"):
            np.testing.assert_array_equal(params[key], full_params[key])
        np.testing.assert_array_equal(NB.predict(params, X), NB.predict(full_params, X))
        assert res.value == full.value > 0.8


def test_linear_is_fitted_by_one_iteration(small_home, tmp_path):
    home, X, targets = small_home
    (full, full_params), short = one_round_fits(home, tmp_path, "linear", "value")
    for res, params in short:
        np.testing.assert_array_equal(params["coef"], full_params["coef"])
        assert res.value == full.value > 0.9
        assert LINEAR.score(params, X, targets["value"]) == pytest.approx(res.value, abs=1e-12)


def test_kmeans_one_and_two_iterations_give_usable_centres(small_home, tmp_path):
    home, X, _ = small_home
    hyper = {"k": 3}
    full, _ = tracked(home, tmp_path, "kmeans", None, 100, hyper)
    assert full.converged
    inertia = []
    for n in (1, 2):
        res, params = tracked(home, tmp_path, "kmeans", None, n, hyper)
        assert res.iterations == res.rounds == n and not res.converged
        labels = KMEANS.predict(params, X)
        assert sorted(np.unique(labels)) == [0, 1, 2]
        assert res.value == pytest.approx(KMEANS.score(params, X))
        assert res.value <= 1.05 * full.value  # k-means++ on the sample, polished by Lloyd
        inertia.append(res.value)
    assert inertia[1] <= inertia[0]


@pytest.mark.parametrize("iterations", [1, 2])
def test_estimators_fit_in_one_and_two_iterations(iterations):
    """The untracked estimators count --iterations as the tracked runtime does."""
    from bubblechain.estimators import ConvergenceWarning as NotConverged
    from bubblechain.estimators import GaussianNB as OurNB
    from bubblechain.estimators import LogisticRegression as OurLogistic

    X, y = synthetic_binary(2000)
    with pytest.warns(NotConverged, match=f"after {iterations} iterations"):
        est = OurLogistic(iterations=iterations).fit(X, y)
    assert est.n_rounds_ == iterations + 2
    assert int(est.n_iter_[0]) == iterations and est.score(X, y) > 0.7
    nb = OurNB(iterations=iterations).fit(X, y)
    assert nb.n_rounds_ == 1
    np.testing.assert_array_equal(nb.predict(X), GaussianNB().fit(X, y).predict(X))
