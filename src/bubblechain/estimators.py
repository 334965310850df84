"""scikit-learn-style estimators over the four MapReduce algorithms, untracked or on a ledger.

Each estimator trains one of the registered algorithms (see ``algorithms/``):

- ``fit(X, y)`` with ``ledger=None`` runs the in-memory driver (`fit_local`):
  the same map/reduce/update steps, no bubbles, no ledger — the fast path for
  exploration, grid searches and cross-validation;
- ``fit(X, y)`` with ``ledger=HOME`` (a path, or an open `Ledger`) is tracked:
  X and y are written to a content-addressed Parquet file under the home
  (``HOME/datasets/<name>-<hash8>.parquet``, with an ``id`` column), committed
  as a dataset, and trained by the runtime with every step signed on the ledger;
  ``job_``, ``model_path_`` and ``model_hash_`` name the record;
- ``fit("dataset", target="col")`` trains on a dataset already committed on the
  ledger, reading its source file on the workers.

Give ``ledger`` as a home path where estimators are cloned (grid searches,
cross-validation): an open `Ledger` holds locks and connections, which
``clone`` cannot deep-copy. Pass an open `Ledger` when this process already
holds the home open (a second open of the same home would wait for its lock).

They follow scikit-learn's conventions without depending on it at run time:
hyperparameters are stored verbatim by ``__init__``, `get_params` and
`set_params` read the ``__init__`` signature (so ``sklearn.base.clone``, grid
searches and ``cross_val_score`` work), fitted attributes end in ``_`` and
``fit`` returns ``self``. Predicting before fitting raises `NotFittedError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import math
import numbers
import os
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .algorithms import _sums
from .algorithms.base import Params, encode_arrays
from .algorithms.kmeans import HYPER_WORDS as KMEANS_WORDS
from .algorithms.kmeans import assign
from .algorithms.local import fit_local
from .algorithms.logistic import MAX_LS
from .algorithms.registry import get as get_algorithm
from .crypto.canonical import MAX_SAFE

if TYPE_CHECKING:
    from .ledger import Ledger
    from .training.runtime import TrainResult

__all__ = [
    "ConvergenceWarning",
    "GaussianNB",
    "KMeans",
    "LinearRegression",
    "LogisticRegression",
    "NotFittedError",
    "Ridge",
]


class NotFittedError(ValueError, AttributeError):
    """An estimator was used before ``fit`` (a ValueError and AttributeError, as scikit-learn's).

    When scikit-learn is loaded, what is raised is also ``sklearn.exceptions.NotFittedError``.
    """

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # rebuilt with the receiving process's flavour (joblib workers send errors back)
        return _not_fitted_error, self.args


class ConvergenceWarning(UserWarning):
    """The optimiser stopped at its iteration limit rather than converging.

    When scikit-learn is loaded, what is warned is also ``sklearn.exceptions.ConvergenceWarning``,
    so filters on either class apply.
    """


_FLAVOURED: dict[tuple[type, type], type] = {}


def _sklearn_flavour(ours: type) -> type:
    """``ours``, or, when ``sklearn.exceptions`` is loaded, a subclass of ``ours`` and of
    scikit-learn's class of the same name, so ``except``/warning filters naming either
    catch it. scikit-learn is not imported for this (it is not a dependency): code that
    names its classes has imported it already.
    """
    theirs = getattr(sys.modules.get("sklearn.exceptions"), ours.__name__, None)
    if not isinstance(theirs, type) or issubclass(ours, theirs):
        return ours
    cls = _FLAVOURED.get((ours, theirs))
    if cls is None:
        attrs = {"__module__": __name__, "__qualname__": ours.__qualname__, "__doc__": ours.__doc__}
        cls = _FLAVOURED[ours, theirs] = type(ours.__name__, (ours, theirs), attrs)
    return cls


def _not_fitted_error(*args: Any) -> NotFittedError:
    return _sklearn_flavour(NotFittedError)(*args)


def _warn(message: str, category: type[Warning]) -> None:
    """Warn ``category`` (scikit-learn's flavour when loaded) at the line that called into
    this module — ``fit`` reaches the warning by different paths, tracked or not."""
    frame, level = sys._getframe(1), 2  # stacklevel 2 is the frame calling _warn
    while frame is not None and frame.f_code.co_filename == __file__:
        frame, level = frame.f_back, level + 1
    warnings.warn(message, _sklearn_flavour(category), stacklevel=level)


# --- inputs -----------------------------------------------------------------------


def _numeric(values: Any, what: str) -> np.ndarray:
    """``values`` as float64; complex numbers (whose imaginary part a cast would drop),
    dates, durations and values that are not numbers are refused, naming ``what``."""
    try:
        a = np.asarray(values)
    except ValueError as e:  # ragged rows
        raise ValueError(f"{what} must be a rectangular array of numbers: {e}") from None
    if np.iscomplexobj(a):
        raise ValueError(f"{what} holds complex numbers: complex data not supported")
    if a.dtype.kind in "mM":  # a cast would give counts of nanoseconds, days… silently
        raise TypeError(f"{what} holds {a.dtype} values: convert dates and durations to numbers")
    try:
        return a.astype(np.float64, copy=False)
    except (TypeError, ValueError) as e:  # the same class numpy raised
        raise type(e)(f"{what} must be numeric: {e}") from None


def _as_matrix(X: Any, what: str = "X") -> tuple[np.ndarray, list[str] | None]:
    """X as a finite 2-d float64 array, plus its column names when it has string names.

    Accepts numpy arrays and array-likes, pandas DataFrames and pyarrow Tables
    (duck-typed: pandas and pyarrow are not imported for this).
    """
    if isinstance(X, str | bytes | os.PathLike):
        raise TypeError(
            f"{what} must be an array or a table here, got {type(X).__name__} {X!r}; "
            "fit(NAME, target=...) takes a committed dataset's name"
        )
    sparse = sys.modules.get("scipy.sparse")  # only loaded if X could be sparse
    if sparse is not None and sparse.issparse(X):
        raise TypeError(
            f"{what} is a sparse {type(X).__name__}; sparse input is not supported: "
            f"pass a dense array ({what}.toarray())"
        )
    names: list[str] | None = None
    columns: list[Any] | None = None
    if hasattr(X, "column_names") and hasattr(X, "column"):  # pyarrow Table
        columns = list(X.column_names)
        names = [str(c) for c in columns]
        arr = (
            np.column_stack(
                [
                    _numeric(X.column(j).to_numpy(), f"{what} column {c!r}")
                    for j, c in enumerate(columns)
                ]
            )
            if X.num_columns
            else np.empty((X.num_rows, 0))
        )
    elif hasattr(X, "columns") and hasattr(X, "to_numpy"):  # pandas DataFrame
        columns = list(X.columns)
        names = [str(c) for c in columns] if all(isinstance(c, str) for c in columns) else None
        if all(getattr(d, "kind", "O") in "biuf" for d in X.dtypes):  # real numbers throughout
            arr = X.to_numpy(dtype=np.float64, na_value=np.nan)  # pandas NA → NaN, refused below
        else:
            arr = np.empty(X.shape)
            for j, c in enumerate(columns):
                arr[:, j] = _numeric(X.iloc[:, j].to_numpy(na_value=np.nan), f"{what} column {c!r}")
    else:
        arr = _numeric(X, what)
    if arr.ndim == 1:
        raise ValueError(
            f"{what} must be two-dimensional, got a 1-d array of {arr.shape[0]} values; "
            "use X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one sample"
        )
    if arr.ndim != 2:
        raise ValueError(f"{what} must be two-dimensional, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{what} has no rows")
    if arr.shape[1] == 0:  # scikit-learn's words
        raise ValueError(
            f"{what} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required"
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = divmod(int(np.argmax(bad)), arr.shape[1])  # the first, in row order
        where = f"column {columns[col]!r}" if columns is not None else f"column {col}"
        raise ValueError(
            f"{what} contains NaN or infinity: {int(bad.sum())} value(s), the first at "
            f"row position {row}, {where}"
        )
    return arr, names


_DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _fresh(name: str, taken: Sequence[str]) -> str:
    """``name``, or ``name_1``, ``name_2``… if a column is already called that."""
    out, i = name, 0
    while out in taken:
        i += 1
        out = f"{name}_{i}"
    return out


def _check_number(
    name: str, value: Any, integer: bool, low: float, strict: bool, infinite: bool
) -> None:
    """Refuse a hyperparameter that is not a number of the right kind and range, naming it
    (the algorithms' own checks name their hyperparameters, e.g. k for n_clusters)."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool | np.bool_) or not isinstance(value, kind):
        raise ValueError(f"{name} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if math.isnan(value) or (math.isinf(value) and not (infinite and value > 0)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if value < low or (strict and value == low):
        bound = f"greater than {low:g}" if strict else f"at least {low:g}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")


# --- the shared machinery ----------------------------------------------------------


class _Estimator:
    """get_params/set_params, fit dispatch (untracked / tracked / committed dataset)."""

    _algorithm: ClassVar[str]
    _estimator_type: ClassVar[str]  # "classifier", "regressor" or "clusterer"
    # hyperparameter -> (integer?, lower bound, bound excluded?, +inf allowed?)
    _hyper_ranges: ClassVar[dict[str, tuple[bool, float, bool, bool]]] = {}
    _min_classes: ClassVar[int] = 1  # classifiers: distinct labels y must hold
    # hyperparameter -> the words it also takes, and the number each stands for
    _hyper_words: ClassVar[dict[str, dict[str, int | float]]] = {}

    # the runtime options every estimator takes (set by the subclasses' __init__)
    partitions: int
    engine: str
    ledger: str | os.PathLike | Ledger | None
    seed: int
    iterations: int | None

    # -- parameters ---------------------------------------------------------------
    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The ``__init__`` parameters and their current values (``deep`` is accepted for
        scikit-learn; these estimators have no nested estimators)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> _Estimator:
        """Set ``__init__`` parameters by name; unknown names are an error. Returns self."""
        valid = self._get_param_names()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(
                    f"invalid parameter {key!r} for {type(self).__name__}; "
                    f"valid parameters are: {valid}"
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
        }
        shown = [
            f"{k}={v!r}"
            for k, v in self.get_params().items()
            if not (k in defaults and _same(defaults[k], v))
        ]
        return f"{type(self).__name__}({', '.join(shown)})"

    def __sklearn_tags__(self) -> Any:
        """scikit-learn ≥ 1.6 reads the estimator type from tags (imported only when asked)."""
        from sklearn.utils import (  # scikit-learn asks for tags, so it is installed
            ClassifierTags,
            RegressorTags,
            Tags,
            TargetTags,
            TransformerTags,
        )

        kind = self._estimator_type
        return Tags(
            estimator_type=kind,
            target_tags=TargetTags(required=kind != "clusterer"),
            classifier_tags=ClassifierTags() if kind == "classifier" else None,
            regressor_tags=RegressorTags() if kind == "regressor" else None,
            transformer_tags=TransformerTags(preserves_dtype=[]) if kind == "clusterer" else None,
        )

    # -- what each estimator says about its algorithm ------------------------------
    def _hyper(self) -> dict[str, Any]:
        raise NotImplementedError

    def _round_cap(self) -> int | None:
        """Rounds to allow when ``iterations`` is None (None: until the algorithm stops)."""
        return None

    def _set_fitted(self, params: Params) -> None:
        raise NotImplementedError

    # -- fitting --------------------------------------------------------------------
    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        target: str | None = None,
        features: Sequence[str] | None = None,
        dataset_name: str | None = None,
    ) -> _Estimator:
        """Fit on arrays (in memory, or tracked with ``ledger``) or on a committed dataset.

        ``X`` may be the name of a dataset committed on ``ledger``; then ``target``
        names the label column and ``features`` the feature columns (default: every
        numeric column but the id and the target). ``dataset_name`` names the
        dataset a tracked fit on arrays commits (default ``fit-<hash8>``).
        """
        self._reset()
        self._check_runtime_options()
        if isinstance(X, str):
            if y is not None:
                raise ValueError(
                    f"X names the committed dataset {X!r}: give its label column as target=, not y"
                )
            if isinstance(features, str):  # list() would split it into letters
                raise TypeError(
                    f"features= takes a list of column names, got the string {features!r}; "
                    f"use features=[{features!r}]"
                )
            if features is not None and not len(features):  # was taken as every column
                raise ValueError(
                    "features= names no column: name at least one, or leave it out to "
                    "train on every numeric column but the id and the target"
                )
            return self._fit_dataset(X, target, None if features is None else list(features))
        if target is not None or features is not None:
            raise ValueError("target= and features= apply only when X names a committed dataset")
        if dataset_name is not None:
            if self.ledger is None:
                raise ValueError(
                    "dataset_name= names the dataset a tracked fit commits: pass ledger="
                )
            if not _DATASET_NAME.fullmatch(dataset_name):
                raise ValueError(
                    f"dataset_name {dataset_name!r} must be letters, digits, '.', '_' or '-', "
                    "starting with a letter or digit (it names a file under the home)"
                )
        Xa, names = _as_matrix(X)
        ya = self._check_y(y, len(Xa))
        self._check_rows(len(Xa))
        if self.ledger is None:
            if self.engine != "local":
                raise ValueError(
                    f"engine={self.engine!r} needs a ledger: untracked fits run in memory "
                    "in this process; pass ledger=HOME to train on the engine"
                )
            params, history = fit_local(
                self._algorithm,
                Xa,
                ya,
                partitions=self.partitions,
                hyper=self._hyper(),
                seed=self.seed,
                max_rounds=self._max_rounds(setup=True),
            )
            self.n_rounds_ = len(history)
            self._set_fitted(params)
        else:
            with self._open_ledger() as led:
                name, feats, tcol = self._write_dataset(led, Xa, ya, names, dataset_name)
                self._train(led, name, tcol, feats)
        self.n_features_in_ = Xa.shape[1]
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        self._after_fit(Xa)
        return self

    def _check_runtime_options(self) -> None:
        """Refuse a cap or a partition count below 1 before anything runs or is committed
        (``iterations=0`` used to return an unfitted, all-zero model), and the same for
        the hyperparameters, by the names the user gave them."""
        for name in ("iterations", "partitions"):
            value = getattr(self, name)
            if value is None and name == "iterations":
                continue
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        seed = self.seed
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        if not 0 <= seed <= MAX_SAFE:  # job.start records it as a JSON number
            raise ValueError(
                f"seed must be from 0 to 2**53 - 1 (a JSON number in the job's record), got {seed}"
            )
        for name, (integer, low, strict, infinite) in self._hyper_ranges.items():
            value = self._resolved(name)
            _check_number(name, value, integer, low, strict, infinite)
            if self.ledger is not None and not math.isfinite(value):
                raise ValueError(
                    f"{name}={value!r} cannot be recorded in a tracked job "
                    "(JSON numbers are finite); use a large finite value"
                )

    def _resolved(self, name: str) -> Any:
        """A hyperparameter's value, a word it takes (KMeans' ``n_init="auto"``) as the
        number it stands for; any other value as given, for `_check_number` to judge."""
        value = getattr(self, name)
        words = self._hyper_words.get(name, {})
        if isinstance(value, str) and value in words:
            return words[value]
        if isinstance(value, str) and words:
            raise ValueError(
                f"{name} must be {' or '.join(map(repr, words))} or a number, got {value!r}"
            )
        return value

    def _check_rows(self, n_rows: int) -> None:
        """Hook to refuse too few rows before anything runs or is committed (KMeans)."""

    def _after_fit(self, X: np.ndarray | None) -> None:
        """Hook for attributes computed on the training rows (KMeans.labels_); None after
        ``fit("dataset")``, whose rows are not in memory."""

    def _check_y(self, y: Any, n_rows: int) -> np.ndarray | None:
        if self._estimator_type == "clusterer":
            return None
        if y is None:
            raise ValueError(f"{type(self).__name__} is supervised: fit(X, y) needs y")
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(f"y must be one-dimensional, got shape {y.shape}")
        if len(y) != n_rows:
            raise ValueError(f"X has {n_rows} rows but y has {len(y)}")
        if self._estimator_type == "regressor":
            missing = _sums.missing_rows(y)
            if len(missing):
                raise ValueError(
                    f"y (the target) is missing at positions {_sums.show_rows(missing)}"
                )
            y = _numeric(y, "y (the target)")
            if not np.isfinite(y).all():
                rows = np.flatnonzero(~np.isfinite(y))
                raise ValueError(
                    f"y (the target) is not finite at positions {_sums.show_rows(rows)}"
                )
            return y
        y = _sums.as_labels(y)
        # the algorithm's own rule on its classes (a continuous or id-like target is
        # refused), here so that a tracked fit refuses before committing anything
        classes = _sums.reduce_labels([{"labels": np.unique(y), "n": np.int64(len(y))}])
        if len(classes["labels"]) < self._min_classes:
            found = ", ".join(repr(c.item()) for c in classes["labels"])
            raise ValueError(
                f"y (the target) has {len(classes['labels'])} class ({found}): "
                f"{type(self).__name__} needs at least {self._min_classes}"
            )
        return y

    def _max_rounds(self, setup: bool = False) -> int | None:
        """The cap on rounds; ``setup`` adds the algorithm's setup rounds, which the
        tracked runtime adds itself (fit_local counts every round)."""
        cap = self.iterations if self.iterations is not None else self._round_cap()
        if cap is None or not setup:
            return cap
        return cap + getattr(get_algorithm(self._algorithm), "setup_rounds", 0)

    def _reset(self) -> None:
        """Forget everything a previous fit learnt (attributes ending in ``_``)."""
        for key in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, key)

    @contextlib.contextmanager
    def _open_ledger(self) -> Iterator[Ledger]:
        from .ledger import Ledger

        if isinstance(self.ledger, Ledger):
            yield self.ledger
        elif isinstance(self.ledger, str | os.PathLike):
            with Ledger.open(self.ledger) as led:
                yield led
        else:
            raise TypeError(
                f"ledger must be a home path or an open Ledger, got {type(self.ledger).__name__}"
            )

    def _write_dataset(
        self,
        led: Ledger,
        X: np.ndarray,
        y: np.ndarray | None,
        names: list[str] | None,
        dataset_name: str | None,
    ) -> tuple[str, list[str], str | None]:
        """Write X (and y) to a content-addressed Parquet file and commit it, once.

        Returns the dataset name, feature columns and target column. A file and a
        commitment that already hold these rows are reused; a file that was
        changed since is then caught by the workers' partition check.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        from .data.ledger import commit_dataset, find_commitment
        from .errors import UsageError

        feats = list(names) if names is not None else [f"x{j}" for j in range(X.shape[1])]
        if len(set(feats)) != len(feats):
            raise ValueError(f"X has duplicate column names: {feats}")
        id_col = _fresh("id", feats)
        tcol = None if y is None else _fresh("target", [*feats, id_col])
        content = {"X": X, "columns": np.array([*feats, id_col, tcol or ""])}
        if y is not None:
            content["y"] = y
        digest = hashlib.sha256(encode_arrays(content)).hexdigest()[:8]
        name = dataset_name or f"fit-{digest}"
        path = (led.home.root / "datasets" / f"{dataset_name or 'fit'}-{digest}.parquet").absolute()
        with contextlib.suppress(UsageError):
            _, body = find_commitment(led, name)
            if body.get("source") == str(path) and path.exists():
                return name, feats, tcol
        cols: dict[str, Any] = {id_col: np.arange(len(X), dtype=np.int64)}
        cols.update({f: X[:, j] for j, f in enumerate(feats)})
        if y is not None:
            cols[tcol] = y  # type: ignore[index]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        pq.write_table(pa.table(cols), tmp)
        os.replace(tmp, path)
        commit_dataset(led, str(path), id_col, name=name)
        return name, feats, tcol

    def _fit_dataset(self, name: str, target: str | None, features: list[str] | None) -> Any:
        if self.ledger is None:
            raise ValueError(
                f"fit({name!r}) trains on a committed dataset: pass ledger=HOME "
                "(the home it is committed in)"
            )
        if self._estimator_type != "clusterer" and target is None:
            raise ValueError(
                f"{type(self).__name__} is supervised: fit({name!r}, target=COLUMN) names "
                "the label column"
            )
        with self._open_ledger() as led:
            meta = self._train(led, name, target, features)
        self.n_features_in_ = len(meta["features"])
        self.feature_names_in_ = np.asarray(meta["features"], dtype=object)
        self._after_fit(None)
        return self

    def _train(
        self, led: Ledger, name: str, target: str | None, features: list[str] | None
    ) -> dict[str, Any]:
        """Tracked training on the committed dataset ``name``; loads the model file back."""
        from .training.model import read_model
        from .training.runtime import train

        cap = self._max_rounds()
        result: TrainResult = train(
            led,
            data=name,
            algorithm=self._algorithm,
            target=target,
            features=features,
            partitions=self.partitions,
            iterations=cap if cap is not None else 10**9,
            engine=self.engine,
            hyper=self._hyper(),
            seed=self.seed,
        )
        params, meta, digest = read_model(Path(result.model_path))
        if digest != result.model_hash:
            raise RuntimeError(
                f"model file {result.model_path} changed after training: its hash is "
                f"{digest}, model.final records {result.model_hash}"
            )
        self.job_ = result.job
        self.model_path_ = result.model_path
        self.model_hash_ = result.model_hash
        self.dataset_ = name
        self.n_rounds_ = result.rounds
        self._set_fitted(params)
        self._after_train(result)
        return meta

    def _after_train(self, result: TrainResult) -> None:
        """Hook for attributes taken from a tracked job's evaluation round (KMeans.inertia_)."""

    # -- using the model -------------------------------------------------------------
    def _check_fitted(self) -> Params:
        params = getattr(self, "params_", None)
        if params is None:
            raise _not_fitted_error(
                f"this {type(self).__name__} is not fitted yet; call fit before using it"
            )
        return params

    def _X(self, X: Any) -> np.ndarray:
        """X for predicting: columns picked by name when both sides have names."""
        self._check_fitted()
        arr, names = _as_matrix(X)
        fitted = getattr(self, "feature_names_in_", None)
        if (fitted is None) != (names is None):  # as scikit-learn warns: columns taken by place
            cls = type(self).__name__
            _warn(
                f"X has feature names, but {cls} was fitted without feature names"
                if fitted is None
                else f"X does not have valid feature names, but {cls} was fitted with "
                "feature names",
                UserWarning,
            )
        if fitted is not None and names is not None and list(fitted) != names:
            missing = [f for f in fitted if f not in names]
            if missing:
                raise ValueError(f"X lacks the feature columns the model was fitted on: {missing}")
            arr = arr[:, [names.index(f) for f in fitted]]
        if arr.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {arr.shape[1]} features, but {type(self).__name__} was fitted "
                f"with {self.n_features_in_}"
            )
        return arr


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a is b or a == b)
    except (TypeError, ValueError):
        return False


