"""The message kinds the protocol knows, and what each one requires.

Every node that validates (sequencer, witnesses, verifier, auditor) uses this one
table, so a kind means the same thing everywhere.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..crypto.keys import validate_key_name
from ..errors import Rejected


@dataclass(frozen=True)
class KindRule:
    admin_only: bool = False
    needs_job: bool = False  # the message's job must be open
    opens_job: bool = False  # the message's job must be new; it opens it
    closes_job: bool = False
    coordinator_only: bool = False  # sent by the job's coordinator, from its bubble
    on_coordinator_state: bool = False  # last_state must be the coordinator's current state
    moves_state: bool = False  # may change a job coordinator's state (all other kinds may not)
    roles: frozenset[str] | None = None  # registered roles allowed to send it (None: any)
    check_body: Callable[[dict[str, Any]], None] | None = None


def _require(body: dict[str, Any], key: str, typ: type | tuple[type, ...]) -> Any:
    value = body.get(key)
    if not isinstance(value, typ):
        raise Rejected(f"body field {key!r} is missing or not {getattr(typ, '__name__', typ)}")
    return value


def _check_register(body: dict[str, Any]) -> None:
    name = _require(body, "name", str)
    try:
        validate_key_name(name)
        key = base64.b64decode(_require(body, "key", str), validate=True)
    except ValueError as e:
        raise Rejected(f"node.register: {e}") from None
    if len(key) != 32:
        raise Rejected("node.register: key must be a base64 32-byte Ed25519 key")
    _require(body, "role", str)


def _check_note(body: dict[str, Any]) -> None:
    _require(body, "text", str)


def _fields(*names: str) -> Callable[[dict[str, Any]], None]:
    def check(body: dict[str, Any]) -> None:
        missing = [n for n in names if n not in body]
        if missing:
            raise Rejected(f"body is missing {', '.join(missing)}")

    return check


def _ints(*names: str) -> Callable[[dict[str, Any]], None]:
    def check(body: dict[str, Any]) -> None:
        for n in names:
            if type(body.get(n)) is not int or body[n] < 0:
                raise Rejected(f"body field {n!r} must be a non-negative integer")

    return check


_HEX64 = re.compile(r"[0-9a-f]{64}")


def _hash(body: dict[str, Any], key: str) -> None:
    value = body.get(key)
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise Rejected(f"body field {key!r} must be a lowercase hex SHA-256 hash")


def _optional(body: dict[str, Any], key: str, typ: type | tuple[type, ...], what: str) -> None:
    """Readers (jobs, audit, data list) use these fields as they are recorded: a value
    of another type would pass here and break them."""
    value = body.get(key)
    if value is not None and (not isinstance(value, typ) or isinstance(value, bool)):
        raise Rejected(f"body field {key!r} must be {what}")


def _check_data_commit(body: dict[str, Any]) -> None:
    name = _require(body, "name", str)
    if not name:
        raise Rejected("data.commit name must not be empty")
    _hash(body, "root")
    _hash(body, "schema_hash")
    _hash(body, "partitions")  # the partition index every check of the data reads
    _ints("rows", "partition_rows")(body)
    schema = body.get("schema")
    if not (
        isinstance(schema, dict)
        and isinstance(schema.get("id_column"), str)
        and isinstance(schema.get("columns"), list)
    ):
        raise Rejected("data.commit schema must name its id column and list its columns")
    _optional(body, "source", str, "a path or URL")
    _optional(body, "version", int, "a version number")


def _check_model_final(body: dict[str, Any]) -> None:
    _hash(body, "model_hash")
    if "params" in body:
        _hash(body, "params")
    _optional(body, "metric", str, "a metric name")
    _optional(body, "value", (int, float), "a number")
    if ("metric" in body) != ("value" in body) or (body.get("metric") is None) != (
        body.get("value") is None
    ):
        raise Rejected("model.final names a metric and its value, or neither")
    _optional(body, "path", str, "a path")
    _optional(body, "iterations", int, "a number of rounds")
    _optional(body, "rounds", int, "a number of rounds")


def _check_job_end(body: dict[str, Any]) -> None:
    if body.get("status") not in ("succeeded", "failed"):
        raise Rejected("job.end status must be 'succeeded' or 'failed'")
    _optional(body, "reason", str, "text")


def _check_job_start(body: dict[str, Any]) -> None:
    _fields("algorithm", "hyper", "dataset", "partitions", "plan", "features", "seed")(body)
    ds = body["dataset"]
    if not isinstance(ds, dict) or not isinstance(ds.get("commit"), str):
        raise Rejected("job.start dataset must name its data.commit message")
    if not isinstance(ds.get("name"), str) or not isinstance(body["algorithm"], str):
        raise Rejected("job.start must name its algorithm and its dataset")
    plan = body["plan"]
    if not isinstance(plan, list) or not all(
        isinstance(r, list) and len(r) == 2 and all(type(x) is int for x in r) for r in plan
    ):
        raise Rejected("job.start plan must be a list of [start, stop] row ranges")
    if type(body["partitions"]) is not int or body["partitions"] != len(plan):
        raise Rejected("job.start partitions must equal the number of planned ranges")
    if not isinstance(body["features"], list) or not all(
        isinstance(x, str) for x in body["features"]
    ):
        raise Rejected("job.start features must be a list of column names")


def _check_update(body: dict[str, Any]) -> None:
    _ints("iteration")(body)
    results = body.get("results")
    if not isinstance(results, list) or not all(
        isinstance(r, dict)
        and isinstance(r.get("message"), str)
        and isinstance(r.get("partial"), str)
        and type(r.get("partition")) is int
        for r in results
    ):
        raise Rejected("state.update results must list {partition, message, partial}")


KINDS: dict[str, KindRule] = {
    "genesis": KindRule(admin_only=True),
    "node.register": KindRule(admin_only=True, check_body=_check_register),
    "note": KindRule(check_body=_check_note),
    # Data: a dataset's Merkle commitment.
    "data.commit": KindRule(
        roles=frozenset({"admin", "data-owner"}),
        check_body=_check_data_commit,
    ),
    # MapReduce training (DESIGN.md "MapReduce training"), in the order they appear.
    "job.start": KindRule(
        opens_job=True,
        moves_state=True,
        roles=frozenset({"coordinator"}),
        check_body=_check_job_start,
    ),
    "task.result": KindRule(
        needs_job=True,
        on_coordinator_state=True,
        roles=frozenset({"worker"}),
        check_body=_ints("iteration", "partition", "attempt"),
    ),
    "task.refused": KindRule(
        needs_job=True, roles=frozenset({"worker"}), check_body=_ints("partition", "attempt")
    ),
    "task.retry": KindRule(
        needs_job=True, coordinator_only=True, check_body=_ints("partition", "attempt")
    ),
    "state.update": KindRule(
        needs_job=True, coordinator_only=True, moves_state=True, check_body=_check_update
    ),
    "model.final": KindRule(needs_job=True, coordinator_only=True, check_body=_check_model_final),
    "job.end": KindRule(closes_job=True, coordinator_only=True, check_body=_check_job_end),
}


def register_kind(kind: str, rule: KindRule) -> None:
    """Declare a protocol kind (data, training and serving modules add theirs)."""
    existing = KINDS.get(kind)
    if existing is not None and existing != rule:
        raise ValueError(f"message kind {kind!r} is already declared differently")
    KINDS[kind] = rule
