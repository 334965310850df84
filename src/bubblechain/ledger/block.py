"""Block headers, checkpoints and the bundle a witness receives.

A header links to the previous header's hash and states the log size and root
after the block. The checkpoint (a C2SP `tlog-checkpoint`) carries one extension
line binding it to the header hash, so the sequencer's signature and every
witness cosignature also cover the chain of headers.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from ..crypto import canonical
from ..crypto.note import Checkpoint, SignedNote
from .message import Message

HEADER_VERSION = 1
ZERO_HASH = "0" * 64


def header_hash(header: bytes) -> bytes:
    return hashlib.sha256(b"bubblechain/block/v1\n" + header).digest()


def make_header(
    height: int, prev: bytes | None, first: int, count: int, root: bytes, time_us: int
) -> bytes:
    return canonical.dumps(
        {
            "v": HEADER_VERSION,
            "height": height,
            "prev": prev.hex() if prev is not None else ZERO_HASH,
            "first": first,
            "count": count,
            "size": first + count,
            "root": root.hex(),
            "time": time_us,
        }
    )


def parse_header(header: bytes) -> dict[str, Any]:
    """Decode a header, raising ValueError if it is not a well-formed canonical header."""
    h = canonical.loads(header)
    keys = {"v", "height", "prev", "first", "count", "size", "root", "time"}
    if not isinstance(h, dict) or set(h) != keys or h["v"] != HEADER_VERSION:
        raise ValueError("not a version-1 block header")
    for k in ("height", "first", "count", "size", "time"):
        if type(h[k]) is not int or h[k] < 0:
            raise ValueError(f"header field {k!r} is not a non-negative integer")
    if h["size"] != h["first"] + h["count"]:
        raise ValueError("header size is not first + count")
    return h


def block_extension(height: int, hash_: bytes) -> str:
    return f"block {height} {base64.b64encode(hash_).decode()}"


def checkpoint_for(origin: str, size: int, root: bytes, height: int, hash_: bytes) -> Checkpoint:
    return Checkpoint(origin, size, root, (block_extension(height, hash_),))


@dataclass(frozen=True)
class Block:
    """What the sequencer sends a witness: header, signed checkpoint, messages."""

    height: int
    header: bytes
    hash: bytes
    checkpoint: SignedNote  # body + the sequencer's signature
    messages: tuple[Message, ...]

    @property
    def first(self) -> int:
        return parse_header(self.header)["first"]
