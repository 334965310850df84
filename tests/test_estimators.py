"""The scikit-learn-style estimators: parity, scikit-learn tooling, tracked fits, errors.

Untracked fits run in memory; the few tracked fits each start worker processes,
so they share one small dataset and one ledger home.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("sklearn")

import sklearn.cluster as skc
import sklearn.linear_model as skl
import sklearn.naive_bayes as sknb
from sklearn import datasets
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.preprocessing import StandardScaler

from bubblechain.data.ledger import commit_dataset
from bubblechain.estimators import (
    ConvergenceWarning,
    GaussianNB,
    KMeans,
    LinearRegression,
    LogisticRegression,
    NotFittedError,
    Ridge,
)
from bubblechain.ledger import Ledger
from bubblechain.ledger.verify import verify_home
from bubblechain.training.model import read_model

ESTIMATORS = [LogisticRegression, LinearRegression, Ridge, KMeans, GaussianNB]


def standardised(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def sk_logistic(X, y, C):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkConvergenceWarning)
        return skl.LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(X, y)


# --- parity through the estimator API (untracked) ------------------------------------


@pytest.mark.parametrize(
    ("loader", "C"),
    [(datasets.load_breast_cancer, 1.0), (datasets.load_iris, 0.1), (datasets.load_wine, 10.0)],
)
def test_logistic_regression_matches_sklearn(loader, C):
    X, y = standardised(loader)
    ours = LogisticRegression(C=C, tol=1e-10, max_iter=10000, partitions=3).fit(X, y)
    sk = sk_logistic(X, y, C)
    assert ours.coef_.shape == sk.coef_.shape and ours.intercept_.shape == sk.intercept_.shape
    np.testing.assert_allclose(ours.coef_, sk.coef_, rtol=0, atol=1e-3)
    np.testing.assert_allclose(ours.intercept_, sk.intercept_, rtol=0, atol=1e-3)
    np.testing.assert_array_equal(ours.classes_, sk.classes_)
    np.testing.assert_array_equal(ours.predict(X), sk.predict(X))
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), atol=1e-4)
    np.testing.assert_allclose(ours.decision_function(X), sk.decision_function(X), atol=1e-2)
    np.testing.assert_allclose(np.exp(ours.predict_log_proba(X)), ours.predict_proba(X), rtol=1e-12)
    assert ours.score(X, y) == pytest.approx(sk.score(X, y))
    assert ours.n_features_in_ == X.shape[1] and ours.n_iter_.shape == (1,)
    assert ours.status_.startswith("converged")


def test_logistic_regression_raw_features_and_string_labels():
    X, y = datasets.load_breast_cancer(return_X_y=True)  # unscaled
    labels = np.array(["benign", "malignant"], dtype=object)[1 - y]
    ours = LogisticRegression(tol=1e-10, max_iter=10000).fit(X, labels)
    ref = skl.LogisticRegression(solver="newton-cholesky", tol=1e-12).fit(X, labels)
    assert ours.classes_.tolist() == ["benign", "malignant"]
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=0, atol=1e-3)
    assert np.mean(ours.predict(X) == ref.predict(X)) >= 0.998


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_linear_regression_and_ridge_match_sklearn(alpha):
    X, y = datasets.load_diabetes(return_X_y=True)
    ours = LinearRegression(alpha=alpha).fit(X, y)
    sk = (skl.Ridge(alpha=alpha) if alpha else skl.LinearRegression()).fit(X, y)
    np.testing.assert_allclose(ours.coef_, sk.coef_, rtol=1e-8, atol=1e-8)
    assert ours.intercept_ == pytest.approx(sk.intercept_, rel=1e-10)
    np.testing.assert_allclose(ours.predict(X), sk.predict(X), rtol=1e-10)
    assert ours.score(X, y) == pytest.approx(sk.score(X, y), rel=1e-10)


def test_ridge_defaults_to_sklearns_penalty():
    X, y = datasets.load_diabetes(return_X_y=True)
    assert Ridge().alpha == 1.0 and LinearRegression().alpha == 0.0
    np.testing.assert_allclose(Ridge().fit(X, y).coef_, skl.Ridge().fit(X, y).coef_, rtol=1e-9)


@pytest.mark.parametrize("k", [3, 5])
def test_kmeans_matches_sklearn_inertia(k):
    X, _ = datasets.make_blobs(n_samples=3000, centers=5, cluster_std=1.5, random_state=1)
    ours = KMeans(n_clusters=k, seed=0).fit(X)
    sk = skc.KMeans(n_clusters=k, n_init=10, random_state=0).fit(X)
    assert ours.inertia_ <= 1.01 * sk.inertia_
    assert ours.cluster_centers_.shape == (k, 2) and ours.n_iter_ >= 1
    assert ours.score(X) == pytest.approx(-ours.inertia_, rel=1e-9)
    np.testing.assert_array_equal(ours.labels_, ours.predict(X))
    D = ours.transform(X)
    expected = np.linalg.norm(X[:, None, :] - ours.cluster_centers_[None], axis=2)
    np.testing.assert_allclose(D, expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(D.argmin(axis=1), ours.labels_)
    np.testing.assert_array_equal(KMeans(n_clusters=k).fit_predict(X), ours.labels_)
    np.testing.assert_allclose(KMeans(n_clusters=k).fit_transform(X), D)


def test_kmeans_takes_sklearns_default_n_init_auto_as_one_run(tmp_path):
    """scikit-learn's default since 1.4; refused before, so code copied from it failed."""
    from bubblechain.ledger import Ledger

    X, _ = datasets.make_blobs(n_samples=600, centers=4, random_state=3)
    auto = KMeans(n_clusters=4, n_init="auto").fit(X)
    assert auto.get_params()["n_init"] == "auto"  # as given: clone() keeps it
    one = KMeans(n_clusters=4, n_init=1).fit(X)
    np.testing.assert_array_equal(auto.cluster_centers_, one.cluster_centers_)
    home = tmp_path / "home"
    Ledger.init(home).close()
    KMeans(n_clusters=4, n_init="auto", ledger=home, engine="inline").fit(X)
    with Ledger.open(home) as led:
        (start,) = [e.body for e in led.entries(kind="job.start")]
    assert start["hyper"]["n_init"] == 1  # the record holds the number it stands for


