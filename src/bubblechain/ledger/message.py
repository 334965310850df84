"""Canonical signed messages: what every bubble sends and the log records.

A message is RFC 8785 JSON (the payload) plus the sender's Ed25519 signature over
`MESSAGE_DOMAIN || payload`. Its id is SHA-256(payload); its log entry is
`signature || payload`, whose RFC 6962 leaf hash the Merkle log commits to.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import merkle
from ..crypto import canonical
from ..crypto.keys import Identity
from ..errors import Rejected

MESSAGE_DOMAIN = b"bubblechain/message/v1\n"
MESSAGE_VERSION = 1
SIG_LEN = 64

_FIELDS = frozenset(
    {
        "v",
        "kind",
        "sender",
        "seq",
        "time",
        "bubble",
        "last",
        "state",
        "inputs",
        "outputs",
        "code",
        "job",
        "body",
    }
)
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_KIND = re.compile(r"[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*\Z")


def now_us() -> int:
    """Wall-clock time in integer microseconds (safe as a JSON integer)."""
    return time.time_ns() // 1000


def _check_hash(name: str, value: Any, *, nullable: bool) -> None:
    if value is None and nullable:
        return
    if not isinstance(value, str) or not _HEX64.match(value):
        raise Rejected(f"field {name!r} must be a lowercase hex SHA-256 hash, got {value!r}")


def _check_structure(f: Mapping[str, Any]) -> None:
    """Reject payloads whose fields are missing, extra or of the wrong type."""
    if not isinstance(f, dict) or set(f) != _FIELDS:
        got = sorted(f) if isinstance(f, dict) else type(f).__name__
        raise Rejected(f"message fields must be exactly {sorted(_FIELDS)}, got {got}")
    if f["v"] != MESSAGE_VERSION:
        raise Rejected(f"unsupported message version {f['v']!r}")
    if not isinstance(f["kind"], str) or not _KIND.match(f["kind"]):
        raise Rejected(f"invalid message kind {f['kind']!r}")
    if not isinstance(f["sender"], str) or not f["sender"]:
        raise Rejected(f"invalid sender {f['sender']!r}")
    for name in ("seq", "time"):
        if type(f[name]) is not int or f[name] < (1 if name == "seq" else 0):
            raise Rejected(f"field {name!r} must be a positive integer, got {f[name]!r}")
    for name in ("bubble", "job"):
        if f[name] is not None and (not isinstance(f[name], str) or not f[name]):
            raise Rejected(f"field {name!r} must be a non-empty string or null")
    for name in ("last", "state", "code"):
        _check_hash(name, f[name], nullable=True)
    for name in ("inputs", "outputs"):
        if not isinstance(f[name], list):
            raise Rejected(f"field {name!r} must be a list of hashes")
        for h in f[name]:
            _check_hash(name, h, nullable=False)
    if not isinstance(f["body"], dict):
        raise Rejected("field 'body' must be a JSON object")


@dataclass(frozen=True)
class Message:
    """A signed message, as sent and as stored."""

    payload: bytes
    signature: bytes
    fields: dict[str, Any] = field(compare=False, repr=False)
    id: bytes = field(compare=False, repr=False)

    @classmethod
    def create(
        cls,
        identity: Identity,
        kind: str,
        body: Mapping[str, Any],
        *,
        seq: int,
        bubble: str | None = None,
        last: str | None = None,
        state: str | None = None,
        inputs: Iterable[str] = (),
        outputs: Iterable[str] = (),
        code: str | None = None,
        job: str | None = None,
        time_us: int | None = None,
    ) -> Message:
        """Build, check and sign a message as `identity`."""
        fields = {
            "v": MESSAGE_VERSION,
            "kind": kind,
            "sender": identity.name,
            "seq": seq,
            "time": now_us() if time_us is None else time_us,
            "bubble": bubble,
            "last": last,
            "state": state,
            "inputs": list(inputs),
            "outputs": list(outputs),
            "code": code,
            "job": job,
            "body": dict(body),
        }
        _check_structure(fields)
        try:
            payload = canonical.dumps(fields)
        except ValueError as e:
            raise Rejected(f"message body cannot be encoded: {e}") from None
        sig = identity.sign(MESSAGE_DOMAIN + payload)
        # Keep the fields as every peer will decode them (lists, not tuples, and so on).
        return cls(payload, sig, json.loads(payload), hashlib.sha256(payload).digest())

    @classmethod
    def from_parts(cls, payload: bytes, signature: bytes) -> Message:
        """Parse a received or stored message; raise `Rejected` if malformed."""
        payload, signature = bytes(payload), bytes(signature)
        if len(signature) != SIG_LEN:
            raise Rejected(f"signature must be {SIG_LEN} bytes, got {len(signature)}")
        try:
            fields = canonical.loads(payload)
        except ValueError as e:
            raise Rejected(f"payload is not canonical JSON: {e}") from None
        _check_structure(fields)
        return cls(payload, signature, fields, hashlib.sha256(payload).digest())

    @classmethod
    def from_entry(cls, entry: bytes) -> Message:
        return cls.from_parts(entry[SIG_LEN:], entry[:SIG_LEN])

    @property
    def entry(self) -> bytes:
        """The log entry: signature then payload; its leaf hash is in the Merkle log."""
        return self.signature + self.payload

    @property
    def leaf(self) -> bytes:
        return merkle.leaf_hash(self.entry)

    @property
    def signed_bytes(self) -> bytes:
        return MESSAGE_DOMAIN + self.payload

    @property
    def kind(self) -> str:
        return self.fields["kind"]

    @property
    def sender(self) -> str:
        return self.fields["sender"]

    @property
    def seq(self) -> int:
        return self.fields["seq"]

    @property
    def body(self) -> dict[str, Any]:
        return self.fields["body"]

    @property
    def id_hex(self) -> str:
        return self.id.hex()
