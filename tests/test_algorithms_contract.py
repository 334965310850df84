"""The algorithm contract: pure, order-exact, replayable, hashable state; clear errors."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bubblechain.algorithms import _sums
from bubblechain.algorithms.base import MapContext, decode_arrays, encode_arrays, hash_arrays
from bubblechain.algorithms.local import fit_local, partition_bounds, predict_proba
from bubblechain.algorithms.registry import ALGORITHMS, get

NAMES = ["logistic", "linear", "kmeans", "naive-bayes"]


def data(name: str, n: int = 3000, d: int = 6, seed: int = 0):
    """A small problem for each algorithm, with features away from the origin."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * 2.0 + 10.0
    if name == "linear":
        return X, X @ rng.standard_normal(d) + rng.standard_normal(n)
    if name == "kmeans":
        return X + 6.0 * rng.integers(0, 3, (n, 1)), None
    cls = (X[:, 0] + X[:, 1] + rng.standard_normal(n) > 20).astype(int) + (X[:, 2] > 11)
    return X, np.array(["a", "b", "c"])[cls]


HYPER = {"logistic": {"max_iter": 30}, "linear": {"alpha": 0.1}, "kmeans": {"k": 3}}


def states(algorithm, X, y, partitions=4, seed=0):
    """Params at the start of each round, and the round's partials."""
    alg = get(algorithm)
    params = alg.initial_params(X.shape[1], HYPER.get(algorithm, {}), seed)
    out = []
    bounds = partition_bounds(len(X), partitions)
    for _ in range(6):
        partials = [
            alg.map(params, X[a:b], None if y is None else y[a:b], MapContext(i, partitions, seed))
            for i, (a, b) in enumerate(bounds)
        ]
        out.append((params, partials))
        step = alg.update(params, alg.reduce(partials))
        if step.done:
            break
        params = step.params
    return out


def float_leaves(partial):
    return {k: v for k, v in partial.items() if np.asarray(v).dtype.kind == "f"}


# --- registry and errors -----------------------------------------------------------


def test_registry_names():
    assert sorted(ALGORITHMS) == sorted(NAMES)
    for name in NAMES:
        alg = get(name)
        assert alg.name == name
        assert alg.task in ("classification", "regression", "clustering")
        assert alg.metric_name in ("accuracy", "r2", "inertia")


def test_unknown_algorithm_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown algorithm 'svm'.*kmeans, linear, logistic"):
        get("svm")
    with pytest.raises(ValueError, match="unknown algorithm"):
        fit_local("random-forest", np.zeros((3, 2)), [0, 1, 0])


@pytest.mark.parametrize("name", ["logistic", "linear", "naive-bayes"])
def test_supervised_without_y(name):
    X, _ = data(name)
    with pytest.raises(ValueError, match="supervised: y"):
        fit_local(name, X, None)
    alg = get(name)
    with pytest.raises(ValueError, match="supervised: y"):
        alg.map(alg.initial_params(X.shape[1], {}, 0), X, None, MapContext(0, 1, 0))


def test_logistic_single_class():
    X, _ = data("logistic")
    with pytest.raises(ValueError, match=r"at least two classes.*found 1"):
        fit_local("logistic", X, np.full(len(X), "yes"), partitions=3)


def test_unknown_and_bad_hyperparameters():
    with pytest.raises(
        ValueError, match=r"^unknown hyperparameter lr for logistic; valid: C, max_iter, tol$"
    ):
        get("logistic").initial_params(3, {"lr": 0.1}, 0)
    with pytest.raises(ValueError, match="C must be positive"):
        get("logistic").initial_params(3, {"C": 0}, 0)
    with pytest.raises(
        ValueError, match=r"^hyperparameter k of kmeans must be an integer, got 2\.5$"
    ):
        get("kmeans").initial_params(3, {"k": 2.5}, 0)
    assert int(get("kmeans").initial_params(3, {"k": "4"}, 0)["k"]) == 4  # CLI strings


def test_wrong_feature_count_and_unseen_label():
    X, y = data("naive-bayes")
    params, _ = fit_local("naive-bayes", X, y)
    with pytest.raises(ValueError, match="X has 5 features, the model expects 6"):
        get("naive-bayes").predict(params, X[:, :5])
    alg = get("logistic")
    p = alg.update(alg.initial_params(6, {}, 0), {"labels": np.array(["a", "b"]), "n": 10}).params
    with pytest.raises(ValueError, match="label 'c' was not seen"):
        alg.map(p, X[:3], np.array(["a", "c", "b"]), MapContext(0, 1, 0))


@pytest.mark.parametrize(
    "classes",
    [
        np.array([7]),
        np.array([0, 1]),
        np.array([-2, 5, 9]),
        np.array(["no", "yes"]),
        np.array([0.5, 2.0]),
    ],
)
def test_encode_labels_gives_each_label_its_index_in_the_sorted_classes(classes):
    rng = np.random.default_rng(3)
    y = classes[rng.integers(0, len(classes), 1000)]
    idx = _sums.encode_labels(y, classes)
    np.testing.assert_array_equal(classes[idx], y)
    assert idx.dtype == np.intp
    unseen = y.copy()
    unseen[417] = np.array(["maybe"])[0] if classes.dtype.kind == "U" else 3
    with pytest.raises(ValueError, match=f"label {unseen[417].item()!r} was not seen"):
        _sums.encode_labels(unseen, classes)