def test_kmeans_inertia_is_that_of_the_final_centres_when_iterations_stop_the_run(tmp_path):
    """It was the recorded params' inertia: that of the centres before the last move,
    or 0.0 when only the sample round ran, while score(X) gave the final centres'."""
    X = np.random.default_rng(0).normal(size=(6000, 2))  # more rows than the sample
    for iterations in (1, 2, 3):
        est = KMeans(5, tol=0, iterations=iterations).fit(X)
        assert est.inertia_ == -est.score(X) > 0
        assert est.inertia_ != float(est.params_["inertia"])  # the run was stopped early
    assert KMeans(5, tol=0, iterations=1).fit(X).inertia_ == pytest.approx(3665.4965290, 1e-9)
    home = tmp_path / "home"
    Ledger.init(home).close()
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"id": np.arange(len(X)), "a": X[:, 0], "b": X[:, 1]}), path)
    with Ledger.open(home) as led:
        commit_dataset(led, path, "id", name="x")
        for fitted in (
            KMeans(5, tol=0, iterations=2, ledger=led, engine="inline").fit(X),
            KMeans(5, tol=0, iterations=2, ledger=led, engine="inline").fit("x"),
        ):
            named = hasattr(fitted, "feature_names_in_")  # fit("x"): the dataset's columns
            rows = pa.table({"a": X[:, 0], "b": X[:, 1]}) if named else X
            assert fitted.inertia_ == pytest.approx(-fitted.score(rows), rel=1e-12)
            assert fitted.inertia_ < float(fitted.params_["inertia"])
        final = list(led.entries(kind="model.final"))[-1]
    assert final.body["value"] == fitted.inertia_  # the job's evaluation round


