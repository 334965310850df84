"""`bubblechain audit`: everything checked again from the pinned genesis.

Ledger: checkpoint signatures and quorum, the log and its roots, every message,
registration and state chain (the verifier, with the pinned genesis). Training:
artifacts against their hashes; data flow (each `state.update` reduces exactly one
result per partition, each computed on the parameters it replaces); every reduce
and update replayed bit-exactly; map tasks re-executed (all, or a seeded sample)
on data first verified against its commitment; code hashes; models and data files
given on the command line; and this copy of the ledger against each witness head.
"""

from __future__ import annotations

import math
import secrets
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import merkle
from ..algorithms.base import MapContext, decode_arrays, hash_arrays
from ..algorithms.registry import get as get_algorithm
from ..artifacts import ArtifactCorrupt, ArtifactMissing
from ..crypto.note import NoteSignature, SignedNote, verify_cosignature
from ..data.artifacts import load_index
from ..data.conform import describe_schema_diff
from ..data.ledger import datasets, default_dataset_name, verify_dataset
from ..errors import Rejected, StoreError, UsageError
from ..home import Home, resolve_home
from ..ledger import Ledger, Message
from ..ledger.block import parse_header
from ..ledger.genesis import Genesis, read_genesis
from ..ledger.ledger import Entry
from ..ledger.lock import is_appending
from ..ledger.store import Store
from ..ledger.verify import Finding, verify_home
from ..training import blas
from ..training.code import training_code_hash
from ..training.model import model_file, parse_model
from ..training.partitions import (
    PartitionTampered,
    ReadCursor,
    UnusableValues,
    partition_cursor,
    usable,
    verified_rows,
)
from ..training.tasks import evaluate_partial, metric_from_partials
from ..witness.local import REPLICA_FILE
from .jobs import JobRecord, collect_jobs, job_label

FRACTIONS = (0.01, 0.05, 0.1, 0.25)


@dataclass
class AuditOptions:
    genesis: Path | None = None
    data: list[Path] = field(default_factory=list)
    # The dataset name of each data file, in order; empty: the dataset committed
    # from that path, else the file's stem (as `bubblechain data verify` guesses).
    data_names: list[str] = field(default_factory=list)
    models: list[Path] = field(default_factory=list)
    replay: str = "sample"  # none | sample | full
    sample_rate: float = 0.1
    seed: int | None = None  # None: unpredictable (a worker cannot know which tasks are checked)
    witnesses: bool = True

    def __post_init__(self) -> None:
        if self.seed is None:
            self.seed = secrets.randbits(63)
        elif not 0 <= self.seed < 2**128:
            raise UsageError(f"--seed must be a whole number from 0 to 2**128-1, got {self.seed}")
        if self.replay not in ("none", "sample", "full"):
            raise UsageError(f"--replay must be none, sample or full, not {self.replay!r}")
        if not 0 < self.sample_rate <= 1:
            raise UsageError(f"--sample-rate must be in (0, 1], got {self.sample_rate}")
        if self.data_names and len(self.data_names) != len(self.data):
            raise UsageError(
                f"--name is given {len(self.data_names)} time(s) for {len(self.data)} --data "
                "file(s): give one --name per --data, in the same order, or none"
            )


@dataclass
class AuditReport:
    findings: list[Finding]
    jobs: list[dict[str, Any]]
    sampling: dict[str, Any]
    stats: dict[str, Any]
    # One per --data file: the dataset version it is (or, not matching, the latest
    # checked), and the jobs that trained on that version.
    data: list[dict[str, Any]] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # what this reader may not read

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "findings": [f.to_dict() for f in self.findings],
            "jobs": self.jobs,
            "sampling": self.sampling,
            "stats": self.stats,
            "data": self.data,
            "unchecked": self.unchecked,
        }


