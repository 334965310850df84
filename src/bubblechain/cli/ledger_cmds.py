"""Ledger commands: init, note, status, log, checkpoint, keys, verify."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..ledger import Ledger
from ..ledger.kinds import KINDS
from ..ledger.ledger import Entry
from ..ledger.verify import verify_home
from .common import (
    EXIT_FINDINGS,
    HomeOpt,
    JsonOpt,
    cell,
    console,
    emit_json,
    err_console,
    fail,
    handle_errors,
    open_for_writing,
    print_table,
    print_unchecked,
)


def _time(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%fZ")[:-4] + "Z"


@handle_errors
def init(
    home: HomeOpt = None,
    witnesses: Annotated[int, typer.Option(help="Number of embedded witnesses.")] = 3,
    quorum: Annotated[int, typer.Option(help="Cosignatures that make a block final.")] = 2,
    origin: Annotated[str | None, typer.Option(help="Log origin name (a schema-less URL).")] = None,
    artifacts: Annotated[
        str | None, typer.Option(help="Artifact store: a directory or fsspec URL (s3://...).")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Create keys, the genesis, the ledger and one replica per witness."""
    if artifacts is not None:
        if artifacts.startswith("memory://"):
            raise fail(f"--artifacts {artifacts}: an in-memory store is gone when the command ends")
        if "://" not in artifacts:  # later commands run from other directories
            artifacts = str(Path(artifacts).absolute())
    with Ledger.init(
        home, witnesses=witnesses, quorum=quorum, origin=origin, artifacts=artifacts
    ) as led:
        st = led.status()
        st["genesis_file"] = str(led.home.genesis)
        st["vkeys"] = led.vkeys()
    if json_:
        emit_json(st)
        return
    console.print(
        f"Initialised ledger [bold]{escape(st['origin'])}[/] at {escape(str(st['home']))}",
        markup=True,
    )
    console.print(
        f"  witnesses: {', '.join(w['name'] for w in st['witnesses'])} "
        f"(quorum {st['quorum']} of {len(st['witnesses'])})"
    )
    console.print(f"  genesis:   {st['genesis']}  ({st['genesis_file']})")
    console.print("Auditors should pin genesis.json (or its hash) out of band.")


@handle_errors
def note(
    text: Annotated[str, typer.Argument(help="The note to record.")],
    home: HomeOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Record an admin-signed note; returns once it is final."""
    with open_for_writing(home) as led:
        a = led.append("note", {"text": text})
        height = led.flush()
        blk = led.entry(a.id)
    out = {
        "id": a.id,
        "index": a.index,
        "block": blk.block if blk else None,
        "final_height": height,
    }
    if json_:
        emit_json(out)
    else:
        console.print(
            f"note {a.id[:16]}… recorded at index {a.index}, final in block {out['block']}"
        )


@handle_errors
def status(home: HomeOpt = None, json_: JsonOpt = False) -> None:
    """Height, log size, final height, and each witness's head."""
    with Ledger.open(home, readonly=True) as led:
        st = led.status()
    if json_:
        emit_json(st)
        return
    console.print(f"ledger   {st['origin']}  ({st['home']})")
    console.print(f"height   {st['height']}   log size {st['size']}")
    console.print(
        f"final    {st['final_height']}   final size {st['final_size']}   "
        f"quorum {st['quorum']} of {len(st['witnesses'])}"
    )
    t = Table("witness", "height", "size", "cosigned at", "problem", box=None, pad_edge=False)
    for w in st["witnesses"]:
        ts = w.get("cosigned_at")
        t.add_row(
            w["name"],
            "-" if w["height"] is None else str(w["height"]),  # no head read: no number
            "-" if w["size"] is None else str(w["size"]),
            _time(ts * 1_000_000) if ts else "-",
            w.get("error") or w.get("unchecked") or "",
        )
    print_table(t)


def _entry_dict(e: Entry) -> dict[str, Any]:
    f = e.fields
    return {"index": e.index, "block": e.block, "id": e.id, **f}


@handle_errors
def log(
    home: HomeOpt = None,
    kind: Annotated[str | None, typer.Option(help="Only messages of this kind.")] = None,
    json_: JsonOpt = False,
) -> None:
    """The messages, newest last."""
    if kind is not None and kind not in KINDS:
        raise fail(f"--kind must be one of the message kinds ({', '.join(KINDS)}), not {kind!r}")
    with Ledger.open(home, readonly=True) as led:
        entries = [_entry_dict(e) for e in led.entries(kind=kind)]
    if json_:
        emit_json(entries)
        return
    if not entries:  # only with --kind: every ledger holds its genesis
        console.print(Text(f"no {kind} messages"))
        return
    t = Table("index", "block", "time", "kind", "sender", "id", "body", box=None, pad_edge=False)
    for e in entries:
        body = json.dumps(e["body"], separators=(",", ":"), sort_keys=True)
        t.add_row(
            str(e["index"]),
            str(e["block"]),
            _time(e["time"]),
            e["kind"],
            e["sender"],
            e["id"][:12],
            cell(body, 79),
        )
    print_table(t)


@handle_errors
def checkpoint(
    home: HomeOpt = None,
    height: Annotated[
        int | None, typer.Option(help="A block height (default: latest final).")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """The latest final checkpoint, as a C2SP signed note with its cosignatures.

    A block given by --height that is not final yet is printed all the same, with a
    warning on stderr (and ``"final": false`` in --json).
    """
    with Ledger.open(home, readonly=True) as led:
        final_height = led.final_height()
        h = final_height if height is None else height
        text = led.checkpoint(h)
    final = 0 <= h <= final_height
    if json_:
        emit_json({"height": h, "final": final, "note": text})
        return
    if not final:
        err_console.print(
            Text(f"warning: block {h} is not final: its note lacks a quorum of cosignatures")
        )
    typer.echo(text, nl=False)


@handle_errors
def keys(home: HomeOpt = None, json_: JsonOpt = False) -> None:
    """Verifier keys (C2SP vkeys): the sequencer's first, then each witness's."""
    with Ledger.open(home, readonly=True) as led:
        vkeys = led.vkeys()
    if json_:
        emit_json({"sequencer": vkeys[0], "witnesses": vkeys[1:]})
    else:
        typer.echo("\n".join(vkeys))


@handle_errors
def verify(home: HomeOpt = None, json_: JsonOpt = False) -> None:
    """Recompute and check everything in the ledger and every witness replica."""
    report = verify_home(home)
    if json_:
        emit_json(report.to_dict())
    else:
        led = report.copies.get("ledger")
        for f in report.findings:
            console.print(f"[red]✗[/] {escape(f'{f.where}: {f.detail}')}", markup=True)
        print_unchecked(report.unchecked)
        if report.ok and led is not None:
            pend = f", {len(led.pending)} awaiting cosignatures" if led.pending else ""
            console.print(
                f"[green]✓[/] ledger verified: {led.size} messages in "
                f"{max(led.blocks, default=-1) + 1} blocks, final height "
                f"{led.final_height}{pend}; {len(report.copies) - 1} witness replicas "
                "agree",
                markup=True,
            )
        elif not report.ok:
            console.print(f"[red]{len(report.findings)} finding(s)[/]", markup=True)
    if not report.ok:
        raise typer.Exit(EXIT_FINDINGS)


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(note)
    app.command()(status)
    app.command()(log)
    app.command()(checkpoint)
    app.command()(keys)
    app.command()(verify)
