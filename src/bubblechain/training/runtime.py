"""The coordinator bubble: drives a MapReduce job and records every step on the ledger.

Message order for one job: `job.start` (opens the job; the coordinator's state is
the hash of the initial params), then per iteration one `task.result` per
partition (signed by the worker, computed on the current params hash; lost
attempts are recorded by `task.retry`), then `state.update` from the old to the
new params hash naming the results it reduced, then an evaluation round, then
`model.final` (the model file's hash) and `job.end`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..algorithms.base import Params, decode_arrays, encode_arrays
from ..algorithms.registry import get as get_algorithm
from ..crypto import canonical
from ..crypto.keys import Identity
from ..data.encoding import NUMERIC_KINDS
from ..data.ledger import find_commitment
from ..errors import BubblechainError, Rejected, UsageError
from ..interrupts import deferred
from ..ledger import Ledger, Message
from . import blas
from . import tasks as tasks_mod
from .bubble import Bubble, Signer
from .code import training_code_hash
from .engines import make_engine
from .model import write_model
from .outputs import check_output
from .partitions import plan

COORDINATOR = "coordinator"
MAX_ATTEMPTS = 4


class TrainingFailed(BubblechainError):
    """The job could not complete; the ledger records why (`job.end` with status failed).

    ``job`` is the job's id once its `job.start` was recorded (None before), and
    ``details`` what its `job.end` records beyond the reason (the refused row ids).
    """

    def __init__(self, reason: str, job: str | None = None, details: dict | None = None):
        super().__init__(reason)
        self.reason, self.job, self.details = reason, job, details or {}


@dataclass
class TrainResult:
    job: str
    model_path: str
    model_hash: str
    metric: str
    value: float
    iterations: int
    """Rounds after the algorithm's setup rounds (L-BFGS steps and line-search trials,
    Lloyd steps, …): at most --iterations."""
    retries: int
    history: list[dict[str, Any]] = field(default_factory=list)
    converged: bool = False
    """Whether the algorithm's own stopping rule ended the rounds, not --iterations."""
    partitions: int = 0
    """Partitions the job ran on: --partitions, or fewer when the dataset has fewer rows."""
    rounds: int = 0
    """Every MapReduce round before the evaluation: the iterations and the algorithm's
    setup rounds (logistic regression's classes and starting objective)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "model": self.model_path,
            "model_hash": self.model_hash,
            "metric": self.metric,
            "value": self.value,
            "iterations": self.iterations,
            "rounds": self.rounds,
            "converged": self.converged,
            "retries": self.retries,
            "partitions": self.partitions,
        }


# Committed kinds, and the type names older commitments recorded.
NUMERIC = NUMERIC_KINDS | {"int64", "float64", "double", "integer", "boolean"}


def choose_columns(
    commitment: dict, target: str | None, features: list[str] | None
) -> tuple[list[str], str | None]:
    schema = commitment["schema"]
    cols = {c["name"]: c["type"] for c in schema["columns"]}
    if target is not None and target not in cols:
        raise UsageError(f"target column {target!r} is not in dataset {commitment['name']!r}")
    if features is not None:
        # "a,b" names two columns, unless a column is called "a,b"
        features = [
            name.strip()
            for given in features
            for name in ([given] if given in cols else given.split(","))
            if name.strip()
        ]
        if not features:
            raise UsageError("--features names no column")
        twice = [f for i, f in enumerate(features) if f in features[:i]]
        if twice:
            raise UsageError(f"--features names column {twice[0]!r} more than once")
        missing = [f for f in features if f not in cols]
        if missing:
            raise UsageError(
                f"feature column{'s' * (len(missing) > 1)} {', '.join(missing)} "
                f"{'are' if len(missing) > 1 else 'is'} not in dataset {commitment['name']!r}"
            )
        if target in features:
            raise UsageError(f"target column {target!r} cannot also be a feature")
        for f in features:
            if str(cols[f]).lower() not in NUMERIC:
                raise UsageError(
                    f"feature column {f!r} of dataset {commitment['name']!r} holds "
                    f"{cols[f]} values, not numbers"
                )
        return list(features), target
    chosen = [
        n
        for n, t in cols.items()
        if n not in (schema["id_column"], target) and str(t).lower() in NUMERIC
    ]
    if not chosen:
        raise UsageError(f"dataset {commitment['name']!r} has no numeric feature columns")
    return chosen, target


def check_trainable(commitment: dict, task: str, algorithm: str, target: str | None) -> None:
    """Refuse, before a job starts, a dataset the job could only fail on."""
    name = commitment["name"]
    source = commitment.get("source")
    if not source:
        raise UsageError(f"dataset {name!r} was committed without its source path")
    if "://" not in source and not Path(source).exists():
        raise UsageError(
            f"dataset {name!r} was committed from {source}, which is no longer there "
            "(moved or deleted): put the file back or commit it again"
        )
    if commitment["rows"] == 0:
        raise UsageError(f"dataset {name!r} has no rows to train on")
    if task == "regression" and target is not None:
        kind = next(c["type"] for c in commitment["schema"]["columns"] if c["name"] == target)
        if str(kind).lower() not in NUMERIC:
            raise UsageError(
                f"target column {target!r} of dataset {name!r} holds {kind} values: "
                f"{algorithm} regression needs numbers"
            )


def _coordinator(ledger: Ledger) -> Identity:
    path = ledger.home.key(COORDINATOR)
    if path.exists():
        ident = Identity.load(path)
    else:
        ident = Identity.generate(COORDINATOR)
        ident.save(path)
    node = ledger.sequencer.state.nodes.get(ident.name)
    if node is None or node[0] != ident.public_key:
        ledger.register_node(ident.name, ident.public_key, "coordinator")
    return ident


def _said(e: Exception) -> str:
    """An error for the record and the user: a ValueError is the algorithms' and the
    checks' own way to say what is wrong (its words suffice); any other, with its kind."""
    return str(e) if type(e) is ValueError else f"{type(e).__name__}: {e}"


