"""The algorithms by name, as ``job.start`` and the command line name them."""

from __future__ import annotations

from .base import Algorithm
from .kmeans import ALGORITHM as KMEANS
from .linear import ALGORITHM as LINEAR
from .logistic import ALGORITHM as LOGISTIC
from .naive_bayes import ALGORITHM as NAIVE_BAYES

ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in (LOGISTIC, LINEAR, KMEANS, NAIVE_BAYES)}


def get(name: str) -> Algorithm:
    """The algorithm called ``name``; a ValueError lists the valid names otherwise."""
    try:
        return ALGORITHMS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown algorithm {name!r}; valid: {', '.join(sorted(ALGORITHMS))}"
        ) from None
