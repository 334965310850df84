"""The genesis: the one document auditors pin out of band.

It names the log (origin), the sequencer key, the witness keys, the quorum and
the admin key. Everything on the ledger is checked back to it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..crypto import canonical
from ..crypto.keys import PublicIdentity, validate_key_name
from ..errors import UsageError
from ..home import Home

GENESIS_VERSION = 1


def _json(value: Any) -> str:
    """A field's value as the genesis file writes it (JSON), for an error message."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _field(doc: Any, key: str, what: str) -> Any:
    """``doc[key]``, or a ValueError naming ``what`` lacks it."""
    if not isinstance(doc, dict):
        raise ValueError(f"{what} is not a JSON object")
    if key not in doc:
        raise ValueError(f"{what} has no field {key!r}")
    return doc[key]


def _name(doc: Any, what: str) -> str:
    name = _field(doc, "name", what)
    if not isinstance(name, str):
        raise ValueError(f"the name of {what} is not text: {_json(name)}")
    return validate_key_name(name)


def _ident(doc: Any, what: str) -> PublicIdentity:
    name = _name(doc, what)
    text = _field(doc, "key", what)
    try:
        key = base64.b64decode(text, validate=True)
    except (TypeError, ValueError):  # not text, or not base64 (binascii.Error)
        raise ValueError(f"the key of {what} is not base64") from None
    if len(key) != 32:
        raise ValueError(f"the key of {what} is not a 32-byte Ed25519 key")
    return PublicIdentity(name, key)


def _whole(doc: dict[str, Any], key: str) -> int:
    value = _field(doc, key, "the genesis")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"genesis field {key!r} is not a whole number: {_json(value)}") from None


def _witnesses(doc: dict[str, Any]) -> tuple[PublicIdentity, ...]:
    listed = _field(doc, "witnesses", "the genesis")
    if not isinstance(listed, list):
        raise ValueError(f"genesis field 'witnesses' is not a list: {_json(listed)}")
    out = []
    for i, w in enumerate(listed):
        name = _name(w, f"witness {i + 1} of {len(listed)}")  # then named by its name
        out.append(_ident(w, f"witness {name}"))
    return tuple(out)


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
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(
                f"node names in the genesis must be distinct: {', '.join(twice)} "
                f"name{'s' * (len(twice) == 1)} more than one node"
            )

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
        if not isinstance(doc, dict):
            raise ValueError("the genesis is not a JSON object")
        if doc.get("v") != GENESIS_VERSION:
            raise ValueError(f"unsupported genesis version {_json(doc.get('v'))}")
        origin = _field(doc, "origin", "the genesis")
        if not isinstance(origin, str):
            raise ValueError(f"genesis field 'origin' is not text: {_json(origin)}")
        return cls(
            origin=validate_key_name(origin),
            sequencer=_ident(_field(doc, "sequencer", "the genesis"), "the sequencer"),
            witnesses=_witnesses(doc),
            quorum=_whole(doc, "quorum"),
            admin=_ident(_field(doc, "admin", "the genesis"), "the admin"),
            created=_whole(doc, "created"),
        )

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