def _reply_problem(msg: Message, reply: dict, job: str, it: int, p: int, attempt: int) -> str:
    """What is wrong with a worker's reply to task (job, it, p, attempt), or ''."""
    b = msg.body
    if msg.kind not in ("task.result", "task.refused") or msg.fields["job"] != job:
        return f"reply is a {msg.kind} for job {msg.fields['job']}"
    if (b.get("iteration"), b.get("partition"), b.get("attempt")) != (it, p, attempt):
        return "reply answers another task"
    if msg.sender != reply["worker"]:
        return "reply is signed by another worker than the one that sent it"
    if msg.kind == "task.result":
        if reply.get("partial") != msg.fields["state"]:
            return "reply's partial is not the one its message signs"
        data = reply.get("partial_bytes")
        if not isinstance(data, bytes) or hashlib.sha256(data).hexdigest() != reply["partial"]:
            return "reply's partial bytes do not hash to the partial its message signs"
    return ""


class Coordinator:
    """One training job: the coordinator bubble and the loop around the engine."""

    def __init__(self, ledger: Ledger, engine, spec: dict[str, Any], on_iteration=None):
        self.ledger = ledger
        self.engine = engine
        self.spec = spec
        self.on_iteration = on_iteration or (lambda info: None)
        self.retries = 0
        self.known_workers: set[str] = set()
        self._buffer: dict[str, dict[int, Message]] = {}
        # Workers one of whose messages never came (lost with the worker, or dropped as a
        # wrong reply): nothing they signed after it can be recorded. A worker still
        # alive is told to take a new identity (the task's "renew").
        self._gapped: set[str] = set()

    # -- ledger plumbing -----------------------------------------------------------------
    def _register_worker(self, name: str, public_key: bytes) -> None:
        if name in self.known_workers:
            return
        node = self.ledger.sequencer.state.nodes.get(name)
        if node is None:
            self.ledger.register_node(name, public_key, "worker")
        elif node[0] != public_key:
            raise TrainingFailed(f"worker {name} reported a key other than its registered one")
        self.known_workers.add(name)

    def _submit_in_order(self, msg: Message) -> list[Message]:
        """Submit a worker's message once its earlier ones are in; return those submitted."""
        buf = self._buffer.setdefault(msg.sender, {})
        buf[msg.seq] = msg
        done = []
        while True:
            nxt = buf.pop(self.ledger.sequencer.next_seq(msg.sender), None)
            if nxt is None:
                return done
            self.ledger.submit(nxt)
            done.append(nxt)

    # -- one round of map tasks -------------------------------------------------------------
    def map_round(
        self,
        iteration: int,
        params_hash: str,
        phase: str,
        then: Callable[[], Any] | None = None,
    ) -> list[tuple[str, str, Any]]:
        """Run every partition once; return (message id, partial hash, partial) in partition order.

        The partial comes with the reply, checked against its hash (the worker also
        stored it as an artifact for auditors), so the coordinator reads no files.
        ``then`` runs once the tasks are launched and before any reply is taken: the
        previous round's state.update, recorded while the workers compute (and
        before any result that builds on it, as state continuity requires).
        """
        s = self.spec
        results: dict[int, tuple[str, str, Any]] = {}
        # Results whose message waits in the buffer for an earlier one of its worker (a
        # worker running tasks on several threads): counted once recorded, never before.
        waiting: dict[str, tuple[int, Message, tuple[str, str, Any]]] = {}
        refusals: dict[int, Message] = {}  # the round still ends, then the job fails on all
        attempts = {p: 0 for p in range(len(s["plan"]))}
        handles = {}

        def launch(p: int) -> None:
            start, stop = s["plan"][p]
            task = {
                "job": s["job"],
                "iteration": iteration,
                "partition": p,
                "attempt": attempts[p],
                "phase": phase,
                "params": params_hash,
                "partitions": len(s["plan"]),
                "row_start": start,
                "row_stop": stop,
                "algorithm": s["algorithm"],
                "seed": s["seed"],
                "code": s["code"],
                "data": s["data"],
                "artifacts": self.ledger.artifacts.location,  # which identity signs it
                "renew": sorted(self._gapped),
            }
            key = f"{s['job']}-{iteration}-{phase}-{p}-{attempts[p]}"
            handles[self.engine.submit(tasks_mod.map_task, task, key, affinity=p)] = p

        for p in attempts:
            launch(p)
        if then is not None:
            then()

        def lost(p: int, err: BaseException) -> None:
            self._retry(iteration, p, attempts[p], err)
            attempts[p] += 1
            launch(p)

        while len(results) + len(refusals) < len(attempts):
            if not handles:  # every attempt answered: what still waits never will be recorded
                for p, msg, _ in waiting.values():
                    missing = self.ledger.sequencer.next_seq(msg.sender)
                    self._buffer.pop(msg.sender, None)
                    self._gapped.add(msg.sender)
                    lost(p, LookupError(
                        f"the result cannot be recorded: it is message {msg.seq} of worker "
                        f"{msg.sender}, whose message {missing} never came (lost with the "
                        "worker, or refused)"
                    ))  # fmt: skip
                waiting.clear()
            for h in self.engine.as_completed(list(handles)):
                p = handles.pop(h)
                try:
                    reply = h.result()
                except Exception as e:
                    if not self.engine.lost(e):  # the task raised: it would again
                        self._fail(f"map task for partition {p} failed: {_said(e)}")
                    self._retry(iteration, p, attempts[p], e)  # its worker died
                    attempts[p] += 1
                    launch(p)
                    break  # handles changed: restart the wait
                msg = Message.from_parts(reply["payload"], reply["signature"])
                problem = _reply_problem(msg, reply, s["job"], iteration, p, attempts[p])
                if not problem and msg.sender in self._gapped:
                    problem = (
                        f"worker {msg.sender} cannot be recorded any more: one of its "
                        "messages never came"
                    )
                if problem:  # not the answer to this task: count the attempt as lost
                    self._gapped.add(msg.sender)  # it signed a message we never record
                    self._buffer.pop(msg.sender, None)
                    lost(p, ValueError(problem))
                    break
                self._register_worker(reply["worker"], reply["public_key"])
                recorded = {m.id_hex for m in self.submit(msg)}
                if msg.fields["code"] != s["code"]:  # on the record, and the job stops here
                    self._fail(
                        f"worker {msg.sender} ran training code {msg.fields['code'][:16]}…, "
                        f"not the job's {s['code'][:16]}…: it imports another bubblechain "
                        + (
                            "than the coordinator (a sys.path change made at run time does "
                            "not reach local workers on Linux: set PYTHONPATH instead)"
                            if self.engine.name == "local"
                            else "than the coordinator: install the same version on every worker"
                        )
                    )
                if msg.kind == "task.refused":  # the others are running: wait for theirs
                    refusals.setdefault(p, msg)
                elif p not in results:  # one result per partition: nothing double-counted
                    partial = decode_arrays(reply["partial_bytes"])
                    waiting[msg.id_hex] = (p, msg, (msg.id_hex, reply["partial"], partial))
                for m in recorded & waiting.keys():
                    q, _, result = waiting.pop(m)
                    results[q] = result
        if refusals:
            self._refused([refusals[p] for p in sorted(refusals)])
        return [results[p] for p in range(len(attempts))]

    def _retry(self, iteration: int, p: int, attempt: int, err: BaseException) -> None:
        self.retries += 1
        if attempt + 1 >= MAX_ATTEMPTS:
            self._fail(f"partition {p} failed {MAX_ATTEMPTS} attempts; last: {err!r}")
        self.bubble_send(
            "task.retry",
            {
                "iteration": iteration,
                "partition": p,
                "attempt": attempt,
                "reason": f"{type(err).__name__}: {err}"[:500],
            },
        )

    def _refused(self, refusals: list[Message]) -> None:
        """Fail the job naming every partition of the round that refused, in partition
        order: the same message and row ids whichever refusal arrived first.

        Tasks that verify the same committed partition report the same rows: each
        reason is given once, for all the partitions that gave it, and each row once.
        """
        parts_of: dict[str, list[str]] = {}  # reason -> the partitions that gave it
        for m in refusals:
            why = m.body.get("reason", "no reason given")
            parts_of.setdefault(why, []).append(str(m.body["partition"]))
        many = len(refusals) > 1
        reason = (
            f"map task{'s' * many} for partition{'s' * many} "
            f"{_and([str(m.body['partition']) for m in refusals])} refused to compute: "
        )
        if len(parts_of) == 1:
            reason += next(iter(parts_of))
        else:
            reason += "; ".join(
                f"partition{'s' * (len(ps) > 1)} {_and(ps)}: {why}" for why, ps in parts_of.items()
            )
        details = {
            k: list(dict.fromkeys(row for m in refusals for row in m.body.get(k, [])))
            for k in ("changed", "missing", "added", "unusable")
            if any(k in m.body for m in refusals)
        }
        unreadable = {  # the same set-aside rows, as each worker that read them names them
            (u["row"], u["text"]): u for m in refusals for u in m.body.get("unreadable_ids", [])
        }
        if unreadable:
            details["unreadable_ids"] = sorted(unreadable.values(), key=lambda u: u["row"])
        self._fail(reason, details=details)

    def _fail(self, reason: str, details: dict | None = None) -> None:
        """Record the failure with job.end when the job is open, then raise."""
        job = None
        if self.bubble.state is not None:  # job.start was accepted: the job is open
            job = self.spec["job"]
            try:
                self.bubble_send(
                    "job.end", {"status": "failed", "reason": reason, **(details or {})}
                )
                self.ledger.flush()
            except Rejected as e:
                reason += f" (job.end could not be recorded: {e})"
        raise TrainingFailed(reason, job, details)

    def bubble_send(self, kind: str, body: dict, **kw: Any) -> Message:
        """Send from the coordinator bubble; if the ledger refuses, fail the job on the record."""
        state, seq = self.bubble.state, self.bubble.signer.next_seq
        try:
            with deferred():  # signed and recorded, or neither: the job.end that follows
                msg = self.bubble.send(kind, body, **kw)  # an interrupt needs the next seq
                self.ledger.submit(msg)
        except Rejected as e:
            self.bubble.state, self.bubble.signer.next_seq = state, seq
            if kind == "job.end":
                raise
            self._fail(f"the ledger rejected the coordinator's {kind}: {e}")
        return msg

    def submit(self, msg: Message) -> list[Message]:
        """Submit a worker's message once its earlier ones are in; return those submitted.
        A rule one breaks fails the job, on the record."""
        try:
            return self._submit_in_order(msg)
        except Rejected as e:
            self._fail(f"the ledger rejected {msg.kind} from {msg.sender}: {e}")

    # -- the job ----------------------------------------------------------------------------
    def run(self, algo, params: Params, max_iterations: int, out: Path) -> TrainResult:
        s = self.spec
        store = self.ledger.artifacts
        ident = _coordinator(self.ledger)
        signer = Signer(ident, self.ledger.sequencer.next_seq(ident.name))
        self.bubble = Bubble(signer, f"{s['job']}/coordinator", s["code"], job=s["job"])
        h = store.put(encode_arrays(params), sync=False)
        self.bubble_send(
            "job.start",
            {
                k: s[k]
                for k in (
                    "algorithm",
                    "hyper",
                    "dataset",
                    "partitions",
                    "plan",
                    "features",
                    "target",
                    "engine",
                    "blas",
                    "seed",
                    "iterations",
                    "version",
                )
            },
            state=h,
            inputs=[s["dataset"]["commit"]],
            outputs=[h],
        )
        try:
            return self._rounds(algo, params, max_iterations, out)
        except TrainingFailed:
            raise
        except Exception as e:  # anything else still ends the job on the record
            self._fail(_said(e))
            raise  # unreachable: _fail raises
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM in the CLI
            with contextlib.suppress(TrainingFailed):
                self._fail(str(e) or "interrupted")
            raise

    def _rounds(self, algo, params: Params, max_iterations: int, out: Path) -> TrainResult:
        """The rounds after job.start, then evaluation, the model and job.end."""
        s = self.spec
        store = self.ledger.artifacts
        history = []
        iteration = 0
        done = converged = False
        record = None  # the last round's state.update, sent once the next round is running
        # Rounds that cannot move the model yet (finding the classes, evaluating the start
        # point) come on top of --iterations: any N ≥ 1 ends with a fitted model.
        setup = getattr(algo, "setup_rounds", 0)
        max_rounds = max_iterations + setup
        while iteration < max_rounds and not done:
            t0 = time.perf_counter()
            # The hash of the params this process holds now: if they changed since the
            # ledger recorded them, the first task result breaks the state chain.
            h = store.put(encode_arrays(params), sync=False)
            used = self.map_round(iteration, h, "map", then=record)
            upd = algo.update(params, algo.reduce([partial for _, _, partial in used]))
            params, done = upd.params, upd.done
            converged = done and upd.converged is not False
            new_h = store.put(encode_arrays(params), sync=False)
            metrics = {k: _number(v) for k, v in upd.metrics.items()}
            record = functools.partial(
                self.bubble_send,
                "state.update",
                {
                    "iteration": iteration,
                    "metrics": metrics,
                    "results": [
                        {"partition": p, "message": m, "partial": d}
                        for p, (m, d, _) in enumerate(used)
                    ],
                },
                state=new_h,
                last=h,
                inputs=[m for m, _, _ in used],
                outputs=[new_h],
            )
            info = {**metrics, "iteration": iteration, "seconds": time.perf_counter() - t0}
            history.append(info)
            self.on_iteration(info)
            iteration += 1
        h = store.put(encode_arrays(params), sync=False)

        def record_and_seal() -> None:
            if record is not None:
                record()
            # The witnesses check the rounds' block while the workers evaluate, so the
            # job's last block, which the caller waits for, holds only the job's end.
            self.ledger.seal()

        metric, value = self.evaluate(algo, h, iteration, then=record_and_seal)
        iterations = max(iteration - setup, 0)
        meta = {
            "algorithm": s["algorithm"],
            "features": s["features"],
            "target": s["target"],
            "job": s["job"],
            "dataset": s["dataset"]["name"],
            "origin": self.ledger.genesis.origin,
            "id_column": s["data"]["commitment"]["schema"]["id_column"],
        }
        model_hash = write_model(out, params, meta)
        self.bubble_send(
            "model.final",
            {
                "model_hash": model_hash,
                "path": str(out),
                "params": h,
                "metric": metric,
                "value": value,
                "iterations": iterations,
                "rounds": iteration,
                "converged": converged,
            },
            inputs=[h],
            outputs=[model_hash],
        )
        self.bubble_send("job.end", {"status": "succeeded", "retries": self.retries})
        self.ledger.seal()  # the caller waits for finality (flush) once the engine is closed
        return TrainResult(
            s["job"],
            str(out),
            model_hash,
            metric,
            value,
            iterations,
            self.retries,
            history,
            converged=converged,
            partitions=len(s["plan"]),
            rounds=iteration,
        )

    def evaluate(
        self, algo, params_hash: str, iteration: int, then: Callable[[], Any] | None = None
    ) -> tuple[str, float]:
        used = self.map_round(iteration, params_hash, "evaluate", then)
        return tasks_mod.metric_from_partials(algo, [partial for _, _, partial in used])


