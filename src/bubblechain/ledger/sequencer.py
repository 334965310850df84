"""The sequencer: validates, orders and batches messages, and drives the witnesses.

Appends are validated and given their log index at once. Blocks are cut by count
or by age, committed durably, then sent to every witness on its own thread (the
Ed25519 checks release the GIL, so witnesses validate in parallel). A block is
final once `quorum` valid cosignatures are stored. Blocks in flight are bounded,
so a slow witness quorum slows appends instead of growing memory.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..crypto.keys import Identity
from ..crypto.note import NoteSignature, SignedNote, sign_note, verify_cosignature
from ..errors import BubblechainError, NotFinal, WitnessRefusal
from ..interrupts import deferred, raise_pending
from ..witness.base import Witness
from .block import Block, checkpoint_for, header_hash, make_header, parse_header
from .message import Message, now_us
from .store import BlockRow, Store

_NOTHING = object()


@dataclass
class WitnessLink:
    """The sequencer's view of one witness: how far it got, and whether it refused."""

    witness: Witness
    next_height: int = 0
    refusal: str | None = None
    error: str | None = None
    reader: Store | None = None  # opened on the witness's thread when it must catch up


class Sequencer:
    def __init__(
        self,
        store: Store,
        reader: Store,
        identity: Identity,
        witnesses: Sequence[Witness],
        *,
        block_size: int = 1000,
        block_delay: float = 0.25,
        max_inflight: int = 8,
        before_commit: Callable[[Block], None] | None = None,
    ):
        self.store = store
        self.reader = reader  # a second connection for lookups from appending threads
        self.identity = identity
        self.genesis = store.genesis
        self.block_size = block_size
        self.block_delay = block_delay
        self.max_inflight = max_inflight
        self.before_commit = before_commit  # e.g. sync the artifacts the block names
        self.state = store.load_state()
        self.state._known_in_store = reader.known
        self.state._bubble_in_store = reader.bubble
        self.tree = store.log_tree()  # checked against the head block, rebuilt if stale
        head = store.head()
        self.height = head.height if head else -1
        self.head_hash = head.hash if head else None
        self.committed_height = self.height
        self.committed_size = self.state.size

        self._lock = threading.RLock()  # appends, sealing
        self._progress = threading.Condition()  # commits, cosignatures, finality
        self._pending: list[tuple[Message, bytes]] = []
        self._pending_since = 0.0
        self._inflight: dict[int, Block] = {}
        self._cosigs: dict[int, dict[str, str]] = {}
        self._fatal: BaseException | None = None
        self._closing = False
        self._wake_sealer = threading.Event()
        self.final_height = self._load_final_height()
        # Cosignatures stored for blocks not yet final still count after a restart.
        for h, w, line in store.con.execute(
            "SELECT height, witness, line FROM cosignatures WHERE height > ?", (self.final_height,)
        ):
            self._cosigs.setdefault(h, {})[w] = line

        self.links = []
        for w in witnesses:
            unusable = getattr(w, "unusable", None)  # could not be opened: counts as refusing
            if unusable is not None:
                self.links.append(WitnessLink(w, refusal=f"unusable: {unusable}"))
            else:
                try:
                    self.links.append(self._link(w))
                except Exception as e:  # its replica cannot even say its head
                    reason = f"unusable: {type(e).__name__}: {e}"
                    self.links.append(WitnessLink(w, refusal=reason))
        self._raise_if_unreachable()  # at once: appending would only wait forever
        self._writer_q: queue.Queue = queue.Queue()
        self._threads = [
            threading.Thread(target=self._writer, name="bc-writer", daemon=True),
            threading.Thread(target=self._sealer, name="bc-sealer", daemon=True),
        ]
        self._threads += [
            threading.Thread(
                target=self._witness_loop, args=(link,), name=f"bc-{link.witness.name}", daemon=True
            )
            for link in self.links
            if link.refusal is None
        ]
        for t in self._threads:
            t.start()

    def _load_final_height(self) -> int:
        return self.store.final_height(self.genesis.quorum)

    def _link(self, w: Witness) -> WitnessLink:
        """Resume a witness after its head, or at a block whose cosignature we lack.

        A witness whose head is beyond this ledger's cosigned blocks this ledger no
        longer has (it was restored from an older copy, or rolled back): it can
        never cosign what comes next, and says so now rather than at the next append.
        """
        head = w.head().height
        if head > self.height:
            return WitnessLink(
                w,
                refusal=f"it holds block {head}, beyond this ledger's head {self.height}: "
                "the ledger lost blocks the witnesses cosigned (restored from an older "
                "copy?); `bubblechain verify` names them",
            )
        missing = self.store.con.execute(
            "SELECT MIN(height) FROM blocks WHERE height NOT IN "
            "(SELECT height FROM cosignatures WHERE witness=?)",
            (w.name,),
        ).fetchone()[0]
        return WitnessLink(w, next_height=head + 1 if missing is None else min(head + 1, missing))

    # -- appending ----------------------------------------------------------------
    def submit(self, message: Message, *, verify_sig: bool = True) -> int:
        """Validate `message` and give it the next log index, or raise `Rejected`."""
        with self._lock:
            self._raise_if_failed()
            with deferred():  # the state, the tree and the pending list move together
                index = self.state.accept(message, verify_sig=verify_sig)
                leaf = message.leaf
                self.tree.append(leaf)
                if not self._pending:
                    self._pending_since = time.monotonic()
                self._pending.append((message, leaf))
            if len(self._pending) >= self.block_size:
                self._seal()
            return index

    def next_seq(self, sender: str) -> int:
        with self._lock:
            return self.state.seqs.get(sender, 0) + 1

    def _seal(self) -> None:
        """Cut a block from the pending messages (caller holds the lock)."""
        if not self._pending:
            return
        with self._progress:
            while self.height - self.final_height >= self.max_inflight and self._fatal is None:
                self._raise_if_unreachable()
                if self._closing:
                    raise NotFinal("the ledger is closing")
                raise_pending()  # nothing of this block is cut yet
                self._progress.wait(0.5)
        self._raise_if_failed()
        with deferred():  # waiting above may be interrupted; cutting the block may not
            self._cut()

    def _cut(self) -> None:
        pending, self._pending = self._pending, []
        height = self.height + 1
        first = self.state.size - len(pending)
        root = self.tree.root()
        header = make_header(height, self.head_hash, first, len(pending), root, now_us())
        hh = header_hash(header)
        body = checkpoint_for(self.genesis.origin, first + len(pending), root, height, hh).body()
        note = SignedNote(body, (sign_note(body, self.identity),))
        block = Block(height, header, hh, note, tuple(m for m, _ in pending))
        rows = [
            (first + i, m.id, m.kind, m.sender, leaf, m.payload, m.signature)
            for i, (m, leaf) in enumerate(pending)
        ]
        self.height, self.head_hash = height, hh
        with self._progress:
            self._inflight[height] = block
        self._writer_q.put((block, rows, self.state.take_delta(), self.tree.to_bytes()))
        self.state.forget_recent(self.committed_size)

    def seal(self) -> int:
        """Cut a block now if anything is pending; return the latest block height."""
        with self._lock:
            self._seal()
            return self.height

    def _sealer(self) -> None:
        while not self._closing:
            self._wake_sealer.wait(self.block_delay / 2)  # close sets it: no wait at exit
            if self._pending and time.monotonic() - self._pending_since >= self.block_delay:
                with self._lock:
                    if self._pending and not self._closing:
                        with contextlib.suppress(BubblechainError):
                            self._seal()

    # -- durability and witnesses -----------------------------------------------------
    def _writer(self) -> None:
        """The only thread that writes the sequencer's store, in queue order."""
        held: Any = _NOTHING  # an item taken from the queue while batching cosignatures
        while True:
            item, held = (self._writer_q.get() if held is _NOTHING else held), _NOTHING
            if item is None:  # close: everything before it is done
                return
            try:
                if isinstance(item[0], Block):
                    block, rows, delta, tree = item
                    if self.before_commit is not None:
                        self.before_commit(block)
                    row = BlockRow(block.height, block.hash, block.header, block.checkpoint.text())
                    self.store.write_block(row, rows, delta, tree)
                    with self._progress:
                        self.committed_height = block.height
                        self.committed_size = rows[-1][0] + 1
                        self._progress.notify_all()
                    continue
                batch = [item]  # cosignatures: write all that are waiting in one commit
                while True:
                    try:
                        nxt = self._writer_q.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None or isinstance(nxt[0], Block):
                        held = nxt
                        break
                    batch.append(nxt)
                self._store_cosignatures(batch)
            except BaseException as e:  # disk full, I/O error: stop and report
                with self._progress:
                    self._fatal = e
                    self._progress.notify_all()
                return

    def _store_cosignatures(self, items: list) -> None:
        self.store.add_cosignatures([(h, w, sig.line()) for h, w, sig in items])
        with self._progress:
            for h, w, sig in items:
                self._cosigs.setdefault(h, {})[w] = sig.line()
            while len(self._cosigs.get(self.final_height + 1, ())) >= self.genesis.quorum:
                self.final_height += 1
            for h in [h for h in self._inflight if h <= self.final_height]:
                passed = all(link.next_height > h or link.refusal for link in self.links)
                if passed or len(self._inflight) > 2 * self.max_inflight:
                    self._cosigs.pop(h, None)
                    self._inflight.pop(h, None)
            self._progress.notify_all()

    def _block(self, link: WitnessLink, height: int) -> Block:
        with self._progress:
            block = self._inflight.get(height)
        if block is not None:
            return block
        if link.reader is None:
            link.reader = Store.open(self.store.path, readonly=True)
        return load_block(link.reader, height)

    def _witness_loop(self, link: WitnessLink) -> None:
        w = link.witness
        backoff = 0.05
        while True:
            with self._progress:
                while link.next_height > self.committed_height and not self._closing:
                    self._progress.wait(0.5)
                if (self._closing and link.next_height > self.committed_height) or self._fatal:
                    break
            height = link.next_height
            try:
                block = self._block(link, height)
                sig = w.add_block(block)
                pinned = self.genesis.witness(w.name)
                if pinned is None or not verify_cosignature(block.checkpoint.body, sig, pinned):
                    raise WitnessRefusal(w.name, f"returned an invalid cosignature for {height}")
            except WitnessRefusal as e:
                with self._progress:
                    link.refusal = e.reason
                    self._progress.notify_all()
                break
            except Exception as e:  # unreachable witness, I/O: retry with backoff
                link.error = f"{type(e).__name__}: {e}"
                if self._closing:
                    break
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.05
            link.error = None
            with self._progress:
                link.next_height = height + 1
            self._writer_q.put((height, w.name, sig))
        if link.reader is not None:
            link.reader.close()

    # -- finality ---------------------------------------------------------------------
    def wait_final(self, height: int, timeout: float | None = None) -> None:
        """Block until every block up to `height` is final, or say why it cannot be."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._progress:
            while self.final_height < height:
                self._raise_if_failed()
                self._raise_if_unreachable()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise NotFinal(
                        f"timed out waiting for block {height} to be final "
                        f"(final height {self.final_height})"
                    )
                self._progress.wait(0.5 if left is None else min(left, 0.5))

    def flush(self, timeout: float | None = None) -> int:
        height = self.seal()
        self.wait_final(height, timeout)
        return height

    def _raise_if_unreachable(self) -> None:
        """Raise when too many witnesses refused for the next block ever to be final."""
        refused = [link for link in self.links if link.refusal]
        q, n = self.genesis.quorum, len(self.links)
        if n - len(refused) < q:
            reasons = "; ".join(f"{link.witness.name}: {link.refusal}" for link in refused)
            raise NotFinal(
                f"block {self.final_height + 1} cannot reach quorum {q} of {n}: {reasons}"
            )

    def _raise_if_failed(self) -> None:
        if self._fatal is not None:
            raise NotFinal(f"the ledger writer stopped: {self._fatal}") from self._fatal

    def close(self) -> None:
        """Stop cutting blocks, let witnesses finish what is committed, then stop writing."""
        self._closing = True
        self._wake_sealer.set()
        with self._progress:
            self._progress.notify_all()
        writer, *others = self._threads
        for t in others:
            t.join(timeout=30)
        self._writer_q.put(None)
        writer.join(timeout=30)


def load_block(store: Store, height: int) -> Block:
    """Rebuild the bundle for a committed block, to resend it to a witness."""
    row = store.block(height)
    if row is None:
        raise KeyError(f"block {height} is not in {store.path}")
    hdr = parse_header(row.header)  # its rows by their index: no scan of the whole log
    rows = store.messages(start=hdr["first"], stop=hdr["first"] + hdr["count"])
    msgs = [Message.from_parts(r.payload, r.sig) for r in rows if r.block == height]
    note = SignedNote.parse(row.checkpoint)
    return Block(row.height, row.header, row.hash, note, tuple(msgs))


__all__ = ["NoteSignature", "Sequencer", "load_block"]
