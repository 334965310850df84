"""The genesis: the one document auditors pin out of band.

It names the log (origin), the sequencer key, the witness keys, the quorum and
the admin key. Everything on the ledger is checked back to it.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from ..crypto import canonical
from ..crypto.keys import PublicIdentity, validate_key_name
from ..errors import UsageError
from ..home import Home

GENESIS_VERSION = 1


def _ident(doc: dict[str, Any]) -> PublicIdentity:
    key = base64.b64decode(doc["key"], validate=True)
    if len(key) != 32:
        raise ValueError(f"key of {doc['name']!r} is not a 32-byte Ed25519 key")
    return PublicIdentity(validate_key_name(doc["name"]), key)


def _doc(ident: PublicIdentity) -> dict[str, str]:
    return {"name": ident.name, "key": ident.public_b64}


@dataclass(frozen=True)
class Genesis:
    origin: str
    sequencer: PublicIdentity
    witnesses: tuple[PublicIdentity, ...]
    quorum: int
    admin: PublicIdentity
    created: int  # microseconds since the epoch

    def __post_init__(self) -> None:
        n = len(self.witnesses)
        if not n // 2 < self.quorum <= n:
            raise ValueError(
                f"quorum {self.quorum} must be a majority of the {n} witnesses "
                f"({n // 2 + 1} to {n}): with less, a sequencer could finalise two forks"
            )
        names = [self.sequencer.name, self.admin.name, *(w.name for w in self.witnesses)]
        if len(set(names)) != len(names):
            raise ValueError(f"node names in the genesis must be distinct: {names}")

    def doc(self) -> dict[str, Any]:
        return {
            "v": GENESIS_VERSION,
            "origin": self.origin,
            "sequencer": _doc(self.sequencer),
            "witnesses": [_doc(w) for w in self.witnesses],
            "quorum": self.quorum,
            "admin": _doc(self.admin),
            "created": self.created,
        }

    def to_bytes(self) -> bytes:
        return canonical.dumps(self.doc())

    @property
    def hash(self) -> bytes:
        return hashlib.sha256(self.to_bytes()).digest()

    def witness(self, name: str) -> PublicIdentity | None:
        return next((w for w in self.witnesses if w.name == name), None)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Genesis:
        try:
            if not isinstance(doc, dict):
                raise TypeError(f"a JSON object is expected, not {type(doc).__name__}")
            if doc.get("v") != GENESIS_VERSION:
                raise ValueError(f"unsupported genesis version {doc.get('v')!r}")
            return cls(
                origin=validate_key_name(doc["origin"]),
                sequencer=_ident(doc["sequencer"]),
                witnesses=tuple(_ident(w) for w in doc["witnesses"]),
                quorum=int(doc["quorum"]),
                admin=_ident(doc["admin"]),
                created=int(doc["created"]),
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"genesis is missing or has a malformed field: {e}") from None

    @classmethod
    def from_bytes(cls, data: bytes) -> Genesis:
        return cls.from_doc(canonical.loads(data))


def read_genesis(home: Home) -> Genesis:
    """Load the pinned genesis of a home, with a clear error when it cannot be used."""
    if not home.root.is_dir():
        raise UsageError(f"no ledger at {home.root}: run `bubblechain init` or pass --home")
    try:
        raw = home.genesis.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no ledger at {home.root}: {home.genesis.name} is missing") from None
    except OSError as e:
        raise UsageError(f"genesis file {home.genesis} is unreadable: {e.strerror}") from None
    try:
        return Genesis.from_bytes(raw)
    except ValueError as e:
        raise UsageError(f"genesis file {home.genesis} is malformed: {e}") from None