@pytest.mark.parametrize(
    "loader", [datasets.load_iris, datasets.load_wine, datasets.load_breast_cancer]
)
def test_gaussian_nb_matches_sklearn(loader):
    X, y = loader(return_X_y=True)
    ours = GaussianNB().fit(X, y)
    sk = sknb.GaussianNB().fit(X, y)
    np.testing.assert_array_equal(ours.predict(X), sk.predict(X))
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), atol=1e-9)
    np.testing.assert_allclose(ours.predict_log_proba(X), sk.predict_log_proba(X), atol=1e-6)
    np.testing.assert_allclose(ours.theta_, sk.theta_, rtol=1e-10)
    np.testing.assert_allclose(ours.var_, sk.var_, rtol=1e-9)
    np.testing.assert_allclose(ours.class_prior_, sk.class_prior_)
    np.testing.assert_array_equal(ours.class_count_, sk.class_count_)
    assert ours.epsilon_ == pytest.approx(sk.epsilon_)
    assert ours.score(X, y) == sk.score(X, y)


# --- scikit-learn's tooling --------------------------------------------------------------


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_get_params_follow_the_init_signature_and_set_params_returns_self(cls):
    est = cls()
    params = est.get_params()
    assert {"partitions", "engine", "ledger", "seed", "iterations"} <= set(params)
    assert params == est.get_params(deep=False)
    assert est.set_params(partitions=2, seed=5) is est
    assert est.partitions == 2 and est.get_params()["seed"] == 5
    with pytest.raises(ValueError, match="invalid parameter 'nope'"):
        est.set_params(nope=1)


def test_hyperparameters_are_stored_verbatim_and_shown_by_repr():
    est = LogisticRegression(C=0.5, tol="1e-3", partitions=8)  # validated at fit, not here
    assert est.C == 0.5 and est.tol == "1e-3"
    assert repr(est) == "LogisticRegression(C=0.5, partitions=8, tol='1e-3')"
    assert repr(KMeans()) == "KMeans()"


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_sklearn_clone_gives_an_unfitted_copy_with_the_same_params(cls, tmp_path):
    X, y = standardised(datasets.load_iris)
    est = cls(partitions=2).fit(X, y).set_params(ledger=tmp_path / "home")
    twin = clone(est)
    assert type(twin) is cls and twin is not est
    assert twin.get_params() == est.get_params()
    assert not hasattr(twin, "params_")
    with pytest.raises(NotFittedError):
        twin.predict(X)


def test_sklearn_estimator_type_and_cross_validation():
    assert is_classifier(LogisticRegression()) and is_classifier(GaussianNB())
    assert is_regressor(LinearRegression()) and not is_classifier(KMeans())
    X, y = standardised(datasets.load_breast_cancer)
    ours = cross_val_score(LogisticRegression(), X, y, cv=5)
    sk = cross_val_score(skl.LogisticRegression(), X, y, cv=5)  # stratified folds for both
    np.testing.assert_allclose(ours, sk, atol=0.01)
    Xd, yd = datasets.load_diabetes(return_X_y=True)
    np.testing.assert_allclose(
        cross_val_score(LinearRegression(), Xd, yd, cv=3),
        cross_val_score(skl.LinearRegression(), Xd, yd, cv=3),
        rtol=1e-9,
    )
    Xi, yi = datasets.load_iris(return_X_y=True)
    np.testing.assert_array_equal(
        cross_val_score(GaussianNB(), Xi, yi, cv=5),
        cross_val_score(sknb.GaussianNB(), Xi, yi, cv=5),
    )