class _Classifier(_Estimator):
    _estimator_type = "classifier"

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        return get_algorithm(self._algorithm).predict(self._check_fitted(), self._X(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``."""
        alg: Any = get_algorithm(self._algorithm)
        return alg.predict_proba(self._check_fitted(), self._X(X))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def score(self, X: Any, y: Any) -> float:
        """Accuracy: the fraction of rows whose predicted class is ``y``."""
        pred = self.predict(X)
        y = _sums.as_labels(y)
        if len(y) != len(pred):
            raise ValueError(f"X has {len(pred)} rows but y has {len(y)}")
        return float(np.mean(pred == y))


# --- the four estimators ------------------------------------------------------------


class LogisticRegression(_Classifier):
    """L2-penalised logistic regression (binary or multinomial) by MapReduce L-BFGS.

    The objective and ``C``, ``max_iter``, ``tol`` are scikit-learn's
    ``LogisticRegression(solver="lbfgs")``; ``partitions``, ``engine``, ``ledger``,
    ``seed`` and ``iterations`` (a cap on MapReduce rounds, not counting the two setup
    rounds: the classes and the starting point) say how and where it runs.
    """

    _algorithm = "logistic"
    _min_classes = 2
    _hyper_ranges: ClassVar = {
        "C": (False, 0, True, True),  # C=inf: no penalty, as scikit-learn's
        "max_iter": (True, 1, False, False),
        "tol": (False, 0, False, False),
    }

    def __init__(
        self,
        C: float = 1.0,
        max_iter: int = 100,
        tol: float = 1e-4,
        *,
        partitions: int = 4,
        engine: str = "local",
        ledger: str | os.PathLike | Ledger | None = None,
        seed: int = 0,
        iterations: int | None = None,
    ) -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.partitions = partitions
        self.engine = engine
        self.ledger = ledger
        self.seed = seed
        self.iterations = iterations

    def _hyper(self) -> dict[str, Any]:
        return {"C": self.C, "max_iter": self.max_iter, "tol": self.tol}

    def _round_cap(self) -> int | None:
        # at most (line search + 1) evaluations per iteration, after the setup rounds;
        # the algorithm stops itself at max_iter, this only bounds a tracked job.
        return int(self.max_iter) * (MAX_LS + 2)

    def _set_fitted(self, params: Params) -> None:
        alg: Any = get_algorithm(self._algorithm)
        self.params_ = params
        self.classes_ = params["classes"]
        self.coef_, self.intercept_ = alg.coef_intercept(params)
        self.n_iter_ = np.array([int(params["iteration"])], dtype=np.int32)
        self.status_ = str(params["status"])
        if not self.status_.startswith("converged"):
            _warn(
                f"LogisticRegression did not converge ({self.status_}) after "
                f"{int(params['iteration'])} iterations; raise max_iter (or iterations)",
                ConvergenceWarning,
            )

    def decision_function(self, X: Any) -> np.ndarray:
        """Signed distance to the boundary (binary: one column, flattened) per row."""
        alg: Any = get_algorithm(self._algorithm)
        return alg.decision_function(self._check_fitted(), self._X(X))


class GaussianNB(_Classifier):
    """Gaussian naive Bayes from one pass of reduced per-class counts, means and moments.

    ``var_smoothing`` is scikit-learn's; predictions match ``sklearn.naive_bayes.GaussianNB``.
    """

    _algorithm = "naive-bayes"
    _hyper_ranges: ClassVar = {"var_smoothing": (False, 0, False, False)}

    def __init__(
        self,
        var_smoothing: float = 1e-9,
        *,
        partitions: int = 4,
        engine: str = "local",
        ledger: str | os.PathLike | Ledger | None = None,
        seed: int = 0,
        iterations: int | None = None,
    ) -> None:
        self.var_smoothing = var_smoothing
        self.partitions = partitions
        self.engine = engine
        self.ledger = ledger
        self.seed = seed
        self.iterations = iterations

    def _hyper(self) -> dict[str, Any]:
        return {"var_smoothing": self.var_smoothing}

    def _round_cap(self) -> int | None:
        return 2

    def _set_fitted(self, params: Params) -> None:
        self.params_ = params
        self.classes_ = params["classes"]
        self.class_count_ = params["class_count"].astype(np.float64)
        self.class_prior_ = params["class_prior"]
        self.theta_ = params["theta"]
        self.var_ = params["var"]
        self.epsilon_ = float(params["epsilon"])

    def predict_log_proba(self, X: Any) -> np.ndarray:
        alg: Any = get_algorithm(self._algorithm)
        jll = alg.joint_log_likelihood(self._check_fitted(), self._X(X))
        top = jll.max(axis=1, keepdims=True)
        return jll - (top + np.log(np.sum(np.exp(jll - top), axis=1, keepdims=True)))


class LinearRegression(_Estimator):
    """Least squares (ridge when ``alpha > 0``) from reduced centred X'X, X'y — one pass.

    ``alpha=0`` is ``sklearn.linear_model.LinearRegression``; ``alpha > 0`` is
    ``sklearn.linear_model.Ridge(alpha)`` (intercept not penalised).
    """

    _algorithm = "linear"
    _estimator_type = "regressor"
    _hyper_ranges: ClassVar = {"alpha": (False, 0, False, False)}

    def __init__(
        self,
        alpha: float = 0.0,
        *,
        partitions: int = 4,
        engine: str = "local",
        ledger: str | os.PathLike | Ledger | None = None,
        seed: int = 0,
        iterations: int | None = None,
    ) -> None:
        self.alpha = alpha
        self.partitions = partitions
        self.engine = engine
        self.ledger = ledger
        self.seed = seed
        self.iterations = iterations

    def _hyper(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def _round_cap(self) -> int | None:
        return 1

    def _set_fitted(self, params: Params) -> None:
        self.params_ = params
        self.coef_ = params["coef"]
        self.intercept_ = float(params["intercept"])

    def predict(self, X: Any) -> np.ndarray:
        return get_algorithm(self._algorithm).predict(self._check_fitted(), self._X(X))

    def score(self, X: Any, y: Any) -> float:
        """R² of the predictions (``sklearn.metrics.r2_score``)."""
        pred = self.predict(X)
        y = np.asarray(y, dtype=np.float64).ravel()
        if len(y) != len(pred):
            raise ValueError(f"X has {len(pred)} rows but y has {len(y)}")
        ss_res = float(np.sum((y - pred) ** 2))
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        if ss_tot == 0:
            return 1.0 if ss_res == 0 else 0.0
        return 1.0 - ss_res / ss_tot


class Ridge(LinearRegression):
    """`LinearRegression` with scikit-learn's ``Ridge`` default penalty ``alpha=1.0``."""

    def __init__(
        self,
        alpha: float = 1.0,
        *,
        partitions: int = 4,
        engine: str = "local",
        ledger: str | os.PathLike | Ledger | None = None,
        seed: int = 0,
        iterations: int | None = None,
    ) -> None:
        super().__init__(
            alpha,
            partitions=partitions,
            engine=engine,
            ledger=ledger,
            seed=seed,
            iterations=iterations,
        )


class KMeans(_Estimator):
    """k-means (Lloyd on the full data; k-means++ on a seeded, recorded sample).

    ``n_clusters``, ``max_iter``, ``tol`` and ``n_init`` mean what scikit-learn's
    do (``n_init="auto"``, scikit-learn's default, is one run, as its k-means++
    initialisation makes it); ``seed`` plays ``random_state``'s part. ``score`` is
    minus the inertia, as scikit-learn's. ``labels_`` is set when the rows were in
    memory (not after ``fit("dataset")``: use ``predict`` on the rows you want labelled).
    """

    _algorithm = "kmeans"
    _estimator_type = "clusterer"
    _hyper_ranges: ClassVar = {
        "n_clusters": (True, 1, False, False),
        "max_iter": (True, 1, False, False),
        "tol": (False, 0, False, False),
        "n_init": (True, 1, False, False),
    }
    _hyper_words: ClassVar = KMEANS_WORDS  # scikit-learn's n_init="auto": one run

    def __init__(
        self,
        n_clusters: int = 8,
        max_iter: int = 300,
        tol: float = 1e-4,
        n_init: int | str = 3,
        *,
        partitions: int = 4,
        engine: str = "local",
        ledger: str | os.PathLike | Ledger | None = None,
        seed: int = 0,
        iterations: int | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.partitions = partitions
        self.engine = engine
        self.ledger = ledger
        self.seed = seed
        self.iterations = iterations

    def _hyper(self) -> dict[str, Any]:
        return {
            "k": self.n_clusters,
            "max_iter": self.max_iter,
            "tol": self.tol,
            "n_init": self._resolved("n_init"),
        }

    def _round_cap(self) -> int | None:
        return 2 + int(self.max_iter)  # sample, Lloyd rounds, final scoring

    def _check_rows(self, n_rows: int) -> None:
        if n_rows < self.n_clusters:
            raise ValueError(f"n_clusters={self.n_clusters} is more than the {n_rows} rows of X")

    def _set_fitted(self, params: Params) -> None:
        self.params_ = params
        self.cluster_centers_ = params["centers"]
        # The recorded params' inertia is that of the centres before the last move when
        # `iterations` stopped the rounds (0 after the sample round alone): inertia_ is
        # that of cluster_centers_ on the training rows, set by _after_fit or _after_train.
        self.inertia_ = float(params["inertia"])
        self.n_iter_ = int(params["iteration"])

    def _after_fit(self, X: np.ndarray | None) -> None:
        k = len(self.cluster_centers_)
        if X is None:  # fit("dataset"): no rows here; repeated centres are the sign
            distinct = len(np.unique(self.cluster_centers_, axis=0))
        else:
            self.labels_, d2 = assign(X, self.cluster_centers_)
            self.inertia_ = float(d2.sum())
            distinct = len(np.unique(self.labels_))
        if distinct < k:  # as scikit-learn warns (it does not say it in the attributes)
            _warn(
                f"KMeans found {distinct} distinct clusters, fewer than n_clusters={k}: "
                "X may have fewer distinct points than clusters",
                ConvergenceWarning,
            )

    def _after_train(self, result: TrainResult) -> None:
        # The job's evaluation round scored the final centres on every partition.
        self.inertia_ = float(result.value)

    def predict(self, X: Any) -> np.ndarray:
        """Index of the nearest centre for each row."""
        return get_algorithm(self._algorithm).predict(self._check_fitted(), self._X(X))

    def fit_predict(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        return self.fit(X, y, **fit_params).labels_

    def transform(self, X: Any) -> np.ndarray:
        """Euclidean distance of each row to each centre, shape (rows, n_clusters)."""
        X = self._X(X)
        out = np.empty((len(X), len(self.cluster_centers_)))
        for j, c in enumerate(self.cluster_centers_):  # exact differences: no cancellation
            diff = X - c
            out[:, j] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        return out

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        return self.fit(X, y, **fit_params).transform(X)

    def score(self, X: Any, y: Any = None) -> float:
        """Minus the inertia of X (sum of squared distances to the nearest centre)."""
        return -float(assign(self._X(X), self.cluster_centers_)[1].sum())