class _Auditor:
    def __init__(self, home: Home, genesis: Genesis, opts: AuditOptions):
        self.home = home
        self.genesis = genesis
        self.opts = opts
        self.findings: list[Finding] = []
        self.rng = np.random.default_rng(opts.seed)
        self.replayed = 0
        self.candidates = 0
        self.per_worker: dict[str, dict[str, int]] = {}
        self._verified: dict[tuple, tuple] = {}  # (root, start, stop) -> (rows, label)
        self._data_cache: dict[tuple, tuple | UnusableValues] = {}  # + (features, target)
        self._tampered: set[tuple] = set()  # (root, start, stop) found not to match
        self._cursors: dict[tuple, ReadCursor] = {}
        self._bad_artifacts: dict[str, str] = {}  # digest -> the finding, where recorded
        self._indexes: dict[tuple, str | None] = {}  # index and commitment -> why unusable

    def find(self, kind: str, where: str, detail: str) -> None:
        self.findings.append(Finding(kind, where, detail))

    # -- artifacts -----------------------------------------------------------------------
    def artifact(
        self, led: Ledger, digest: str, where: str, *, recorded: bool = False
    ) -> bytes | None:
        """The artifact's bytes, checked against its hash; None if unusable, with a
        finding at each message that ``recorded`` it (its reads are not reported again)."""
        if digest in self._bad_artifacts:
            if recorded:
                self.find("artifact", where, self._bad_artifacts[digest])
            return None
        try:
            return led.artifacts.get(digest)
        except ArtifactMissing:
            detail = f"artifact {digest} is missing from the store"
        except ArtifactCorrupt:
            detail = f"artifact {digest} does not match its hash"
        self.find("artifact", where, detail)
        self._bad_artifacts[digest] = detail
        return None

    def arrays(self, led: Ledger, digest: str, where: str) -> dict | None:
        raw = self.artifact(led, digest, where)
        return None if raw is None else decode_arrays(raw)

    # -- one job --------------------------------------------------------------------------
    def job(self, led: Ledger, rec: JobRecord) -> dict[str, Any]:
        spec = rec.spec
        where = job_label(rec.job)
        try:
            algo = get_algorithm(spec["algorithm"])
        except ValueError as e:
            self.find("job", where, str(e))
            return {"job": rec.job}
        code = rec.start.fields["code"]
        current = training_code_hash(spec["algorithm"])
        if code != current:
            self.find(
                "code",
                where,
                f"job.start declares code {code[:16]}…, but the training "
                f"code installed here hashes to {current[:16]}…: the code changed",
            )
        for e in rec.results.values():
            if e.fields["code"] != code:
                self.find(
                    "code",
                    f"message {e.index} ({job_label(rec.job)})",
                    f"task.result from {e.fields['sender']} ran code "
                    f"{e.fields['code'][:16]}…, not the job's {code[:16]}…",
                )
        model = rec.final.body.get("model_hash") if rec.final else None  # a file of its own
        for e in rec.messages:  # every artifact read and hashed, whatever replay reads
            for h in e.fields["outputs"]:
                if h != model:
                    where = f"message {e.index} ({e.kind}, {job_label(rec.job)})"
                    self.artifact(led, h, where, recorded=True)
        if rec.commit is None:
            self.find("data", where, "job.start names a data.commit that is not on the ledger")
        else:
            self.plan(rec)
        self.initial_params(rec, algo)
        self.coordinator_chain(rec)
        self.data_flow(rec)
        with blas.pinned(1):
            self.replay_updates(led, rec, algo)
            self.final_model(led, rec, algo)
            if self.opts.replay != "none":
                self.replay_maps(led, rec, algo)
        return {
            "job": rec.job,
            "algorithm": spec["algorithm"],
            "dataset": spec["dataset"]["name"],
            "status": rec.end.body["status"] if rec.end else "open",
            "rounds": len(rec.updates),
            "results": len(rec.results),
            "retries": len(rec.retries),
            "loss": rec.loss_curve(),
            "timeline": [
                {
                    "index": e.index,
                    "time": e.fields["time"],
                    "kind": e.kind,
                    "sender": e.fields["sender"],
                }
                for e in rec.messages
            ],
        }

    def plan(self, rec: JobRecord) -> None:
        """The partitions must cover the committed rows exactly once, in order."""
        spec, c = rec.spec, rec.commit.body
        where = job_label(rec.job)
        ds = spec["dataset"]
        if (ds.get("name"), ds.get("root"), ds.get("rows")) != (c["name"], c["root"], c["rows"]):
            self.find("plan", where, "job.start misstates the committed dataset it names")
        bounds = [b for r in spec["plan"] for b in r]
        contiguous = all(bounds[i] == bounds[i + 1] for i in range(1, len(bounds) - 1, 2))
        ordered = all(a <= b for a, b in spec["plan"])
        if not (bounds and bounds[0] == 0 and bounds[-1] == c["rows"] and contiguous and ordered):
            spans = [f"{a}..{b}" for a, b in spec["plan"]]
            if len(spans) > 8:
                spans = [*spans[:8], f"… ({len(spans)} partitions)"]
            self.find(
                "plan",
                where,
                f"its partitions (rows {', '.join(spans) or 'none'}) do not cover rows "
                f"0..{c['rows']} of {c['name']} exactly once, in order",
            )

    def initial_params(self, rec: JobRecord, algo) -> None:
        spec = rec.spec
        try:
            p0 = algo.initial_params(len(spec["features"]), spec["hyper"], spec["seed"])
        except ValueError as e:
            self.find("params", job_label(rec.job), f"declared hyperparameters are invalid: {e}")
            return
        if hash_arrays(p0) != rec.start.fields["state"]:
            self.find(
                "params",
                f"message {rec.start.index} (job.start, {job_label(rec.job)})",
                "its initial parameters are not those of the declared algorithm, "
                "hyperparameters and seed",
            )

    def coordinator_chain(self, rec: JobRecord) -> None:
        """Only state.update moves the coordinator from one parameter hash to the next."""
        bubble = rec.start.fields["bubble"]
        state = rec.start.fields["state"]
        for e in rec.messages[1:]:
            if e.fields["bubble"] != bubble:
                continue
            where = f"message {e.index} ({e.kind}, {job_label(rec.job)})"
            if e.fields["last"] != state:
                self.find(
                    "chain",
                    where,
                    f"starts from {e.fields['last']}, not from the coordinator's state {state}",
                )
            if e.kind == "state.update":
                state = e.fields["state"]
            elif e.fields["state"] != state:
                self.find(
                    "chain", where, "changes the coordinator's parameters outside a state.update"
                )
        self._final_state = state

    def final_model(self, led: Ledger, rec: JobRecord, algo) -> None:
        """One model.final per finished job, on the last parameters, with the true metric."""
        finals = [e for e in rec.messages if e.kind == "model.final"]
        if rec.end is not None and rec.end.body.get("status") == "succeeded" and not finals:
            self.find("model", job_label(rec.job), "succeeded without a model.final")
        if len(finals) > 1:
            self.find("model", job_label(rec.job), f"records {len(finals)} model.final messages")
        for f in finals:
            where = f"message {f.index} (model.final, {job_label(rec.job)})"
            last = rec.updates[-1].fields["state"] if rec.updates else rec.start.fields["state"]
            if f.body.get("params") != last or f.fields["last"] != last:
                self.find("model", where, "its parameters are not the job's last state.update")
            evals = [
                e
                for e in rec.results.values()
                if e.body.get("phase") == "evaluate" and e.fields["last"] == last
            ]
            by_part = {}
            for e in sorted(evals, key=lambda e: e.index):
                by_part.setdefault(e.body["partition"], e)
            if sorted(by_part) != list(range(len(rec.spec["plan"]))):
                self.find("model", where, "its metric was not computed on every partition")
                continue
            parts = [self.arrays(led, by_part[p].fields["state"], where) for p in sorted(by_part)]
            if any(x is None for x in parts):
                continue
            name, value = metric_from_partials(algo, parts)
            if (f.body.get("metric"), f.body.get("value")) != (name, value):
                self.find(
                    "model",
                    where,
                    f"records {f.body.get('metric')} {f.body.get('value')}"
                    f", but its evaluation results give {name} {value}",
                )

    def data_flow(self, rec: JobRecord) -> None:
        parts = len(rec.spec["plan"])
        for u in rec.updates:
            where = f"message {u.index} (state.update, {job_label(rec.job)})"
            listed = [r["message"] for r in u.body["results"]]
            if listed != u.fields["inputs"]:
                self.find("flow", where, "its results list differs from its signed inputs")
            seen = []
            for r in u.body["results"]:
                res = rec.results.get(r["message"])
                if res is None:
                    self.find(
                        "flow", where, f"names {r['message'][:16]}…, not a task result of this job"
                    )
                    continue
                if res.fields["last"] != u.fields["last"]:
                    self.find(
                        "flow",
                        where,
                        f"reduces the result at index {res.index}, computed "
                        f"on {res.fields['last'][:16]}…, not on the parameters "
                        f"{u.fields['last'][:16]}… it replaces",
                    )
                if res.fields["state"] != r["partial"] or res.body["partition"] != r["partition"]:
                    self.find("flow", where, f"misreports the result at index {res.index}")
                seen.append(res.body["partition"])
            if sorted(seen) != list(range(parts)):
                which = ", ".join(map(str, sorted(seen)))
                self.find(
                    "flow",
                    where,
                    (f"reduces the results of partitions {which}" if seen else "reduces no result")
                    + f", not one of each of the {parts} partitions",
                )

    def replay_updates(self, led: Ledger, rec: JobRecord, algo) -> None:
        for u in rec.updates:
            where = (
                f"message {u.index} (state.update, iteration {u.body['iteration']}, "
                f"{job_label(rec.job)})"
            )
            params = self.arrays(led, u.fields["last"], where)
            partials = [
                self.arrays(led, r["partial"], where)
                for r in sorted(u.body["results"], key=lambda r: r["partition"])
            ]
            if params is None or any(p is None for p in partials):
                continue
            upd = algo.update(params, algo.reduce(partials))
            got = hash_arrays(upd.params)
            if got != u.fields["state"]:
                self.find(
                    "replay",
                    where,
                    f"replaying reduce and update gives parameters "
                    f"{got[:16]}…, but the coordinator recorded {u.fields['state'][:16]}…",
                )

    def replay_maps(self, led: Ledger, rec: JobRecord, algo) -> None:
        spec = rec.spec
        commitment = rec.commit.body if rec.commit else None
        for e in sorted(rec.results.values(), key=lambda e: e.index):
            worker = e.fields["sender"]
            stats = self.per_worker.setdefault(worker, {"tasks": 0, "replayed": 0})
            stats["tasks"] += 1
            self.candidates += 1
            if self.opts.replay == "sample" and self.rng.random() >= self.opts.sample_rate:
                continue
            b = e.body
            where = (
                f"message {e.index} (task.result by {worker}, partition {b['partition']}, "
                f"iteration {b['iteration']}, {job_label(rec.job)})"
            )
            if commitment is None:
                continue
            data = self.partition(led, spec, commitment, b["partition"], where)
            if data is None:
                continue
            params = self.arrays(led, e.fields["last"], where)
            if params is None:
                continue
            stats["replayed"] += 1  # only what is re-executed counts toward the odds
            self.replayed += 1
            X, y = data
            if b.get("phase") == "evaluate":
                partial = evaluate_partial(algo, params, X, y)
            else:
                ctx = MapContext(b["partition"], len(spec["plan"]), spec["seed"])
                partial = algo.map(params, X, y, ctx)
            got = hash_arrays(partial)
            if got != e.fields["state"]:
                self.find(
                    "replay",
                    where,
                    f"re-executing the map gives partial {got[:16]}…, but "
                    f"the worker signed {e.fields['state'][:16]}…",
                )

    def partition(self, led, spec, commitment, p: int, where: str):
        """Partition ``p`` of a job's plan as (X, y), read and verified, or None if unusable.

        The rows of a span are verified once for every job on them; each job's
        columns are then taken from them. Rows that do not match the commitment
        are a data finding (reported once); values training cannot use (a worker
        must refuse them) are a finding on the result that was signed anyway.
        """
        start, stop = spec["plan"][p]
        features, target = spec["features"], spec["target"]
        if start == stop:
            return np.empty((0, len(features))), (np.empty(0) if target else None)
        span = (commitment["root"], start, stop)
        rows = self._rows(led, commitment, span, p)
        if rows is None:
            return None
        key = (*span, tuple(features), target)
        hit = self._data_cache.get(key)
        if hit is None:
            table, label = rows
            try:
                hit = usable(table, features, target, label, commitment["schema"]["id_column"])
            except UnusableValues as e:
                hit = e
            self._data_cache[key] = hit
        if isinstance(hit, UnusableValues):
            self.find("replay", where, f"the worker signed a result on unusable rows: {hit}")
            return None
        return hit

    def _rows(self, led, commitment, span: tuple, p: int):
        """The verified rows of ``span`` and the source's label, or None if they do not match."""
        if span in self._tampered:
            return None
        hit = self._verified.get(span)
        if hit is not None:
            return hit
        _, start, stop = span
        label = f"dataset {commitment['name']}"
        # What load_index checks the index against is part of its verdict.
        index = tuple(commitment.get(k) for k in ("partitions", "root", "rows", "partition_rows"))
        if index not in self._indexes:
            try:
                load_index(commitment, led.artifacts.get)
                self._indexes[index] = None
            except (UsageError, ValueError) as e:
                # The commitment's own artifacts: verify reports them, at its data.commit.
                # Not the data file's fault, and no partition of it can be checked.
                self._indexes[index] = str(e)
        if self._indexes[index] is not None:
            return None
        try:
            at = (commitment["source"], commitment["root"])
            if at not in self._cursors:  # replays in partition order read the file once
                self._cursors = {at: partition_cursor(commitment["source"], commitment)}
            hit = verified_rows(
                commitment["source"], commitment, led.artifacts, start, stop, self._cursors[at]
            )
        except PartitionTampered as e:
            bad = str(e)
        except OSError as e:
            bad = f"{commitment.get('source')}: {e.strerror or e}"
        except ValueError as e:  # DataError names its source itself
            bad = str(e)
        else:
            self._verified[span] = hit
            return hit
        self._tampered.add(span)
        self.find("data", f"{label}, partition {p}", bad)
        return None

    # -- files given on the command line ------------------------------------------------------
    def models(self, led: Ledger, final_height: int) -> None:
        """Each model file against the `model.final` that records it, which must be final:
        one that no witness quorum vouches for (kept from the witnesses, or still in
        flight) vouches for nothing."""
        finals: dict[Any, Entry] = {}
        for e in led.entries(kind="model.final"):  # a final record of the hash wins
            held = finals.get(e.body.get("model_hash"))
            if held is None or held.block > final_height:
                finals[e.body.get("model_hash")] = e
        for path in self.opts.models:
            try:  # hashed before anything in it is parsed: see check_model
                data, digest = model_file(path)
                e = finals.get(digest)
                if e is None:
                    self.find("model", str(path), f"sha256 {digest[:16]}… matches no model.final")
                    continue
                if e.block > final_height:
                    self.find(
                        "model",
                        str(path),
                        f"its model.final (message {e.index}, block {e.block}) is not final: "
                        "no witness quorum vouches for it",
                    )
                    continue
                params, _ = parse_model(data, path)
            except UsageError as err:
                self.find("model", str(path), str(err))
                continue
            if hash_arrays(params) != e.body.get("params"):
                self.find("model", str(path), "its parameters are not the job's final parameters")

    def data_files(
        self, led: Ledger, names: list[str | None], records: list[JobRecord]
    ) -> list[dict[str, Any]]:
        """Check each data file against the latest version of its dataset; one each.

        A file that differs from the latest version but is exactly a version a job
        trained on is that version, not a changed file: the data of an older job,
        audited after a newer commit. The findings are against the latest version
        only when the file is neither.
        """
        version_of = {d["id"]: d["version"] for d in datasets(led)}
        trained: dict[tuple[str, int], list[str]] = {}
        for rec in records:
            if rec.commit is not None and rec.commit.id in version_of:
                key = (rec.commit.body.get("name"), version_of[rec.commit.id])
                trained.setdefault(key, []).append(rec.job)
        out = []
        for path, name in zip(self.opts.data, names, strict=True):
            try:
                r = verify_dataset(led, path, name)
            except UsageError as e:  # the finding names the path: the text need not again
                why = str(e).removeprefix(f"{path}: ")
                self.find("data", str(path), why)
                out.append({"path": str(path), "name": name, "matches": False, "error": why})
                continue
            ds, latest = r["name"], r["version"]
            about = {"path": str(path), "name": ds, "latest": latest}
            found = _data_differences(r, path, led.home.root)
            matched = latest if not found else None
            older = sorted((v for n, v in trained if n == ds and v != latest), reverse=True)
            for v in older if found else ():
                try:
                    if not _data_differences(verify_dataset(led, path, ds, v), path, led.home.root):
                        matched = v
                        break
                except UsageError:
                    continue
            if matched is None:
                for where, detail in found:
                    self.find("data", where, detail)
                out.append({**about, "version": latest, "matches": False, "jobs": []})
            else:
                jobs = trained.get((ds, matched), [])
                out.append({**about, "version": matched, "matches": True, "jobs": jobs})
        return out

    # -- witnesses ----------------------------------------------------------------------------
    def witness_heads(self, led: Ledger) -> None:
        local = led.store
        for w in self.genesis.witnesses:
            path = self.home.witness(w.name) / REPLICA_FILE
            if not path.exists():
                continue
            try:
                rs = Store.open(path, readonly=True)
            except StoreError as e:
                self.find("witness", f"witness {w.name}", str(e))
                continue
            try:
                head = rs.head()
                if head is None:
                    continue
                note = SignedNote.parse(head.checkpoint)
                line = rs.cosignatures(head.height).get(w.name)
                if line is None or not verify_cosignature(
                    note.body, NoteSignature.parse_line(line), w
                ):
                    self.find(
                        "witness",
                        f"witness {w.name}",
                        "its head carries no valid cosignature of its own",
                    )
                    continue
                hdr = parse_header(head.header)
                wsize, wroot = int(hdr["size"]), bytes.fromhex(hdr["root"])
            except (ValueError, KeyError, TypeError) as e:
                self.find("witness", f"witness {w.name}", f"its head is unreadable: {e}")
                continue
            finally:
                rs.close()
            size = local.size()  # read after the witness's head: the ledger is never behind
            if wsize > size:
                self.find(
                    "witness",
                    f"witness {w.name}",
                    f"cosigned a log of {wsize} entries; this ledger has only {size}",
                )
                continue
            mine = merkle.root(local.leaves(stop=wsize))
            if mine != wroot:
                self.find(
                    "witness",
                    f"witness {w.name}",
                    f"cosigned root {wroot.hex()[:16]}… at "
                    f"size {wsize}; this ledger's root at that size is {mine.hex()[:16]}…: "
                    "this copy is not the one the witnesses saw",
                )

    def sampling(self) -> dict[str, Any]:
        r = 1.0 if self.opts.replay == "full" else self.opts.sample_rate
        if self.opts.replay == "none":
            r = 0.0
        workers = {}
        for name, s in sorted(self.per_worker.items()):
            workers[name] = {
                **s,
                "p_catch": {
                    str(f): 1 - (1 - r) ** max(1, math.ceil(f * s["tasks"])) for f in FRACTIONS
                },
            }
        return {
            "mode": self.opts.replay,
            "rate": r,
            "seed": self.opts.seed,
            "tasks": self.candidates,
            "replayed": self.replayed,
            "workers": workers,
            "statement": f"each task result is re-executed with probability {r:g}; a worker "
            "that lied in k of its tasks is caught with probability "
            f"1 - (1 - {r:g})^k",
        }