def test_grid_search_sets_params_and_refits():
    X, y = standardised(datasets.load_breast_cancer)
    grid = GridSearchCV(LogisticRegression(partitions=2), {"C": [0.01, 1.0]}, cv=3).fit(X, y)
    assert grid.best_params_["C"] in (0.01, 1.0)
    assert grid.best_estimator_.partitions == 2 and hasattr(grid.best_estimator_, "coef_")


def test_dataframes_keep_feature_names_and_predict_picks_columns_by_name():
    pd = pytest.importorskip("pandas")
    X, y = datasets.load_iris(return_X_y=True, as_frame=True)
    est = GaussianNB().fit(X, y)
    assert list(est.feature_names_in_) == list(X.columns)
    shuffled = X[list(reversed(X.columns))].assign(extra=1.0)
    with pytest.warns(UserWarning, match="X does not have valid feature names, but GaussianNB"):
        by_place = est.predict(X.to_numpy())  # scikit-learn warns: columns taken by place
    np.testing.assert_array_equal(est.predict(shuffled), by_place)
    unnamed = GaussianNB().fit(X.to_numpy(), y)
    with pytest.warns(UserWarning, match="X has feature names, but GaussianNB was fitted without"):
        unnamed.predict(X)
    with pytest.raises(ValueError, match="lacks the feature columns"):
        est.predict(X.drop(columns=[X.columns[0]]))
    table = pa.Table.from_pandas(X)
    np.testing.assert_array_equal(est.predict(table), est.predict(X))
    assert isinstance(pd.Series(est.predict(X)), pd.Series)


def test_refit_forgets_the_previous_fit():
    X, y = standardised(datasets.load_iris)
    est = GaussianNB().fit(X, y)
    est.fit(X[:, :2], y)
    assert est.n_features_in_ == 2 and est.theta_.shape == (3, 2)


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_using_an_unfitted_estimator_is_a_clear_error(cls):
    X = np.zeros((3, 2))
    methods = ["predict", "score"] + [
        m for m in ("predict_proba", "transform", "decision_function") if hasattr(cls, m)
    ]
    for method in methods:
        args = (X,) if method != "score" or cls is KMeans else (X, np.zeros(3))
        with pytest.raises(NotFittedError, match="not fitted yet"):
            getattr(cls(), method)(*args)


def test_shape_and_value_errors():
    X, y = standardised(datasets.load_iris)
    with pytest.raises(ValueError, match="two-dimensional, got a 1-d array"):
        GaussianNB().fit(X[:, 0], y)
    with pytest.raises(ValueError, match="X has 150 rows but y has 149"):
        GaussianNB().fit(X, y[:-1])
    with pytest.raises(ValueError, match="supervised: fit"):
        LogisticRegression().fit(X)
    with pytest.raises(ValueError, match="NaN or infinity"):
        LinearRegression().fit(np.where(X > 2, np.nan, X), y)
    est = LogisticRegression().fit(X, y)
    with pytest.raises(
        ValueError, match="X has 3 features, but LogisticRegression was fitted with 4"
    ):
        est.predict(X[:, :3])
    with pytest.raises(ValueError, match=r"^C must be a number, got 'high'$"):
        LogisticRegression(C="high").fit(X, y)
    with pytest.raises(ValueError, match=r"^C must be greater than 0, got 0$"):
        LogisticRegression(C=0).fit(X, y)


def _with_missing(kind: str):
    """Labels 0/1 of 8 rows, missing at positions 2 and 6, as ``kind``."""
    import pandas as pd

    labels = [0, 1, None, 1, 0, 1, None, 0]
    words = [None if v is None else str(v) for v in labels]
    return {
        "None in a list": labels,
        "NaN in floats": np.array([np.nan if v is None else v for v in labels]),
        "pandas Int64 NA": pd.Series(labels, dtype="Int64"),
        "pandas string NA": pd.Series(words, dtype="string"),
        "NaN in strings": pd.Series([np.nan if w is None else w for w in words]),
        "categorical NaN": pd.Categorical(words),
    }[kind]


