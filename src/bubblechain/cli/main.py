"""Entry point of the `bubblechain` console script."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from .. import __version__
from ..errors import Terminated
from ..interrupts import interrupt
from . import audit_cmds, data_cmds, ledger_cmds, train_cmds, witness_cmds
from .common import EXIT_USAGE, fail

# Typer raises click's exceptions: click's own, or (typer 0.2x) those of the copy of click
# it vendors, which has no public name: they are found among typer.BadParameter's bases.
_BAD = typer.BadParameter.__mro__
_USAGE_ERROR = next(c for c in _BAD if c.__name__ == "UsageError")
_CLICK_ERROR = next(c for c in _BAD if c.__name__ == "ClickException")


class _OneLineErrors(TyperGroup):
    """Usage errors (an unknown option, a value that does not parse, a missing argument)
    as one line naming the command and the input, like every other error, instead of
    a boxed panel; bare commands still show their help."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except _USAGE_ERROR as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # a bare command: its help
                # Its message is the help (click), or empty: typer's help printed itself.
                if e.format_message():
                    typer.echo(e.format_message())
                sys.exit(EXIT_USAGE)
            message = e.format_message().rstrip(".") + _given(e)
            if e.ctx is not None:  # (a missing option value comes without its command)
                where = e.ctx.command_path
                message = f"{where}: {message} (see {where} --help)"
            _exit(message, EXIT_USAGE)
        except _CLICK_ERROR as e:
            _exit(e.format_message(), e.exit_code)
        except typer.Abort:  # end of input at a prompt
            _exit("aborted", 1)
        sys.exit(code if isinstance(code, int) else 0)


def _given(e: Exception) -> str:
    """`` (got VALUE)`` for a value that did not parse: typer's message (pydantic's,
    its exception's cause) leaves the value out."""
    try:
        value = e.__cause__.errors()[0]["input"]  # type: ignore[union-attr]
    except (AttributeError, IndexError, KeyError, TypeError):
        return ""
    return f" (got {value!r})"


def _exit(message: str, code: int) -> None:
    fail(message, code)  # prints the line; outside click, exiting is ours to do
    sys.exit(code)


app = typer.Typer(
    cls=_OneLineErrors,
    name="bubblechain",
    help="Tamper-evident machine learning: committed data, signed bubbles, a witnessed ledger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
ledger_cmds.register(app)
data_cmds.register(app)
train_cmds.register(app)
audit_cmds.register(app)
witness_cmds.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bubblechain {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    """Tamper-evident machine learning."""


_PID = os.getpid()


def _on_signal(signum: int, frame: Any) -> None:
    if os.getpid() != _PID:
        # A worker forked from this process, not yet past its own start: Ctrl-C reaches
        # the whole process group, and stopping the command is this process's to do.
        return
    if signum == signal.SIGTERM:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
        interrupt(Terminated())
    else:
        interrupt(KeyboardInterrupt())


def main() -> None:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    app()