def _data_names(led: Ledger, opts: AuditOptions) -> list[str | None]:
    """The committed dataset each data file is checked against, resolved before the audit.

    A name given is used as is; otherwise the dataset committed from that very
    path, else the file's stem. A name that is not committed is bad input (no
    guessing further, not even when one dataset is committed). None: the file
    cannot be opened to take its stem; checking it reports that as a finding.
    """
    committed: set[str] = set()
    by_source: dict[str, str] = {}
    for d in datasets(led):
        committed.add(str(d["name"]))
        if isinstance(d["source"], str):  # compared resolved: "..", relative paths, symlinks
            by_source[_resolved(d["source"])] = d["name"]
    listed = ", ".join(sorted(committed)) or "none"
    out: list[str | None] = []
    for i, path in enumerate(opts.data):
        if opts.data_names:
            name = opts.data_names[i]
            if name not in committed:
                raise UsageError(
                    f"--data {path} --name {name}: no dataset {name!r} is committed "
                    f"(committed: {listed})"
                )
            out.append(name)
            continue
        name = by_source.get(_resolved(str(path)))
        if name is None:
            try:
                name = default_dataset_name(path)
            except UsageError:
                out.append(None)
                continue
            if name not in committed:
                raise UsageError(
                    f"--data {path}: no dataset {name!r} (its file name) is committed "
                    f"(committed: {listed}); pass --name NAME to say which"
                )
        out.append(name)
    return out


