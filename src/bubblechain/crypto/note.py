"""C2SP signed notes, `tlog-checkpoint` bodies and `tlog-cosignature` cosignatures.

Byte-exact with c2sp.org/signed-note, c2sp.org/tlog-checkpoint and
c2sp.org/tlog-cosignature (Ed25519 `cosignature/v1`), so that standard
transparency-log verifiers and witnesses can read and cosign this ledger.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass

from .keys import SIG_COSIGNATURE_V1, SIG_ED25519, Identity, PublicIdentity, key_id

_DASH = "\u2014"
COSIGNATURE_HEADER = b"cosignature/v1\n"


@dataclass(frozen=True)
class Checkpoint:
    """The signed statement "the log `origin` has `size` entries and this root"."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> bytes:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return ("\n".join([*lines, *self.extensions]) + "\n").encode()

    @classmethod
    def parse(cls, body: bytes) -> Checkpoint:
        """Parse a checkpoint note body, rejecting anything not in canonical form."""
        text = body.decode("utf-8")
        if not text.endswith("\n"):
            raise ValueError("checkpoint does not end in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3 or not lines[0]:
            raise ValueError("checkpoint needs origin, size and root lines")
        origin, size_s, root_s, *ext = lines
        if not size_s.isdigit() or (size_s != "0" and size_s.startswith("0")):
            raise ValueError(f"checkpoint size {size_s!r} is not a decimal without leading zeros")
        root = base64.b64decode(root_s, validate=True)
        if len(root) != 32 or base64.b64encode(root).decode() != root_s:
            raise ValueError("checkpoint root is not a base64 SHA-256 hash")
        if any(not e for e in ext):
            raise ValueError("checkpoint has an empty extension line")
        cp = cls(origin, int(size_s), root, tuple(ext))
        if cp.body() != body:
            raise ValueError("checkpoint is not in canonical form")
        return cp


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key ID and the signature bytes after it."""

    name: str
    key_id: bytes
    signature: bytes  # for cosignature/v1: 8-byte timestamp || 64-byte signature

    def line(self) -> str:
        blob = base64.b64encode(self.key_id + self.signature).decode()
        return f"{_DASH} {self.name} {blob}\n"

    @classmethod
    def parse_line(cls, line: str) -> NoteSignature:
        if not line.startswith(_DASH + " "):
            raise ValueError(f"signature line does not start with an em dash: {line!r}")
        parts = line[2:].rstrip("\n").split(" ")
        if len(parts) != 2:
            raise ValueError(f"malformed signature line: {line!r}")
        raw = base64.b64decode(parts[1], validate=True)
        if len(raw) < 5:
            raise ValueError(f"signature too short in line: {line!r}")
        return cls(parts[0], raw[:4], raw[4:])

    @property
    def timestamp(self) -> int | None:
        """The cosignature time, when this is a 72-byte cosignature/v1 signature."""
        if len(self.signature) != 72:
            return None
        return struct.unpack(">Q", self.signature[:8])[0]


@dataclass(frozen=True)
class SignedNote:
    """A note body followed by a blank line and one or more signature lines."""

    body: bytes
    signatures: tuple[NoteSignature, ...]

    def text(self) -> str:
        return self.body.decode() + "\n" + "".join(s.line() for s in self.signatures)

    @classmethod
    def parse(cls, text: str) -> SignedNote:
        if any(ord(c) < 0x20 and c != "\n" for c in text):
            raise ValueError("note contains control characters")
        sep = text.rfind("\n\n")
        if sep < 0:
            raise ValueError("note has no blank line before its signatures")
        body, sigs = text[: sep + 1], text[sep + 2 :]
        if not sigs.endswith("\n"):
            raise ValueError("note signatures do not end in a newline")
        lines = [ln + "\n" for ln in sigs[:-1].split("\n")]
        return cls(body.encode(), tuple(NoteSignature.parse_line(ln) for ln in lines))

    def with_signature(self, sig: NoteSignature) -> SignedNote:
        return SignedNote(self.body, (*self.signatures, sig))


def sign_note(body: bytes, identity: Identity) -> NoteSignature:
    """An Ed25519 (type 0x01) note signature, as the log's own checkpoint signature."""
    kid = key_id(identity.name, SIG_ED25519, identity.public_key)
    return NoteSignature(identity.name, kid, identity.sign(body))


def verify_note_signature(body: bytes, sig: NoteSignature, signer: PublicIdentity) -> bool:
    """Check a type-0x01 signature line against the signer's name and key."""
    if sig.name != signer.name or sig.key_id != key_id(signer.name, SIG_ED25519, signer.public_key):
        return False
    return len(sig.signature) == 64 and signer.verify(body, sig.signature)


def cosigned_message(body: bytes, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: header, time line, then the whole checkpoint body."""
    return COSIGNATURE_HEADER + f"time {timestamp}\n".encode() + body


def cosign(body: bytes, identity: Identity, timestamp: int) -> NoteSignature:
    """A witness's timestamped Ed25519 cosignature (type 0x04) on a checkpoint body."""
    if not 0 <= timestamp < 2**63:
        raise ValueError(f"cosignature timestamp {timestamp} out of range")
    kid = key_id(identity.name, SIG_COSIGNATURE_V1, identity.public_key)
    sig = identity.sign(cosigned_message(body, timestamp))
    return NoteSignature(identity.name, kid, struct.pack(">Q", timestamp) + sig)


def verify_cosignature(body: bytes, sig: NoteSignature, witness: PublicIdentity) -> bool:
    """Check a cosignature/v1 line against the witness's name and key."""
    if sig.name != witness.name or sig.key_id != key_id(
        witness.name, SIG_COSIGNATURE_V1, witness.public_key
    ):
        return False
    ts = sig.timestamp
    if ts is None or ts >= 2**63:
        return False
    return witness.verify(cosigned_message(body, ts), sig.signature[8:])
