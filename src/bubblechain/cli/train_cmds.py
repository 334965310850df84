"""Training commands: train, predict, jobs, job."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..algorithms.registry import get as get_algorithm
from ..ledger import Ledger
from ..ledger.ledger import Entry
from ..training.predict import (
    ModelMismatch,
    check_predictions_out,
    predictions,
    write_predictions,
)
from ..training.runtime import TrainingFailed
from ..training.runtime import train as run_training
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
)

ALGORITHMS = ["logistic", "linear", "kmeans", "naive-bayes"]


def _parse_params(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--param {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@contextlib.contextmanager
def _dask_logs_quiet(engine: str) -> Iterator[None]:
    """Keep Dask's client logs off stderr while it trains: what goes wrong there (a lost
    scheduler, no workers) is the job's one-line error, not a traceback logged as well."""
    if engine != "dask":
        yield
        return
    import distributed  # noqa: F401  (configures its loggers on import: before we quiet them)

    loggers = [logging.getLogger("distributed")] + [
        logger
        for name, logger in logging.root.manager.loggerDict.items()
        if name.startswith("distributed.") and isinstance(logger, logging.Logger)
    ]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@handle_errors
def train(
    data: Annotated[str, typer.Option("--data", help="Name of a committed dataset.")],
    algorithm: Annotated[str, typer.Option(help="logistic, linear, kmeans or naive-bayes.")],
    target: Annotated[str | None, typer.Option(help="Target column (not for kmeans).")] = None,
    features: Annotated[
        list[str] | None,
        typer.Option(
            help="Feature columns: repeat the option or separate names with commas "
            "(default: every numeric column but the id and the target)."
        ),
    ] = None,
    partitions: Annotated[int, typer.Option(help="Map partitions.")] = 4,
    iterations: Annotated[
        int,
        typer.Option(help="Rounds at most (logistic runs its 2 setup rounds on top)."),
    ] = 100,
    engine: Annotated[str, typer.Option(help="local or dask.")] = "local",
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler tcp://HOST:PORT.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: cores).")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Hyperparameter KEY=VALUE.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for sampling and initialisation.")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="Model file (default: HOME/models/JOB.model).")
    ] = None,
    home: HomeOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Train on a committed dataset; every step is a signed message on the ledger."""
    if algorithm not in ALGORITHMS:
        raise fail(f"--algorithm {algorithm!r}: choose one of {', '.join(ALGORITHMS)}")
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=err_console,  # stdout stays for results
        disable=json_ or not err_console.is_terminal,
        transient=False,
    )
    rounds = iterations + get_algorithm(algorithm).setup_rounds
    with _dask_logs_quiet(engine), open_for_writing(home) as led, progress:
        task = progress.add_task(escape(f"{algorithm} on {data}"), total=rounds, info="")

        def on_iteration(info: dict) -> None:
            shown = ", ".join(
                f"{k} {v:.6g}" for k, v in info.items() if k in ("loss", "inertia", "max_shift")
            )
            progress.update(task, advance=1, info=f"round {int(info['iteration']) + 1} {shown}")

        try:
            result = run_training(
                led,
                data=data,
                algorithm=algorithm,
                target=target,
                features=features,
                partitions=partitions,
                iterations=iterations,
                engine=engine,
                scheduler=scheduler,
                workers=workers,
                hyper=_parse_params(param),
                seed=seed,
                out=out,
                on_iteration=on_iteration,
            )
        except TrainingFailed as e:
            if json_:  # what a script needs to find the job on the record
                emit_json({"job": e.job, "status": "failed", "reason": e.reason, **e.details})
            where = f" (job {e.job})" if e.job else ""
            raise fail(f"training failed{where}: {e}", EXIT_FINDINGS) from None
        progress.update(task, completed=rounds)
    if json_:
        emit_json(result.to_dict())
        return
    stopped = "converged" if result.converged else "stopped before converging"
    ran = f"{result.partitions} partition{'s' * (result.partitions != 1)}"
    if result.partitions < partitions:  # more were asked for than there are rows
        ran += f" (fewer than --partitions {partitions}: one row each)"
    done = f"{result.iterations} iteration{'s' * (result.iterations != 1)}"
    setup = result.rounds - result.iterations
    if setup:
        done += f" after {setup} setup round{'s' * (setup != 1)}"
    console.print(
        f"job {result.job}: {done} ({stopped}) on {ran}, "
        f"{result.metric} {result.value:.6g}, {result.retries} retried attempts"
    )
    console.print(
        f"model {result.model_path}\n  sha256 {result.model_hash} (recorded by model.final)"
    )


@handle_errors
def predict(
    path: Annotated[Path, typer.Argument(help="CSV, Parquet or Arrow file to predict on.")],
    model: Annotated[Path, typer.Option("--model", help="A model file from `train`.")],
    out: Annotated[
        Path | None, typer.Option(help=".csv or .parquet (default: JSON lines).")
    ] = None,
    home: HomeOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Predict with a model only after checking it against its model.final record.

    Without --out the predictions are JSON lines on stdout (with or without --json);
    with --out, --json prints the summary as JSON.
    """
    with Ledger.open(home, readonly=True) as led:
        if out is not None:
            check_predictions_out(led, out, (path, model))
        try:
            meta, entry, batches = predictions(led, model, path)
        except ModelMismatch as e:
            raise fail(str(e), EXIT_FINDINGS) from None
        n = write_predictions(batches, out)
    if out is not None and json_:
        emit_json(
            {
                "predictions": n,
                "out": str(out),
                "job": meta["job"],
                "model_hash": entry.body["model_hash"],
                "model_final_index": entry.index,
            }
        )
    elif out is not None:
        console.print(
            f"{n} predictions from job {meta['job']} (model.final at index {entry.index}) "
            f"written to {out}"
        )