def _and(items: list[str]) -> str:
    """'0', '0 and 3', '0, 1 and 3'."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _number(value: Any) -> int | float:
    """A metric as a JSON number: an integral one as an int, which canonical JSON writes
    the same ("12", not "12.0") but the C encoder can write too (floats like 12.0 take
    the pure-Python JCS path, ~0.25 ms for a state.update)."""
    f = float(value)
    return int(f) if f.is_integer() and abs(f) <= 2**53 else f


def train(
    ledger: Ledger,
    *,
    data: str,
    algorithm: str,
    target: str | None = None,
    features: list[str] | None = None,
    partitions: int = 4,
    iterations: int = 100,
    engine: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    hyper: dict[str, Any] | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    on_iteration: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train `algorithm` on the committed dataset `data`, recording every step."""
    algo = get_algorithm(algorithm)
    if algo.task != "clustering" and target is None:
        raise UsageError(f"--target is required for {algorithm}")
    if algo.task == "clustering" and target is not None:
        raise UsageError(f"{algorithm} is unsupervised: it takes no --target")
    for name, value in (("--partitions", partitions), ("--iterations", iterations)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1, got {value}")
    if not 0 <= seed <= canonical.MAX_SAFE:  # job.start records it as a JSON number
        raise UsageError(f"--seed must be from 0 to 2**53 - 1, got {seed}")
    entry, _ = find_commitment(ledger, data)
    commit_id, commitment = entry.id, entry.body
    feats, target = choose_columns(commitment, target, features)
    check_trainable(commitment, algo.task, algorithm, target)
    try:
        canonical.dumps(hyper or {})  # recorded in job.start: JSON numbers only, no NaN or inf
    except ValueError as e:
        raise UsageError(f"--param: {e}") from None
    job = f"job-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    hyper = dict(hyper or {})
    ranges = plan(commitment["rows"], partitions, align=commitment["partition_rows"])
    out = Path(out).absolute() if out else ledger.home.root / "models" / f"{job}.model"
    check_output(ledger, out, "--out")
    eng = make_engine(engine, workers=workers, scheduler=scheduler)
    spec = {
        "job": job,
        "algorithm": algorithm,
        "hyper": hyper,
        "seed": seed,
        "iterations": iterations,
        "version": __version__,
        "code": training_code_hash(algorithm),
        "features": feats,
        "target": target,
        "plan": ranges,
        "partitions": len(ranges),
        "blas": {"threads_per_worker": 1, "libraries": blas.described()},
        "dataset": {
            "name": data,
            "root": commitment["root"],
            "rows": commitment["rows"],
            "commit": commit_id,
        },
        "data": {
            "source": commitment["source"],
            "root": commitment["root"],
            "commitment": commitment,
            "commit": commit_id,
            "features": feats,
            "target": target,
        },
    }
    try:
        params = algo.initial_params(len(feats), hyper, seed)
    except ValueError as e:
        said = str(e).removeprefix(f"{algorithm}: ")  # the range checks name it too
        raise UsageError(f"hyperparameters for {algorithm}: {said}") from None
    eng.start(ledger.artifacts.location)
    try:
        spec["engine"] = eng.describe()
        with blas.pinned(1):
            result = Coordinator(ledger, eng, spec, on_iteration).run(algo, params, iterations, out)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the job is ended on the record already
        getattr(eng, "abort", eng.close)()  # not waiting for tasks running on the workers
        raise
    except BaseException:
        eng.close()
        raise
    eng.close()
    ledger.flush()  # witnesses cosign the last block while the workers shut down
    return result


def train_untracked(
    source: str,
    *,
    rows: int,
    algorithm: str,
    features: list[str],
    target: str | None,
    partitions: int = 4,
    iterations: int = 100,
    engine: str = "local",
    workers: int | None = None,
    hyper: dict[str, Any] | None = None,
    seed: int = 0,
    align: int = 1,
) -> tuple[Params, int, list[float], tuple[str, float]]:
    """The same MapReduce job with bubbles and ledger switched off, on the same engine.

    Exists to measure what tracking costs (bench/bench_training.py). Like a
    tracked job it ends with an evaluation round for the training metric, so
    the two differ only by tracking. Returns the final params, the number of
    rounds, each round's seconds and (metric name, value).
    """
    algo = get_algorithm(algorithm)
    params = algo.initial_params(len(features), dict(hyper or {}), seed)
    ranges = plan(rows, partitions, align=align)
    eng = make_engine(engine, workers=workers)
    eng.start(tempfile_root())
    data = {"source": source, "features": features, "target": target}

    def run_round(phase: str, tag: str) -> list[Any]:
        handles = {
            eng.submit(
                tasks_mod.plain_map_task,
                {
                    "phase": phase,
                    "partition": p,
                    "partitions": len(ranges),
                    "row_start": a,
                    "row_stop": b,
                    "algorithm": algorithm,
                    "seed": seed,
                    "data": data,
                    "params_arrays": params,
                },
                f"plain-{tag}-{p}-{secrets.token_hex(4)}",
                affinity=p,
            ): p
            for p, (a, b) in enumerate(ranges)
        }
        partials: dict[int, Any] = {}
        for h in eng.as_completed(list(handles)):
            partials[handles[h]] = h.result()
        return [partials[p] for p in range(len(ranges))]

    try:
        with blas.pinned(1):
            rounds, done, times = 0, False, []
            while rounds < iterations + getattr(algo, "setup_rounds", 0) and not done:
                t0 = time.perf_counter()
                upd = algo.update(params, algo.reduce(run_round("map", str(rounds))))
                params, done = upd.params, upd.done
                rounds += 1
                times.append(time.perf_counter() - t0)
            metric = tasks_mod.metric_from_partials(algo, run_round("evaluate", "evaluate"))
    finally:
        eng.close()
    return params, rounds, times, metric


def tempfile_root() -> str:
    import tempfile

    return tempfile.gettempdir()
