"""Entry point of the `bubblechain` console script."""

from __future__ import annotations

import typer

from .. import __version__
from . import audit_cmds, data_cmds, ledger_cmds, train_cmds

app = typer.Typer(
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


def main() -> None:
    app()