@pytest.mark.parametrize("name", ["logistic", "naive-bayes"])
def test_a_target_with_more_distinct_values_than_classes_is_refused(name):
    X = np.zeros((_sums.MAX_CLASSES + 1, 2))
    ids = np.arange(_sums.MAX_CLASSES + 1)  # an id column given as the target
    with pytest.raises(ValueError, match=rf"y \(the target\) holds {len(ids)} distinct"):
        fit_local(name, X, ids, partitions=3)
    fit_local(name, np.random.default_rng(0).normal(size=(60, 2)), np.arange(60) % 3)


def test_kmeans_more_clusters_than_rows():
    with pytest.raises(ValueError, match="k=5 clusters but only 4 rows"):
        fit_local("kmeans", np.eye(4), None, hyper={"k": 5})


def test_predict_proba_only_where_it_applies():
    X, y = data("linear")
    params, _ = fit_local("linear", X, y)
    with pytest.raises(ValueError, match="has no predict_proba"):
        predict_proba("linear", params, X)


# --- reduce: order-exact and compensated --------------------------------------------


def test_compensated_sum_is_exact_where_naive_sum_is_not():
    parts = [np.array([1e16, 1.0]), np.array([1.0, 1e-16]), np.array([-1e16, -1.0])]
    assert sum(parts)[0] == 0.0
    np.testing.assert_array_equal(_sums.compensated_sum(parts), [1.0, 1e-16])
    rng = np.random.default_rng(3)
    terms = [rng.standard_normal(50) * 10.0 ** rng.integers(-8, 8) for _ in range(64)]
    exact = [float(np.float64(sum(map(_exact, col)))) for col in zip(*terms, strict=True)]
    np.testing.assert_array_equal(_sums.compensated_sum(terms), exact)


def _exact(x):
    from fractions import Fraction

    return Fraction(float(x))


@pytest.mark.parametrize("name", NAMES)
def test_reduce_is_bit_reproducible_and_survives_artifacts(name):
    X, y = data(name)
    alg = get(name)
    for _params, partials in states(name, X, y, partitions=5):
        a = alg.reduce(partials)
        b = alg.reduce([decode_arrays(encode_arrays(p)) for p in partials])
        assert hash_arrays(a) == hash_arrays(b)


@pytest.mark.parametrize("name", NAMES)
def test_reduce_over_1_or_8_partitions_agrees(name):
    """Same params, different partitioning: reduced statistics agree to ~1e-12 relative."""
    X, y = data(name, n=20_000)
    alg = get(name)
    for params, _ in states(name, X, y, partitions=3):
        if name == "kmeans" and int(params["phase"]) == 0:
            continue  # the sample is per partition by design
        reduced = {}
        for parts in (1, 8):
            bounds = partition_bounds(len(X), parts)
            reduced[parts] = alg.reduce(
                [
                    alg.map(params, X[a:b], None if y is None else y[a:b], MapContext(i, parts, 0))
                    for i, (a, b) in enumerate(bounds)
                ]
            )
        assert reduced[1].keys() == reduced[8].keys()
        for key, one in reduced[1].items():
            eight = reduced[8][key]
            if np.asarray(one).dtype.kind in "iuU":
                np.testing.assert_array_equal(one, eight)
            else:
                scale = max(1.0, float(np.max(np.abs(one))))
                np.testing.assert_allclose(eight, one, rtol=1e-12, atol=1e-12 * scale)


def test_merge_moments_matches_two_pass_statistics():
    rng = np.random.default_rng(5)
    Z = rng.standard_normal((10_000, 3)) * [1.0, 1e-3, 50.0] + [1e6, -3.0, 1e3]
    blocks = [Z[a:b] for a, b in partition_bounds(len(Z), 7)]
    for full in (False, True):
        stats = [_sums.moments(B, full=full) for B in blocks]
        n, mean, m2 = _sums.merge_moments(*zip(*stats, strict=True))
        D = Z - Z.mean(axis=0)
        two_pass = D.T @ D if full else (D * D).sum(axis=0)
        assert int(n) == len(Z)
        np.testing.assert_allclose(mean, Z.mean(axis=0), rtol=1e-13)
        # error relative to the spread: feature 0 has mean 1e6 and spread 1, where
        # raw sums of squares (x² ~ 1e12) would leave no correct digit of its variance
        var = (D * D).sum(axis=0)
        scale = np.sqrt(np.outer(var, var)) if full else var
        assert np.all(np.abs(m2 - two_pass) <= 1e-10 * scale)


