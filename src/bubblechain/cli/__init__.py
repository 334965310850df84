"""The `bubblechain` command line, a thin layer over the library."""

from __future__ import annotations

import sys


def main() -> None:
    """The console script. Ctrl-C while the command still imports numpy and pyarrow (the
    first half second) ends it as at any other time, in one line with 130, not with a
    traceback from inside an import."""
    try:
        from .main import main as run
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        sys.exit(130)
    run()
