"""Bubble machines: a process wrapped so that everything it sends is a signed message.

A `Signer` is one node's key and message sequence (one per process). A `Bubble`
is one running process instance (the coordinator, a map task attempt): its code
hash, its last and current state hashes, and the signer it sends with. Each
message it sends moves it from its current state to a new one, so its states
form a chain the ledger checks.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

from .. import __version__
from ..crypto.keys import Identity
from ..ledger.message import Message


def code_hash(*modules: ModuleType) -> str:
    """SHA-256 over the package version and the source of the modules a bubble runs."""
    h = hashlib.sha256(f"bubblechain {__version__}\n".encode())
    for m in sorted(modules, key=lambda m: m.__name__):
        src = inspect.getsource(m).encode()
        h.update(f"{m.__name__}\n{len(src)}\n".encode())
        h.update(src)
    return h.hexdigest()


class Signer:
    """A node key and its sequence counter; messages are numbered in signing order."""

    def __init__(self, identity: Identity, next_seq: int = 1):
        self.identity = identity
        self.next_seq = next_seq
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.identity.name

    def sign(self, kind: str, body: Mapping[str, Any], **fields: Any) -> Message:
        with self._lock:
            msg = Message.create(self.identity, kind, body, seq=self.next_seq, **fields)
            self.next_seq += 1
            return msg


class Bubble:
    """One process instance whose sends are signed and chain its state hashes."""

    def __init__(
        self,
        signer: Signer,
        bubble_id: str,
        code: str,
        *,
        job: str | None = None,
        state: str | None = None,
    ):
        self.signer = signer
        self.id = bubble_id
        self.code = code
        self.job = job
        self.state = state  # the current state hash; None before the first message

    def send(
        self,
        kind: str,
        body: Mapping[str, Any],
        *,
        state: str | None = None,
        inputs: Iterable[str] = (),
        outputs: Iterable[str] = (),
        last: str | None = None,
    ) -> Message:
        """Sign a message from this bubble; it moves from its current state to `state`.

        `last` overrides the recorded last state for a bubble's first message
        (a map task's last state is the parameter hash it computed on).
        """
        new_state = self.state if state is None else state
        msg = self.signer.sign(
            kind,
            body,
            bubble=self.id,
            last=self.state if last is None else last,
            state=new_state,
            inputs=list(inputs),
            outputs=list(outputs),
            code=self.code,
            job=self.job,
        )
        self.state = new_state
        return msg