NUMBERS = ["None in a list", "NaN in floats", "pandas Int64 NA"]
WORDS = ["pandas string NA", "NaN in strings", "categorical NaN"]


@pytest.mark.parametrize(
    ("cls", "kind"),
    [(c, k) for c in (LogisticRegression, GaussianNB) for k in NUMBERS + WORDS]
    + [(LinearRegression, k) for k in NUMBERS],
)
def test_a_missing_target_value_is_refused_naming_its_positions(cls, kind):
    """It used to become a class of its own ('None', 'nan', '<NA>'), turning the
    integer labels into strings; scikit-learn refuses it too."""
    y = _with_missing(kind)
    X = np.arange(16.0).reshape(8, 2)
    with pytest.raises(ValueError) as e:
        cls().fit(X, y)
    assert str(e.value) == "y (the target) is missing at positions [2, 6] (2 rows)"


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize(("option", "value"), [("iterations", 0), ("iterations", -3),
                                               ("partitions", 0)])  # fmt: skip
def test_a_cap_or_partition_count_below_one_is_refused(cls, option, value, tmp_path):
    """iterations=0 used to give an unfitted all-zero LinearRegression, and GaussianNB
    or KMeans a 'not fitted' error later; tracked, the dataset was committed first."""
    X, y = standardised(datasets.load_iris)
    home = tmp_path / "home"
    Ledger.init(home).close()
    for est in (cls(**{option: value}), cls(**{option: value}, ledger=home)):
        with pytest.raises(ValueError) as e:
            est.fit(X, y)
        assert str(e.value) == f"{option} must be at least 1, got {value}"
        assert not hasattr(est, "params_")
    with Ledger.open(home, readonly=True) as led:
        assert [e.kind for e in led.entries(kind="data.commit")] == []
    assert not (home / "datasets").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # one round of logistic
        assert cls(iterations=1).fit(X, y).params_ is not None


def test_dataset_names_need_a_ledger_and_arrays_refuse_dataset_options():
    X, y = standardised(datasets.load_iris)
    with pytest.raises(ValueError, match="pass ledger=HOME"):
        LogisticRegression().fit("churn", target="churned")
    with pytest.raises(ValueError, match="target=, not y"):
        LogisticRegression(ledger="/nonexistent").fit("churn", y)
    with pytest.raises(ValueError, match="supervised: fit\\('churn', target=COLUMN\\)"):
        LogisticRegression(ledger="/nonexistent").fit("churn")
    with pytest.raises(ValueError, match="only when X names a committed dataset"):
        GaussianNB().fit(X, y, target="label")
    with pytest.raises(ValueError, match="engine='dask' needs a ledger"):
        GaussianNB(engine="dask").fit(X, y)
    with pytest.raises(TypeError, match="array or a table"):
        GaussianNB().fit(X, y).predict("churn")
    with pytest.raises(ValueError, match="dataset_name= names the dataset a tracked fit"):
        GaussianNB().fit(X, y, dataset_name="iris")
    with pytest.raises(ValueError, match="must be letters, digits"):
        GaussianNB(ledger="/nonexistent").fit(X, y, dataset_name="../../etc/iris")


def test_hitting_max_iter_warns():
    X, y = standardised(datasets.load_breast_cancer)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        est = LogisticRegression(max_iter=2).fit(X, y)
    assert est.n_iter_[0] == 2 and est.status_ == "stopped: max_iter reached"


