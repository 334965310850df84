"""Where map tasks run: a local process pool (the embedded default) or Dask distributed."""

from .base import Engine, make_engine

__all__ = ["Engine", "make_engine"]