ROWS_NAMED = 20
"""Rows of a data file named one finding each, per way they differ; one finding counts
the rest (a dropped column changes every row: a million findings helped nobody)."""


def _data_differences(r: dict[str, Any], path: Path, home: Path) -> list[tuple[str, str]]:
    """(where, detail) of each way a `verify_dataset` result differs from its commitment."""
    label = f"dataset {r['name']} v{r['version']}"
    full = shlex.join(
        ["bubblechain", "data", "verify", str(path), "--name", r["name"], "--version",
         str(r["version"]), "--home", str(home), "--json"]
    )  # fmt: skip
    full = f"`{full}`"
    groups: list[tuple[list, Callable[[Any], tuple[str, str]], str]] = [
        (
            r.get(what, []),
            lambda rid, what=what: (f"{label}, row {rid}", f"{what} since the commitment ({path})"),
            f"more rows {what} since the commitment ({path}); {full} lists every row",
        )
        for what in ("changed", "missing", "added")
    ]
    groups.append(
        (
            r.get("unreadable_ids", []),
            lambda u: (
                f"{label}, file row {u['row']}",
                f"its id {u['text']!r} is not an int ({path})",
            ),
            f"more file rows whose id is not an int ({path}); {full} lists them",
        )
    )
    out: list[tuple[str, str]] = []
    for items, one, more in groups:
        out += [one(x) for x in items[:ROWS_NAMED]]
        if len(items) > ROWS_NAMED:
            out.append((label, f"{len(items) - ROWS_NAMED:,} {more}"))
    if r.get("schema"):
        drift = describe_schema_diff(r["schema"])
        out.append((label, f"schema differs from the commitment: {drift} ({path})"))
    return out


