"""The witness interface the sequencer talks to, local or (later) over HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..crypto.note import NoteSignature
from ..ledger.block import Block


@dataclass(frozen=True)
class WitnessHead:
    """The latest block a witness has validated, persisted and cosigned."""

    name: str
    height: int  # -1 before the genesis block
    size: int
    hash: bytes | None
    cosigned_at: int | None  # cosignature timestamp, POSIX seconds


class Witness(Protocol):
    name: str

    def head(self) -> WitnessHead:
        """What this witness has cosigned so far."""
        ...

    def add_block(self, block: Block) -> NoteSignature:
        """Validate, persist, then cosign `block`; raise WitnessRefusal if it must not."""
        ...

    def close(self) -> None: ...
