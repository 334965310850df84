"""An in-process witness: its own key, its own SQLite replica, its own validation.

It shares nothing with the sequencer but the genesis: it re-checks every message
with the same rules, recomputes the log root from its own compact tree (so a
checkpoint it cosigns is consistent with everything it cosigned before), refuses
to cosign a different root at a size it has already cosigned (keeping the request
as evidence), persists the block, and only then returns its cosignature.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

from ..crypto.keys import Identity
from ..crypto.note import Checkpoint, NoteSignature, cosign, verify_note_signature
from ..errors import KeyFileError, Rejected, StoreError, WitnessRefusal
from ..ledger.block import Block, block_extension, header_hash, parse_header
from ..ledger.genesis import Genesis
from ..ledger.message import now_us
from ..ledger.store import BlockRow, Store
from .base import WitnessHead

REPLICA_FILE = "replica.db"
KEY_FILE = "witness.key"


def load_witness_key(directory: Path, genesis: Genesis | None = None) -> Identity:
    """The witness key in `directory`; with `genesis`, checked against the pinned one."""
    directory = Path(directory)
    if not directory.is_dir():
        raise StoreError(f"witness directory {directory} is missing")
    identity = Identity.load(directory / KEY_FILE)
    if genesis is not None:
        pinned = genesis.witness(directory.name)
        if pinned is None or (pinned.name, pinned.public_key) != (
            identity.name,
            identity.public_key,
        ):
            raise KeyFileError(
                f"key file {directory / KEY_FILE} is not the genesis key of witness "
                f"{directory.name}"
            )
    return identity


def reads_only(store: Path) -> bool:
    """Whether this process only reads the home whose ledger store is ``store``: it
    does not own that file (an auditor's account). The writer needs every embedded
    witness's key to append, so a key file it may not read is a witness that cosigns
    nothing: a finding, not something left unchecked."""
    try:
        return os.geteuid() != os.stat(store).st_uid
    except (AttributeError, OSError):  # no POSIX owners, or the store is unreadable
        return True


def open_witnesses(root: Path, genesis: Genesis) -> tuple[list[LocalWitness], dict[str, str]]:
    """Open every genesis witness under `root`: those usable, and why each other is not."""
    usable: list[LocalWitness] = []
    unusable: dict[str, str] = {}
    for w in genesis.witnesses:
        try:
            usable.append(LocalWitness.open(Path(root) / w.name, genesis))
        except (ValueError, OSError, sqlite3.DatabaseError) as e:  # UsageError is a ValueError
            unusable[w.name] = str(e)
    return usable, unusable


class UnusableWitness:
    """A genesis witness that could not be opened: it cosigns nothing, and says why."""

    def __init__(self, name: str, reason: str):
        self.name = name
        self.unusable = reason

    def head(self) -> WitnessHead:
        return WitnessHead(self.name, -1, 0, None, None)

    def add_block(self, block: Block) -> NoteSignature:
        raise WitnessRefusal(self.name, f"unusable: {self.unusable}")

    def close(self) -> None:
        pass


class LocalWitness:
    """A witness whose replica lives in a directory on this machine."""

    def __init__(self, directory: Path, identity: Identity, store: Store):
        self.directory = Path(directory)
        self.identity = identity
        self.name = identity.name
        self.store = store
        self.genesis = store.genesis
        self._lock = threading.Lock()
        self._state = store.load_state()
        self._tree = store.log_tree()  # checked against the head block, rebuilt if stale

    @classmethod
    def create(cls, directory: Path, identity: Identity, genesis) -> LocalWitness:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        identity.save(directory / KEY_FILE)
        store = Store.create(directory / REPLICA_FILE, genesis, "witness", identity.name)
        return cls(directory, identity, store)

    @classmethod
    def open(cls, directory: Path, genesis: Genesis | None = None) -> LocalWitness:
        """Open a witness; with `genesis`, also check its key and replica belong to it.

        Raises UsageError (StoreError, KeyFileError) saying why it cannot cosign.
        """
        directory = Path(directory)
        identity = load_witness_key(directory, genesis)
        store = Store.open(directory / REPLICA_FILE)
        try:
            if genesis is not None and store.genesis.hash != genesis.hash:
                raise StoreError(
                    f"replica {directory / REPLICA_FILE} belongs to a different genesis"
                )
            return cls(directory, identity, store)
        except sqlite3.DatabaseError as e:
            store.close()
            raise StoreError(f"replica {directory / REPLICA_FILE} is unreadable: {e}") from None
        except BaseException:
            store.close()
            raise

    def close(self) -> None:
        self.store.close()

    def head(self) -> WitnessHead:
        with self._lock:
            head = self.store.head()
            if head is None:
                return WitnessHead(self.name, -1, 0, None, None)
            line = self.store.cosignatures(head.height).get(self.name)
        size = parse_header(head.header)["size"]
        ts = NoteSignature.parse_line(line).timestamp if line else None
        return WitnessHead(self.name, head.height, size, head.hash, ts)

    def add_block(self, block: Block) -> NoteSignature:
        with self._lock:
            return self._add_block(block)

    def _refuse(self, reason: str, block: Block, *, evidence: bool = False) -> WitnessRefusal:
        if evidence:
            self.store.add_evidence(now_us(), reason, block.checkpoint.text())
        return WitnessRefusal(self.name, reason)

    def _add_block(self, block: Block) -> NoteSignature:
        g = self.genesis
        head = self.store.head()
        my_height = head.height if head is not None else -1
        if block.height <= my_height:
            return self._already_seen(block)
        if block.height != my_height + 1:
            raise self._refuse(f"block {block.height} does not follow my head {my_height}", block)
        try:
            hdr = parse_header(block.header)
            cp = Checkpoint.parse(block.checkpoint.body)
        except ValueError as e:
            raise self._refuse(f"block {block.height} is malformed: {e}", block) from None
        if header_hash(block.header) != block.hash or hdr["height"] != block.height:
            raise self._refuse(f"block {block.height}: header hash or height mismatch", block)
        expected_prev = head.hash.hex() if head is not None else "0" * 64
        if hdr["prev"] != expected_prev:
            raise self._refuse(f"block {block.height} does not link to my block {my_height}", block)
        if hdr["first"] != self._state.size or hdr["count"] != len(block.messages):
            raise self._refuse(
                f"block {block.height} covers entries {hdr['first']}+{hdr['count']}, "
                f"but I hold {self._state.size} entries and it carries {len(block.messages)}",
                block,
            )
        if (
            cp.origin != g.origin
            or cp.size != hdr["size"]
            or cp.root.hex() != hdr["root"]
            or cp.extensions != (block_extension(block.height, block.hash),)
        ):
            raise self._refuse(f"block {block.height}: checkpoint does not match header", block)
        if not any(
            verify_note_signature(cp.body(), s, g.sequencer) for s in block.checkpoint.signatures
        ):
            raise self._refuse(f"block {block.height}: no valid sequencer signature", block)
        st = self._state
        rows = []
        tree = self._tree.copy()
        try:
            for m in block.messages:
                idx = st.accept(m)
                leaf = m.leaf
                tree.append(leaf)
                rows.append((idx, m.id, m.kind, m.sender, leaf, m.payload, m.signature))
        except Rejected as e:
            self._state = self.store.load_state()
            raise self._refuse(f"message {st.size} in block {block.height}: {e}", block) from None
        if tree.root() != cp.root:
            self._state = self.store.load_state()
            raise self._refuse(
                f"block {block.height}: root {cp.root.hex()[:16]} is not consistent with the "
                f"log I cosigned (recomputed {tree.root().hex()[:16]})",
                block,
                evidence=True,
            )
        sig = cosign(cp.body(), self.identity, int(time.time()))
        row = BlockRow(block.height, block.hash, block.header, block.checkpoint.text())
        try:
            self.store.write_block(
                row, rows, st.take_delta(), tree.to_bytes(), cosignatures={self.name: sig.line()}
            )
        except BaseException:  # disk full, locked: nothing persisted, so forget it all
            self._state = self.store.load_state()
            raise
        st.forget_recent(st.size)
        self._tree = tree
        return sig

    def _already_seen(self, block: Block) -> NoteSignature:
        """Re-serve the cosignature for a block already cosigned; never sign a rival."""
        mine = self.store.block(block.height)
        if mine is not None and mine.hash == block.hash:
            line = self.store.cosignatures(block.height).get(self.name)
            if line is not None:
                return NoteSignature.parse_line(line)
        raise self._refuse(
            f"equivocation: block {block.height} differs from the one I cosigned",
            block,
            evidence=True,
        )