def _resolved(path: str) -> str:
    return path if "://" in path else str(Path(path).resolve())


def _size_at(led: Ledger, height: int) -> int:
    """Messages in the log up to block ``height`` (0 if its header cannot say: the
    verifier reports that)."""
    row = led.store.block(height) if height >= 0 else None
    try:
        return int(parse_header(row.header)["size"]) if row else 0
    except (KeyError, TypeError, ValueError):
        return 0


def _decodable(led: Ledger, start: int = 0, stop: int | None = None):
    """Every message in [start, stop) that decodes; the verifier reports those that do not."""
    for r in led.store.messages(start=start, stop=stop):
        try:
            yield Entry(r.idx, r.block, Message.from_parts(r.payload, r.sig))
        except Rejected:
            continue


def audit(home: Any = None, options: AuditOptions | None = None) -> AuditReport:
    """Audit a home from its pinned genesis; exit status follows `report.ok`."""
    opts = options or AuditOptions()
    h = Home(resolve_home(home))
    t0 = time.perf_counter()
    genesis = None
    if opts.genesis is not None:
        try:
            genesis = Genesis.from_bytes(Path(opts.genesis).read_bytes())
        except OSError as e:
            raise UsageError(f"--genesis {opts.genesis}: {e.strerror}") from None
        except ValueError as e:
            raise UsageError(f"--genesis {opts.genesis} is not a genesis file: {e}") from None
    for flag, paths in (("--data", opts.data), ("--model", opts.models)):
        for path in paths:  # a typo is bad input, not a finding that looks like tampering
            if "://" not in str(path) and not Path(path).exists():
                raise UsageError(f"{flag} {path}: no such file or directory")
    names: list[str | None] = []
    if opts.data:  # bad input is refused before the audit, not after it
        with Ledger.open(h.root, readonly=True) as led:
            led.skip_corrupt = True  # verify reports what does not decode
            names = _data_names(led, opts)
    live = is_appending(h.lock, unknown=False)
    report = verify_home(h.root, genesis)
    genesis = genesis or read_genesis(h)
    a = _Auditor(h, genesis, opts)
    a.findings += report.findings
    jobs = []
    seen = report.copies.get("ledger")
    final_height = seen.final_height if seen else -1
    with Ledger.open(h.root, readonly=True) as led:
        led.skip_corrupt = True
        final_size = _size_at(led, final_height)
        # The record as verify checked it. While another process appends (a job
        # running), what lies beyond its final blocks is on its way to the witnesses,
        # not pending for good: the audit covers the final record and counts the rest.
        live = live or is_appending(h.lock, unknown=False)
        stop = final_size if live else None
        records, _ = collect_jobs(_decodable(led, stop=stop))
        for e in () if live else _decodable(led, final_size):
            if e.block > final_height and e.fields["job"] is None:  # a job's: just below
                a.find(
                    "pending",
                    f"message {e.index} ({e.kind})",
                    f"not final: block {e.block} has no witness quorum, so nothing vouches for it",
                )
        for rec in records:
            pending = [e for e in rec.messages if e.block > final_height]
            if pending:
                a.find(
                    "pending",
                    job_label(rec.job),
                    f"{len(pending)} of its messages (from index "
                    f"{pending[0].index}) are not final: no witness quorum vouches for them",
                )
            try:
                jobs.append(a.job(led, rec))
            except (KeyError, TypeError, ValueError, IndexError) as e:
                a.find(
                    "job", job_label(rec.job), f"its record is malformed: {type(e).__name__}: {e}"
                )
                jobs.append({"job": rec.job})
        a.models(led, final_height)
        data = a.data_files(led, names, records)
        if opts.witnesses:
            a.witness_heads(led)
        size = led.store.size()
    stats = {"messages": size, "jobs": len(jobs), "seconds": time.perf_counter() - t0}
    if live:
        stats["messages"] = final_size
        stats["in_flight"] = size - final_size
    return AuditReport(a.findings, jobs, a.sampling(), stats, data, report.unchecked)
