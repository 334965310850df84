"""The hash-linked, witnessed ledger: messages, blocks, checkpoints, stores and rules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .message import Message

if TYPE_CHECKING:
    from .ledger import Appended, Ledger

__all__ = ["Appended", "Ledger", "Message"]


def __getattr__(name: str) -> object:
    # Imported on first use: a worker process signs messages but never opens a ledger,
    # and the ledger's store, witnesses and verifier cost it ~40 ms to import.
    if name in ("Appended", "Ledger"):
        from . import ledger

        return getattr(ledger, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
