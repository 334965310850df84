"""Ed25519 node identities, their key files and C2SP verifier keys (vkeys).

Every node (sequencer, witness, admin, worker, model server) signs with its own
key. Private keys live in 0600 files; public keys are printed as C2SP signed-note
vkeys `<name>+<8 hex key id>+<base64(type || key)>` so standard tools can use them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.signing

from ..errors import KeyFileError, KeyFileForbidden
from ..fsutil import write_atomic

# C2SP signed-note signature types.
SIG_ED25519 = 0x01  # plain Ed25519 note signatures (the sequencer's checkpoints)
SIG_COSIGNATURE_V1 = 0x04  # timestamped Ed25519 witness cosignatures

_KEY_FILE_VERSION = 1


def validate_key_name(name: str) -> str:
    """Key names are note key names: non-empty, no spaces, no '+' (C2SP signed-note)."""
    if not name or any(c.isspace() or c == "+" for c in name) or not name.isprintable():
        raise ValueError(f"invalid key name {name!r}: must be non-empty, without spaces or '+'")
    return name


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """The 4-byte note key ID: SHA-256(name || 0x0A || type || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()[:4]


def vkey(name: str, sig_type: int, public_key: bytes) -> str:
    """Encode a verifier key in the C2SP signed-note vkey form."""
    kid = key_id(name, sig_type, public_key).hex()
    return f"{name}+{kid}+{base64.b64encode(bytes([sig_type]) + public_key).decode()}"


def parse_vkey(text: str) -> tuple[str, int, bytes]:
    """Decode a vkey into (name, signature type, public key), checking its key ID."""
    parts = text.strip().split("+", 2)
    if len(parts) != 3:
        raise ValueError(f"malformed vkey {text!r}: expected name+keyid+base64")
    name, kid, b64 = parts
    try:
        raw = base64.b64decode(b64, validate=True)
    except ValueError as e:
        raise ValueError(f"malformed vkey {text!r}: bad base64") from e
    if len(raw) != 33:
        raise ValueError(f"malformed vkey {text!r}: expected a type byte and 32-byte key")
    sig_type, public_key = raw[0], raw[1:]
    if key_id(name, sig_type, public_key).hex() != kid:
        raise ValueError(f"malformed vkey {text!r}: key ID does not match the key")
    return name, sig_type, public_key


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Strict Ed25519 verification (libsodium: canonical S, no small-order keys)."""
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True)
class PublicIdentity:
    """A node's name and Ed25519 public key: what other nodes verify against."""

    name: str
    public_key: bytes

    def vkey(self, sig_type: int) -> str:
        return vkey(self.name, sig_type, self.public_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        return verify_signature(self.public_key, message, signature)

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_key).decode()


class Identity(PublicIdentity):
    """A node's signing identity: a name and an Ed25519 private key."""

    def __init__(self, name: str, signing_key: nacl.signing.SigningKey):
        object.__setattr__(self, "name", validate_key_name(name))
        object.__setattr__(self, "public_key", bytes(signing_key.verify_key))
        object.__setattr__(self, "_sk", signing_key)

    @classmethod
    def generate(cls, name: str) -> Identity:
        return cls(name, nacl.signing.SigningKey.generate())

    def sign(self, message: bytes) -> bytes:
        return self._sk.sign(message).signature

    @property
    def public(self) -> PublicIdentity:
        return PublicIdentity(self.name, self.public_key)

    def __repr__(self) -> str:  # never print key material
        return f"Identity({self.name!r})"

    def save(self, path: Path) -> None:
        """Write the key file with 0600 permissions, atomically."""
        doc = {
            "v": _KEY_FILE_VERSION,
            "type": "ed25519",
            "name": self.name,
            "private": base64.b64encode(bytes(self._sk)).decode(),
        }
        write_atomic(Path(path), (json.dumps(doc, indent=1) + "\n").encode(), mode=0o600)

    @classmethod
    def load(cls, path: Path) -> Identity:
        """Read a key file, refusing files others can read and malformed contents."""
        path = Path(path)
        try:
            st = path.stat()
            if not stat.S_ISREG(st.st_mode):  # a directory there: broken, not forbidden
                raise KeyFileError(f"key file {path} is not a regular file")
            raw = path.read_bytes()
        except FileNotFoundError:
            raise KeyFileError(f"key file {path} is missing") from None
        except PermissionError as e:
            raise KeyFileForbidden(f"key file {path} is unreadable: {e.strerror}") from None
        except OSError as e:
            raise KeyFileError(f"key file {path} is unreadable: {e.strerror}") from None
        if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(
                f"key file {path} has permissions {stat.S_IMODE(st.st_mode):04o}; "
                "it must be 0600 (chmod 600 it)"
            )
        try:
            return cls._parse(raw)
        except ValueError as e:
            raise KeyFileError(f"key file {path} is malformed: {e}") from None

    @classmethod
    def _parse(cls, raw: bytes) -> Identity:
        """A key file's bytes as an identity; a ValueError says in words what is wrong."""
        try:
            doc = json.loads(raw)
        except ValueError:  # not JSON, or not UTF-8
            raise ValueError("not JSON") from None
        if not isinstance(doc, dict) or (doc.get("type"), doc.get("v")) != (
            "ed25519",
            _KEY_FILE_VERSION,
        ):
            raise ValueError("not a bubblechain ed25519 key file")
        for field in ("name", "private"):
            if field not in doc:
                raise ValueError(f"it has no field {field!r}")
            if not isinstance(doc[field], str):
                raise ValueError(f"its field {field!r} is not text")
        try:
            seed = base64.b64decode(doc["private"], validate=True)
        except ValueError:  # binascii.Error, or text that is not ASCII
            raise ValueError("its private key is not base64") from None
        if len(seed) != 32:  # an Ed25519 seed
            raise ValueError(f"its private key is {len(seed)} bytes, not 32")
        return cls(doc["name"], nacl.signing.SigningKey(seed))  # a bad name: ValueError
