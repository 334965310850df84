"""The hash-linked, witnessed ledger: messages, blocks, checkpoints, stores and rules."""

from .ledger import Appended, Ledger
from .message import Message

__all__ = ["Appended", "Ledger", "Message"]