def test_moments_of_a_block_larger_than_the_centring_buffer():
    rng = np.random.default_rng(6)
    Z = rng.standard_normal((50_001, 3)) * [1.0, 1e-3, 50.0] + [1e6, -3.0, 1e3]
    assert len(Z) * Z.shape[1] * 8 > 4 * _sums._BLOCK_BYTES  # centred in several pieces
    D = Z - Z.mean(axis=0)
    for full in (False, True):
        n, mean, m2 = _sums.moments(Z, full=full)
        two_pass = D.T @ D if full else (D * D).sum(axis=0)
        assert int(n) == len(Z)
        np.testing.assert_array_equal(mean, Z.mean(axis=0))
        np.testing.assert_allclose(m2, two_pass, rtol=1e-12)
    n, mean, m2 = _sums.moments(np.empty((0, 3)), full=True)
    assert int(n) == 0 and not mean.any() and m2.shape == (3, 3) and not m2.any()


# --- state: hashable, round-trips, deterministic, pure ------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_params_round_trip_and_update_is_deterministic(name):
    X, y = data(name)
    alg = get(name)
    for params, partials in states(name, X, y):
        assert all(np.asarray(v).dtype != object for v in params.values())
        decoded = decode_arrays(encode_arrays(params))
        assert hash_arrays(decoded) == hash_arrays(params)
        before = hash_arrays(params)
        reduced = alg.reduce(partials)
        one, two = alg.update(params, reduced), alg.update(decoded, reduced)
        assert hash_arrays(params) == before, "update mutated its input"
        assert hash_arrays(one.params) == hash_arrays(two.params)
        assert one.metrics == two.metrics and one.done == two.done
        assert all(isinstance(v, float) for v in one.metrics.values())


@pytest.mark.parametrize("name", NAMES)
def test_fit_is_deterministic_and_model_survives_artifacts(name):
    X, y = data(name)
    alg = get(name)
    p1, h1 = fit_local(name, X, y, partitions=4, hyper=HYPER.get(name), seed=7)
    np.random.seed(123)  # the global RNG must not matter
    p2, h2 = fit_local(name, X, y, partitions=4, hyper=HYPER.get(name), seed=7)
    assert [h["state"] for h in h1] == [h["state"] for h in h2]
    assert h1[-1]["done"]
    restored = decode_arrays(encode_arrays(p1))
    np.testing.assert_array_equal(alg.predict(restored, X), alg.predict(p1, X))
    assert alg.score(restored, X, y) == alg.score(p2, X, y)


def test_kmeans_seed_changes_the_sample_but_not_the_partition_counts():
    X, _ = data("kmeans", n=20_000)
    alg = get("kmeans")
    params = alg.initial_params(X.shape[1], {"k": 3, "sample_size": 1000}, 0)
    parts = [X[a:b] for a, b in partition_bounds(len(X), 3)]
    s0 = alg.reduce([alg.map(params, P, None, MapContext(i, 3, 0)) for i, P in enumerate(parts)])
    s1 = alg.reduce([alg.map(params, P, None, MapContext(i, 3, 1)) for i, P in enumerate(parts)])
    assert s0["rows"].tolist() == [6666, 6667, 6667] == s1["rows"].tolist()
    assert not np.array_equal(s0["sample"], s1["sample"])
    sample = alg._proportional_sample(params, s0)
    assert len(sample) == 1000
    # every sampled row is a real row of the data
    assert np.isin(sample.view([("", float)] * 6), X.view([("", float)] * 6)).all()


@pytest.mark.parametrize("name", NAMES)
def test_more_partitions_than_rows(name):
    """Empty partitions contribute nothing and break nothing."""
    X, y = data(name, n=40)
    hyper = {**HYPER.get(name, {}), **({"C": 0.1} if name == "logistic" else {})}
    alg = get(name)
    pa, _ = fit_local(name, X, y, partitions=1, hyper=hyper)
    pb, _ = fit_local(name, X, y, partitions=55, hyper=hyper)
    if name == "kmeans":  # a different sample order may find another local optimum
        assert alg.score(pb, X) <= 1.05 * alg.score(pa, X)
    elif name == "linear":
        np.testing.assert_allclose(alg.predict(pa, X), alg.predict(pb, X), rtol=1e-12)
    else:
        np.testing.assert_array_equal(alg.predict(pa, X), alg.predict(pb, X))


def test_max_rounds_stops_the_driver():
    X, y = data("logistic")
    params, history = fit_local("logistic", X, y, max_rounds=2)
    assert len(history) == 2 and not history[-1]["done"]
    assert int(params["phase"]) == 1


@pytest.mark.parametrize("name", NAMES)
def test_map_on_125k_rows_takes_milliseconds(name):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((125_000, 20))
    y = X[:, 0] if name == "linear" else (None if name == "kmeans" else rng.integers(0, 3, len(X)))
    alg = get(name)
    params = alg.initial_params(20, {"k": 8} if name == "kmeans" else {}, 0)
    ctx = MapContext(0, 8, 0)
    step = alg.update(params, alg.reduce([alg.map(params, X, y, ctx)]))
    if not step.done:
        params = step.params
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        alg.map(params, X, y, ctx)
        best = min(best, time.perf_counter() - t)
    assert best < 0.25, f"{name} map took {best * 1e3:.0f} ms"
