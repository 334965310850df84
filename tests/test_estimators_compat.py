"""The estimators as a scikit-learn user meets them: scikit-learn's exception and warning
classes, input validation at the edges, and what ``check_estimator`` still reports."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

import sklearn.exceptions as ske
from sklearn import datasets

from bubblechain.estimators import (
    ConvergenceWarning,
    GaussianNB,
    KMeans,
    LinearRegression,
    LogisticRegression,
    NotFittedError,
    Ridge,
)

ESTIMATORS = [LogisticRegression, LinearRegression, Ridge, KMeans, GaussianNB]


# --- scikit-learn's classes ------------------------------------------------------------


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_an_unfitted_estimator_raises_sklearns_not_fitted_error(cls):
    """It raised a class of its own, which `except sklearn.exceptions.NotFittedError`
    (and scikit-learn's check_estimators_unfitted) did not catch."""
    with pytest.raises(ske.NotFittedError, match="not fitted yet") as e:
        cls().predict(np.zeros((2, 2)))
    assert isinstance(e.value, NotFittedError) and type(e.value).__name__ == "NotFittedError"
    again = pickle.loads(pickle.dumps(e.value))  # joblib workers send errors back pickled
    assert isinstance(again, ske.NotFittedError) and isinstance(again, NotFittedError)
    assert again.args == e.value.args


def test_a_filter_on_sklearns_convergence_warning_applies_to_ours():
    X, y = datasets.load_breast_cancer(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=ske.ConvergenceWarning)
        LogisticRegression(max_iter=2).fit(X, y)  # raised our ConvergenceWarning
    with pytest.warns(ske.ConvergenceWarning, match="did not converge") as record:
        LogisticRegression(max_iter=2).fit(X, y)
    assert all(issubclass(w.category, ConvergenceWarning) for w in record)


def test_scikit_learn_stays_optional_at_run_time():
    """Without scikit-learn loaded, the errors are ours alone and nothing imports it."""
    code = (
        "import sys\n"
        "from bubblechain.estimators import KMeans, NotFittedError\n"
        "try:\n"
        "    KMeans().predict([[1.0]])\n"
        "except NotFittedError as e:\n"
        "    assert type(e) is NotFittedError, type(e).__mro__\n"
        "assert 'sklearn' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
