"""`bubblechain audit`: the auditor's command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..audit import AuditOptions
from ..audit import audit as run_audit
from ..audit.report import render
from ..fsutil import write_atomic
from ..ledger import Ledger
from ..ledger.verify import Finding
from ..training.outputs import check_output
from .common import (
    EXIT_FINDINGS,
    EXIT_USAGE,
    HomeOpt,
    JsonOpt,
    console,
    emit_json,
    fail,
    handle_errors,
    print_unchecked,
)


def _line(f: Finding) -> str:
    """A finding as one line of markup: its kind in bold, where, and what.

    The kind is not repeated when ``where`` starts with it (``witness w1``, not
    ``witness witness w1``). Where and what are data, never read as markup.
    """
    rest = f.where[len(f.kind) :] if f.where.split(" ", 1)[0] == f.kind else f" {f.where}"
    return f"[bold]{escape(f.kind)}[/]{escape(rest)}: {escape(f.detail)}"


def _data_line(r: dict) -> str:
    """What a --data file is: the dataset version it matched and the jobs that trained on it."""
    if not r["matches"]:
        return (
            f"data {r['path']}: matches neither dataset {r['name']} v{r['latest']} (the "
            "latest) nor a version a job trained on: see the findings"
        )
    latest = "the latest" if r["version"] == r["latest"] else f"latest is v{r['latest']}"
    jobs = ", ".join(r["jobs"]) or "no job"
    return f"data {r['path']}: dataset {r['name']} v{r['version']} ({latest}); trained on by {jobs}"


@handle_errors
def audit(
    home: HomeOpt = None,
    genesis: Annotated[
        Path | None, typer.Option(help="The pinned genesis (default: HOME's).")
    ] = None,
    data: Annotated[list[Path] | None, typer.Option("--data", help="Data file to verify.")] = None,
    name: Annotated[
        list[str] | None,
        typer.Option(
            "--name",
            help="Dataset name of each --data, in order (default: the dataset committed "
            "from that path, else the file's stem).",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        list[Path] | None, typer.Option("--model", help="Model file to verify.")
    ] = None,
    replay: Annotated[str, typer.Option(help="Map replay: none, sample or full.")] = "sample",
    sample_rate: Annotated[float, typer.Option(help="Share of map tasks to re-execute.")] = 0.1,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the replay sample (default: unpredictable).")
    ] = None,
    witnesses: Annotated[
        bool, typer.Option(help="Check this ledger against each witness head.")
    ] = True,
    report: Annotated[Path | None, typer.Option(help="Write a self-contained HTML report.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Check the whole training record, trusting only the pinned genesis."""
    opts = AuditOptions(
        genesis=genesis,
        data=data or [],
        data_names=name or [],
        models=model or [],
        replay=replay,
        sample_rate=sample_rate,
        seed=seed,
        witnesses=witnesses,
    )
    if report is not None:
        # Before the audit, not after minutes of replay; and never over what it audits.
        with Ledger.open(home, readonly=True) as led:
            led.skip_corrupt = True
            check_output(led, report, "--report", (*(data or []), *(model or [])))
    rep = run_audit(home, opts)
    d = rep.to_dict()
    if json_:
        emit_json(d)
    else:
        for f in rep.findings:
            console.print(f"[red]✗[/] {_line(f)}", markup=True)
        print_unchecked(rep.unchecked)
        for r in d["data"]:
            if "error" not in r:  # an unreadable file is a finding already
                console.print(_data_line(r), markup=False, highlight=False)
        s = d["sampling"]
        console.print(
            f"audited {d['stats']['messages']} messages, {d['stats']['jobs']} job(s) "
            f"in {d['stats']['seconds']:.1f} s; map replay {s['mode']}: "
            f"{s['replayed']} of {s['tasks']} task results re-executed"
        )
        if s["mode"] == "sample":
            console.print(f"  {s['statement']} (seed {s['seed']})")
        if d["stats"].get("in_flight"):
            console.print(
                f"  {d['stats']['in_flight']} more message(s) not final yet, from the process "
                "appending now (a job running): not audited; audit again once it has ended"
            )
        console.print(
            "[green]✓ no findings[/]" if rep.ok else f"[red]{len(rep.findings)} finding(s)[/]",
            markup=True,
        )
    if report is not None:  # after the result is printed: a failed write does not hide it
        page = render(d, "bubblechain audit").encode()
        try:
            report.parent.mkdir(parents=True, exist_ok=True)  # as check_writable promises
            write_atomic(report, page)
        except OSError as e:  # findings keep their exit code: they are the result
            code = EXIT_USAGE if rep.ok else EXIT_FINDINGS
            raise fail(
                f"--report {report}: cannot write the report: {e.strerror or e}", code
            ) from None
        if not json_:
            console.print(f"report: {report}")
    if not rep.ok:
        raise typer.Exit(EXIT_FINDINGS)


def register(app: typer.Typer) -> None:
    app.command()(audit)
