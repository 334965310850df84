"""Witness commands: rebuild an embedded witness's replica."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from ..ledger.rebuild import rebuild_witness
from .common import HomeOpt, JsonOpt, console, emit_json, err_console, handle_errors, lock_notice

app = typer.Typer(
    name="witness", help="Look after the embedded witnesses' replicas.", no_args_is_help=True
)


@app.command()
@handle_errors
def rebuild(
    name: Annotated[str, typer.Argument(help="The witness, as the genesis names it (w1, ...).")],
    home: HomeOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Rebuild a lost or corrupt replica from the ledger's final blocks, re-validated.

    The old replica is kept beside the new one, renamed. Blocks not yet final
    reach the witness in the usual way, the next time the ledger appends.
    """
    progress = Progress(
        TextColumn(f"rebuilding witness {name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("blocks"),
        console=err_console,
        disable=json_ or not err_console.is_terminal,
        transient=True,
    )
    with progress:
        task = progress.add_task("rebuild", total=None)
        done = rebuild_witness(
            home,
            name,
            on_block=lambda n, total: progress.update(task, completed=n, total=total),
            on_lock_wait=lock_notice(home),
        )
    if json_:
        emit_json(done.to_dict())
        return
    console.print(
        f"✓ witness {name} rebuilt: {done.blocks} final blocks, {done.messages} messages "
        "re-validated" + (f"; {done.cosigned} block(s) newly cosigned" if done.cosigned else "")
    )
    if done.replaced:
        console.print(f"  the old replica is kept at {done.replaced}")


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="witness")