# --- tracked fits (worker processes; kept few and small) -----------------------------------


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One ledger home and one tracked LogisticRegression fit on arrays."""
    home = tmp_path_factory.mktemp("estimators") / "home"
    Ledger.init(home).close()
    X, y = standardised(datasets.load_breast_cancer)
    est = LogisticRegression(ledger=home, partitions=2, tol=1e-8, max_iter=1000).fit(X, y)
    return home, X, y, est


def test_tracked_fit_on_arrays_is_recorded_and_equals_the_untracked_fit(tracked):
    home, X, y, est = tracked
    plain = LogisticRegression(partitions=2, tol=1e-8, max_iter=1000).fit(X, y)
    np.testing.assert_allclose(est.coef_, plain.coef_, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(est.predict(X), plain.predict(X))
    assert est.job_.startswith("job-") and est.n_rounds_ >= 2
    _, meta, digest = read_model(Path(est.model_path_))
    assert digest == est.model_hash_ and meta["job"] == est.job_
    data_file = home / "datasets" / f"{est.dataset_}.parquet"
    assert est.dataset_.startswith("fit-") and data_file.is_file()
    table = pq.read_table(data_file)
    assert table.column_names == ["id", *[f"x{j}" for j in range(30)], "target"]
    with Ledger.open(home, readonly=True) as led:
        commits = [e for e in led.entries(kind="data.commit") if e.body["name"] == est.dataset_]
        finals = [e for e in led.entries(kind="model.final") if e.fields["job"] == est.job_]
    assert len(commits) == 1 and commits[0].body["source"] == str(data_file)
    assert len(finals) == 1 and finals[0].body["model_hash"] == est.model_hash_
    assert verify_home(home).ok


def test_tracked_refit_on_the_same_rows_reuses_the_commitment(tracked):
    home, X, y, est = tracked
    nb = GaussianNB(ledger=str(home), partitions=2).fit(X, y)
    assert nb.dataset_ == est.dataset_ and nb.job_ != est.job_
    np.testing.assert_array_equal(nb.predict(X), GaussianNB().fit(X, y).predict(X))
    with Ledger.open(home, readonly=True) as led:
        assert sum(e.body["name"] == est.dataset_ for e in led.entries(kind="data.commit")) == 1


def test_a_tracked_fit_refuses_a_missing_target_before_committing_anything(tracked):
    home, X, y, _ = tracked
    with Ledger.open(home, readonly=True) as led:
        before = len(list(led.entries()))
    files = sorted((home / "datasets").iterdir())
    labels = y.astype(object)
    labels[[5, 17]] = None
    with pytest.raises(ValueError) as e:
        GaussianNB(ledger=home, partitions=2).fit(X, labels)
    assert str(e.value) == "y (the target) is missing at positions [5, 17] (2 rows)"
    with Ledger.open(home, readonly=True) as led:
        assert len(list(led.entries())) == before
    assert sorted((home / "datasets").iterdir()) == files


def test_fit_on_a_committed_dataset_name(tracked, tmp_path):
    home, *_ = tracked
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 3)) * [1.0, 10.0, 0.1] + [0.0, 50.0, 0.0]
    y = X @ np.array([2.0, -0.3, 5.0]) + 1.0 + rng.normal(size=600)
    path = tmp_path / "sales.parquet"
    pq.write_table(pa.table({"id": np.arange(600), "a": X[:, 0], "b": X[:, 1], "c": X[:, 2],
                             "revenue": y}), path)  # fmt: skip
    with Ledger.open(home) as led:
        commit_dataset(led, path, "id", name="sales")
        est = Ridge(alpha=0.1, ledger=led, partitions=3).fit(
            "sales", target="revenue", features=["c", "a"]
        )
    assert list(est.feature_names_in_) == ["c", "a"] and est.dataset_ == "sales"
    plain = Ridge(alpha=0.1).fit(X[:, [2, 0]], y)
    np.testing.assert_allclose(est.coef_, plain.coef_, rtol=1e-9)
    frame = pq.read_table(path)
    np.testing.assert_allclose(est.predict(frame), plain.predict(X[:, [2, 0]]), rtol=1e-9)
    assert est.score(frame, y) == pytest.approx(plain.score(X[:, [2, 0]], y))
