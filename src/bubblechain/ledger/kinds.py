"""The message kinds the protocol knows, and what each one requires.

Every node that validates (sequencer, witnesses, verifier, auditor) uses this one
table, so a kind means the same thing everywhere.
"""

from __future__ import annotations

import base64
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


KINDS: dict[str, KindRule] = {
    "genesis": KindRule(admin_only=True),
    "node.register": KindRule(admin_only=True, check_body=_check_register),
    "note": KindRule(check_body=_check_note),
    # Data: a dataset's Merkle commitment.
    "data.commit": KindRule(check_body=_fields("name", "root", "rows", "schema_hash")),
    # MapReduce training (DESIGN.md "MapReduce training"), in the order they appear.
    "job.start": KindRule(
        opens_job=True, check_body=_fields("algorithm", "hyper", "dataset", "partitions")
    ),
    "task.result": KindRule(
        needs_job=True,
        on_coordinator_state=True,
        check_body=_fields("iteration", "partition", "attempt"),
    ),
    "task.refused": KindRule(needs_job=True, check_body=_fields("partition", "attempt")),
    "task.retry": KindRule(
        needs_job=True, coordinator_only=True, check_body=_fields("partition", "attempt")
    ),
    "state.update": KindRule(
        needs_job=True, coordinator_only=True, check_body=_fields("iteration", "results")
    ),
    "model.final": KindRule(
        needs_job=True, coordinator_only=True, check_body=_fields("model_hash")
    ),
    "job.end": KindRule(closes_job=True, coordinator_only=True, check_body=_fields("status")),
}


def register_kind(kind: str, rule: KindRule) -> None:
    """Declare a protocol kind (data, training and serving modules add theirs)."""
    existing = KINDS.get(kind)
    if existing is not None and existing != rule:
        raise ValueError(f"message kind {kind!r} is already declared differently")
    KINDS[kind] = rule
