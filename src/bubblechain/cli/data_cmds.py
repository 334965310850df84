"""Data commands: commit, prove, verify, list (``bubblechain data …``).

Thin wrappers over ``bubblechain.data.ledger``: they open the ledger, call one
function and print its result, as text or ``--json``. ``verify`` exits 1 when
the file differs from its commitment (a finding); bad input exits 2.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from ..data import ledger as data_ledger
from ..data.conform import describe_schema_diff
from ..ledger import Ledger
from .common import (
    EXIT_FINDINGS,
    HomeOpt,
    JsonOpt,
    console,
    emit_json,
    err_console,
    handle_errors,
    open_for_writing,
)

app = typer.Typer(
    name="data",
    help="Commit datasets to the ledger, prove rows, verify files against commitments.",
    no_args_is_help=True,
)

PathArg = Annotated[
    str, typer.Argument(help="A Parquet, CSV or Arrow IPC file, or a Parquet directory.")
]
NameOpt = Annotated[
    str | None,
    typer.Option("--name", help="Dataset name (default: the file's stem).", show_default=False),
]
VersionOpt = Annotated[
    int | None,
    typer.Option(
        "--version",
        help="Committed version of the dataset (default: the latest).",
        show_default=False,
    ),
]
SHOWN_IDS = 100
"""Ids listed per category in the text output of verify (--json lists them all)."""


def _time(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def progress_console(json_: bool) -> Console | None:
    """Where to draw progress: stderr, only on a terminal and never with --json."""
    if json_ or not (console.is_terminal and err_console.is_terminal):
        return None
    return err_console


@contextmanager
def _progress(json_: bool) -> Iterator[data_ledger.Progress | None]:
    """A rich spinner/bar fed by commit's progress callback; None when quiet."""
    where = progress_console(json_)
    if where is None:
        yield None
        return
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        console=where,
        transient=True,
    )
    tasks: dict[str, TaskID] = {}

    def update(phase: str, rows: int, total: int | None) -> None:
        if phase not in tasks:
            for t in tasks.values():
                bar.update(t, visible=False)
            tasks[phase] = bar.add_task(phase, total=total)
        bar.update(tasks[phase], completed=rows, total=total)

    with bar:
        yield update


@app.command()
@handle_errors
def commit(
    path: PathArg,
    id_column: Annotated[
        str, typer.Option("--id-column", help="The column that identifies each row.")
    ],
    name: NameOpt = None,
    home: HomeOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Commit a dataset (Merkle root over its rows) as a new version of its name."""
    name = data_ledger.dataset_name(path, name)  # a bad name is refused before any wait
    with open_for_writing(home) as led, _progress(json_) as progress:
        out = data_ledger.commit_dataset(led, path, id_column, name, progress=progress)
    if json_:
        emit_json(out)
        return
    console.print(
        f"committed dataset [bold]{escape(out['name'])}[/] version {out['version']}", markup=True
    )
    console.print(f"  rows     {out['rows']}")
    console.print(f"  root     {out['root']}")
    console.print(f"  message  {out['id']} (index {out['index']}, final)")


@app.command()
@handle_errors
def prove(
    path: PathArg,
    row: Annotated[str, typer.Option("--row", help="The row id (an integer for integer ids).")],
    name: NameOpt = None,
    version: VersionOpt = None,
    home: HomeOpt = None,
    json_: JsonOpt = False,
) -> None:
    """RFC 9162 inclusion proof of one row in a committed version (default: the latest)."""
    with Ledger.open(home, readonly=True) as led:
        proof = data_ledger.prove_row(led, path, row, name, version)
    if json_:
        emit_json(proof)
        return
    console.print(
        f"row {proof['row']!r} is leaf {proof['index']} of {proof['size']} in dataset "
        f"{proof['name']} version {proof['version']}",
        markup=False,
    )
    console.print(f"  leaf hash  {proof['leaf_hash']}")
    console.print(f"  root       {proof['root']}")
    console.print(f"  proof      {len(proof['proof'])} hashes, leaf to root:")
    for h in proof["proof"]:
        console.print(f"    {h}")


def _ids(label: str, ids: list[Any], quote: bool = True) -> None:
    if not ids:
        return
    shown = ", ".join(repr(i) if quote else str(i) for i in ids[:SHOWN_IDS])
    more = f" … and {len(ids) - SHOWN_IDS} more (--json lists all)" if len(ids) > SHOWN_IDS else ""
    console.print(f"  {label} ({len(ids)}): {shown}{more}", markup=False)


def _schema(drift: dict[str, Any]) -> None:
    console.print("  schema differs: " + describe_schema_diff(drift), markup=False)


@app.command()
@handle_errors
def verify(
    path: PathArg,
    name: NameOpt = None,
    version: VersionOpt = None,
    home: HomeOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Check that a file is exactly the committed data; name every row that differs."""
    with Ledger.open(home, readonly=True) as led:
        result = data_ledger.verify_dataset(led, path, name, version)
    if json_:
        emit_json(result)
    else:
        what = f"dataset {result['name']} version {result['version']} (root {result['root']})"
        if result["ok"]:
            console.print(f"[green]✓[/] {escape(f'{path} is exactly {what}')}", markup=True)
        else:
            console.print(f"[red]✗[/] {escape(f'{path} differs from {what}')}", markup=True)
            _ids("changed", result["changed"])
            _ids("missing", result["missing"])
            _ids("added", result["added"])
            _ids("duplicate ids", result["duplicates"])
            _ids(
                "file rows whose id is not an int",
                [f"{u['row']} ({u['text']!r})" for u in result["unreadable_ids"]],
                quote=False,
            )
            if result["schema"]:
                _schema(result["schema"])
    if not result["ok"]:
        raise typer.Exit(EXIT_FINDINGS)


@app.command("list")
@handle_errors
def list_(home: HomeOpt = None, json_: JsonOpt = False) -> None:
    """Committed datasets and their versions, oldest first."""
    with Ledger.open(home, readonly=True) as led:
        rows = data_ledger.datasets(led)
    if json_:
        emit_json(rows)
        return
    if not rows:
        console.print("no datasets committed")
        return
    # Plain aligned columns rather than a rich Table: the source path comes last
    # and stays whole (a table would fold it to fit the terminal).
    header = ("name", "version", "rows", "root", "time", "message", "source")
    lines = [header] + [
        (
            str(d["name"]),
            str(d["version"]),
            str(d["rows"]),
            str(d["root"])[:16],
            _time(d["time"]),
            d["id"][:12],
            d["source"] or "-",
        )
        for d in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    for line in lines:
        cells = [c.ljust(w) for c, w in zip(line, widths, strict=False)]
        console.print("  ".join([*cells, line[-1]]), markup=False, soft_wrap=True)


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="data")
