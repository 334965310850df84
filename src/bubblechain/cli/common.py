"""What every command shares: the home option, JSON output, errors and exit codes.

Exit codes: 0 all holds, 1 findings (or the ledger could not finalise),
2 bad usage or unreadable input, 141 (128 + SIGPIPE) the reader of stdout went away.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from ..errors import BubblechainError, NotFinal, Rejected, Terminated, UsageError, one_line
from ..home import ENV_HOME, resolve_home
from ..ledger import Ledger
from ..ledger.lock import ENV_LOCK_WAIT

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2
EXIT_PIPE = 128 + signal.SIGPIPE  # as a shell reports a program SIGPIPE ended

HomeOpt = Annotated[
    str | None,
    typer.Option(
        "--home",
        envvar=ENV_HOME,
        help="Ledger home directory (default: ./.bubblechain).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]

console = Console(highlight=False, soft_wrap=True, markup=False)  # data is never markup
err_console = Console(stderr=True, highlight=False)

F = TypeVar("F", bound=Callable[..., Any])


def print_table(table: Any) -> None:
    """Print a table; piped, at its natural width, so no id or hash is cut short."""
    out = console if console.is_terminal else Console(width=10_000, highlight=False)
    out.print(table)


def cell(text: str, width: int) -> Text:
    """A table cell of data: plain text (never read as markup), one line, cut to ``width``."""
    text = " ".join(text.split())
    return Text(text if len(text) <= width else text[: width - 3] + "...")


def print_unchecked(items: list[str]) -> None:
    """What a reading command could not check with this user's access: not a finding."""
    for item in items:
        console.print(Text(f"- not checked: {item}", style="yellow"))


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print ``message`` as one error line (plain text: a path may hold brackets)."""
    line = Text("error:", style="bold red")
    line.append(f" {one_line(message)}")
    err_console.print(line, soft_wrap=True)
    return typer.Exit(code)


def lock_notice(home: str | None) -> Callable[[str, float], None]:
    """What a command waiting for the home's lock says on stderr, once, after a second."""
    root = resolve_home(home)

    def waiting(holder: str, timeout: float) -> None:
        err_console.print(
            Text(
                f"waiting for ledger {root}: in use by {holder}; giving up after "
                f"{timeout:g} s ({ENV_LOCK_WAIT} sets the wait)"
            ),
            soft_wrap=True,
        )

    return waiting


def open_for_writing(home: str | None) -> Ledger:
    """Open the ledger to append; if another process holds it, say so on stderr while waiting."""
    return Ledger.open(home, on_lock_wait=lock_notice(home))


def handle_errors(fn: F) -> F:
    """Turn library errors into one clear line on stderr and the contract's exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(*args, **kwargs)
            sys.stdout.flush()  # a closed pipe shows here, not in Python's flush at exit
            return result
        except BrokenPipeError:  # stdout's reader went away (`... | head`): end quietly
            _silence_stdout()
            raise typer.Exit(EXIT_PIPE) from None
        except (UsageError, Rejected) as e:
            raise fail(str(e), EXIT_USAGE) from None
        except NotFinal as e:
            raise fail(str(e), EXIT_FINDINGS) from None
        except BubblechainError as e:
            raise fail(str(e), EXIT_FINDINGS) from None
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (`Terminated`)
            code = 128 + (signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT)
            raise fail(str(e) or "interrupted", code) from None
        except OSError as e:  # a path the command was given cannot be used as asked
            where = f"{e.filename}: " if e.filename else ""
            raise fail(f"{where}{e.strerror or e}", EXIT_USAGE) from None

    return wrapper  # type: ignore[return-value]


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that what is left in its buffer goes nowhere when
    Python flushes it at exit (instead of 'Exception ignored ... BrokenPipeError')."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a file (a test's capture): nothing to flush into a pipe
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