def _jobs(led: Ledger, entries: Iterable[Entry] | None = None) -> list[dict[str, Any]]:
    """Each job in ``entries`` (default: the whole log) and how it ended."""
    appending = led.someone_appends()  # asked before and after reading: a job may end
    jobs: dict[str, dict[str, Any]] = {}
    for e in led.entries() if entries is None else entries:
        job = e.fields.get("job")
        if job is None:
            continue
        if e.kind == "job.start":
            jobs[job] = {
                "job": job,
                "algorithm": e.body["algorithm"],
                "dataset": e.body["dataset"]["name"],
                "started": e.fields["time"],
                "status": "running",
                "messages": 0,
            }
        j = jobs.get(job)
        if j is None:
            continue
        j["messages"] += 1
        if e.kind == "model.final":
            j.update(
                metric=e.body.get("metric"),
                value=e.body.get("value"),
                model_hash=e.body.get("model_hash"),
                iterations=e.body.get("iterations"),
                # recorded since iterations stopped counting setup rounds; before, they did
                rounds=e.body.get("rounds", e.body.get("iterations")),
            )
        if e.kind == "job.end":
            j["status"] = e.body["status"]
            if e.body.get("reason"):
                j["reason"] = e.body["reason"]
    open_jobs = [j for j in jobs.values() if j["status"] == "running"]
    if open_jobs and not appending and not led.someone_appends():
        for j in open_jobs:
            j["status"] = "abandoned"
            j["reason"] = ABANDONED
    return list(jobs.values())


ABANDONED = (
    "no job.end: its coordinator stopped (killed, or its machine failed) before ending the job"
)


@handle_errors
def jobs(home: HomeOpt = None, json_: JsonOpt = False) -> None:
    """Training jobs on the ledger and how they ended."""
    with Ledger.open(home, readonly=True) as led:
        rows = _jobs(led)
    if json_:
        emit_json(rows)
        return
    t = Table("job", "algorithm", "dataset", "status", "rounds", "result", "messages", box=None)
    for j in rows:
        if j.get("metric"):
            result = f"{j['metric']} {j['value']:.4g}"
        else:  # a failed job: why
            result = cell(j.get("reason", ""), 80)
        t.add_row(
            j["job"],
            j["algorithm"],
            j["dataset"],
            j["status"],
            str(j.get("rounds", "")),
            result,
            str(j["messages"]),
        )
    print_table(t)


@handle_errors
def job(
    job_id: Annotated[str, typer.Argument(help="A job id from `bubblechain jobs`.")],
    home: HomeOpt = None,
    json_: JsonOpt = False,
) -> None:
    """One job's messages, in ledger order."""
    with Ledger.open(home, readonly=True) as led:
        entries = [e for e in led.entries() if e.fields.get("job") == job_id]
        if not entries:
            raise fail(f"no job {job_id!r} on the ledger (see `bubblechain jobs`)")
        (summary,) = _jobs(led, entries)  # the job's own entries: the log is read once
    if json_:
        emit_json([{"index": e.index, "block": e.block, "id": e.id, **e.fields} for e in entries])
        return
    t = Table("index", "kind", "sender", "bubble", "last → state", "body", box=None)
    for e in entries:
        f = e.fields
        chain = f"{(f['last'] or '-')[:8]} → {(f['state'] or '-')[:8]}"
        body = json.dumps(e.body, separators=(",", ":"), sort_keys=True)
        t.add_row(
            str(e.index),
            e.kind,
            f["sender"][:28],
            (f["bubble"] or "")[-24:],
            chain,
            cell(body, 59),
        )
    print_table(t)
    outcome = Text(
        f"{summary['status']}", style="green" if summary["status"] == "succeeded" else "red"
    )
    if summary.get("metric"):
        outcome.append(f": {summary['metric']} {summary['value']:.6g}", style="default")
    if summary.get("reason"):  # in full: the table cuts it
        outcome.append(f": {summary['reason']}", style="default")
    console.print(Text("job ", style="bold").append(job_id).append(" ").append(outcome))


def register(app: typer.Typer) -> None:
    app.command()(train)
    app.command()(predict)
    app.command()(jobs)
    app.command()(job)
