"""The ledger's acceptance rules and the state they need.

The sequencer (before ordering), each witness (before cosigning) and the offline
verifier (replaying from genesis) all run `LedgerState.accept`, so a message is
judged the same way wherever it is checked.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from ..crypto.keys import verify_signature
from ..errors import Rejected
from .genesis import Genesis
from .kinds import KINDS
from .message import Message

KNOWN_CACHE = 1 << 16
"""Committed hashes a state keeps in memory (about 6 MB) besides what its store holds."""

BUBBLE_CACHE = 1 << 16
"""Committed bubble states a store-backed state keeps in memory (about 20 MB).

Every map task attempt is a bubble, so a ledger gains about a hundred per job:
loading them all made opening a year-old ledger take seconds and gigabytes.
"""

BubbleRecord = tuple[str | None, str]
"""A bubble's latest state hash and the node that sends from it."""

_LOOK_UP = object()


@dataclass(frozen=True)
class JobInfo:
    """An opened job: whether it is still open, and who coordinates it from which bubble."""

    open: bool
    sender: str
    bubble: str | None


@dataclass
class Delta:
    """State changed since the last persist, to write in the block's transaction."""

    nodes: dict[str, tuple[bytes, str, int]] = field(default_factory=dict)
    seqs: dict[str, int] = field(default_factory=dict)
    bubbles: dict[str, tuple[str | None, str, int]] = field(default_factory=dict)
    jobs: dict[str, tuple[JobInfo, int]] = field(default_factory=dict)
    artifacts: dict[bytes, int] = field(default_factory=dict)


class LedgerState:
    """Registered keys, sender sequences, bubble states, open jobs and known hashes.

    `known_in_store` answers "is this hash already committed?" from a store, so
    the full set of ids never has to sit in memory; hashes accepted since the
    last persist are held in `recent`, and the latest committed ones (what new
    messages name as inputs) in a bounded cache, so most checks touch no store.
    Bubbles are kept the same way when `bubble_in_store` reads them from a store;
    without one (a replay from genesis) every bubble stays in memory.
    """

    def __init__(
        self,
        genesis: Genesis,
        known_in_store: Callable[[bytes], bool] | None = None,
        bubble_in_store: Callable[[str], BubbleRecord | None] | None = None,
    ):
        self.genesis = genesis
        self.size = 0
        self.nodes: dict[str, tuple[bytes, str]] = {}
        self.seqs: dict[str, int] = {}
        self.jobs: dict[str, JobInfo] = {}
        self.recent: dict[bytes, int] = {}  # id or artifact hash -> log index
        self._committed: dict[bytes, None] = {}  # committed hashes, oldest first
        self._known_in_store = known_in_store
        # bubble -> (state, owner, log index) since the last persist; then a bounded cache
        self._bubbles: dict[str, tuple[str | None, str, int]] = {}
        self._bubbles_committed: dict[str, BubbleRecord] = {}
        self._bubble_in_store = bubble_in_store
        self.delta = Delta()
        self.nodes[genesis.admin.name] = (genesis.admin.public_key, "admin")

    # -- queries --------------------------------------------------------------
    def known(self, h: bytes) -> bool:
        if h in self.recent or h in self._committed:
            return True
        if self._known_in_store is not None and self._known_in_store(h):
            self._remember(h)
            return True
        return False

    def _remember(self, h: bytes) -> None:
        """Cache a committed hash: the ledger is append-only, so it stays known."""
        self._committed[h] = None
        if len(self._committed) > KNOWN_CACHE:
            del self._committed[next(iter(self._committed))]

    def bubble(self, bubble: str) -> BubbleRecord | None:
        """The bubble's latest state and owner, or None if it never sent a message."""
        rec = self._bubbles.get(bubble)
        if rec is not None:
            return rec[0], rec[1]
        found = self._bubbles_committed.get(bubble)
        if found is None and self._bubble_in_store is not None:
            found = self._bubble_in_store(bubble)
            if found is not None:
                self._cache_bubble(bubble, found)
        return found

    def copy(self) -> LedgerState:
        """An independent state equal to this one: what each goes on to accept changes
        only itself (every value it holds is immutable; the mappings are copied)."""
        other = copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, dict):
                setattr(other, name, dict(value))
        other.delta = Delta(**{k: dict(v) for k, v in vars(self.delta).items()})
        return other

    def bubble_table(self) -> dict[str, BubbleRecord]:
        """Every bubble's state and owner; complete only for a state without a store."""
        return {**self._bubbles_committed, **{b: (s, o) for b, (s, o, _) in self._bubbles.items()}}

    def _cache_bubble(self, bubble: str, rec: BubbleRecord) -> None:
        self._bubbles_committed.pop(bubble, None)  # re-insert: newest last
        self._bubbles_committed[bubble] = rec
        if len(self._bubbles_committed) > BUBBLE_CACHE:
            del self._bubbles_committed[next(iter(self._bubbles_committed))]

    # -- the rules ------------------------------------------------------------
    def check(self, m: Message, *, verify_sig: bool = True) -> BubbleRecord | None:
        """Raise `Rejected` naming the rule `m` breaks at the next log index.

        Returns the sending bubble's record (None if new) for `apply`, so that a
        store is not asked twice.
        """
        f = m.fields
        kind, sender = f["kind"], f["sender"]
        if self.size == 0:
            self._check_genesis(m)
            return None
        if kind == "genesis":
            raise Rejected("a genesis message is only allowed at index 0")
        rule = KINDS.get(kind)
        if rule is None:
            raise Rejected(f"unknown message kind {kind!r}")
        node = self.nodes.get(sender)
        if node is None:
            raise Rejected(f"sender {sender!r} is not registered")
        if verify_sig and not verify_signature(node[0], m.signed_bytes, m.signature):
            raise Rejected(f"signature does not verify under the key registered to {sender!r}")
        expected = self.seqs.get(sender, 0) + 1
        if f["seq"] != expected:
            if f["seq"] < expected and self.known(m.id):
                raise Rejected(f"duplicate: message {m.id.hex()[:16]} is already on the ledger")
            raise Rejected(
                f"sequence {f['seq']} from {sender!r} out of order (expected {expected})"
            )
        if rule.admin_only and sender != self.genesis.admin.name:
            raise Rejected(f"{kind} must be signed by the admin, not {sender!r}")
        if rule.roles is not None and node[1] not in rule.roles:
            raise Rejected(
                f"{kind} needs a node with role {' or '.join(sorted(rule.roles))}; "
                f"{sender!r} is registered as {node[1]!r}"
            )
        job = f["job"]
        bubble = f["bubble"]
        rec = None
        if rule.opens_job:
            if job is None or job in self.jobs:
                raise Rejected(f"{kind} must open a new job; job {job!r} already exists")
        elif rule.needs_job or rule.closes_job or job is not None:
            info = self.jobs.get(job)
            if info is None or not info.open:
                raise Rejected(f"{kind} names job {job!r}, which is not open")
            if rule.coordinator_only and (sender, bubble) != (info.sender, info.bubble):
                raise Rejected(
                    f"{kind} for job {job!r} must come from its coordinator "
                    f"{info.sender!r} in bubble {info.bubble!r}"
                )
            if rule.on_coordinator_state:
                coordinator = self.bubble(info.bubble) if info.bubble else None
                current = coordinator[0] if coordinator else None
                if f["last"] != current:
                    raise Rejected(
                        f"{kind} was computed on state {f['last']}, not on job {job!r}'s "
                        f"current parameters {current}"
                    )
        if bubble is not None:
            if f["state"] is None:
                raise Rejected(f"message from bubble {bubble!r} has no state hash")
            rec = self.bubble(bubble)
            if rec is not None and rec[1] != sender:
                raise Rejected(f"bubble {bubble!r} belongs to {rec[1]!r}, not {sender!r}")
            if rec is not None and f["last"] != rec[0]:
                raise Rejected(
                    f"state discontinuity in bubble {bubble!r}: last_state {f['last']} "
                    f"is not its recorded state {rec[0]}"
                )
            if (
                rec is not None
                and not rule.moves_state
                and f["state"] != rec[0]
                and any(j.bubble == bubble for j in self.jobs.values())
            ):
                raise Rejected(
                    f"{kind} may not change the state of coordinator bubble {bubble!r}; "
                    "only state.update does"
                )
        for h in f["inputs"]:
            if not self.known(bytes.fromhex(h)):
                raise Rejected(f"input {h} is neither a message nor an artifact on the ledger")
        if rule.check_body is not None:
            rule.check_body(f["body"])
        return rec

    def _check_genesis(self, m: Message) -> None:
        g = self.genesis
        if m.kind != "genesis" or m.sender != g.admin.name or m.seq != 1:
            raise Rejected("index 0 must be the genesis message, sent by the admin with seq 1")
        if m.body != g.doc():
            raise Rejected("genesis message body differs from the pinned genesis")
        if not verify_signature(g.admin.public_key, m.signed_bytes, m.signature):
            raise Rejected("genesis message is not signed by the pinned admin key")

    def apply(self, m: Message, bubble: BubbleRecord | object | None = _LOOK_UP) -> int:
        """Record an accepted message; return its log index.

        ``bubble``: the sending bubble's record if the caller has it (from `check`).
        """
        index = self.size
        f = m.fields
        d = self.delta
        sender = f["sender"]
        self.seqs[sender] = d.seqs[sender] = f["seq"]
        self.recent[m.id] = index
        for h in f["outputs"]:
            hb = bytes.fromhex(h)
            # No store lookup: an artifact already committed keeps its first index
            # (the store ignores a second insert of the same hash).
            if hb not in self.recent and hb not in self._committed:
                self.recent[hb] = index
                d.artifacts[hb] = index
        if f["bubble"] is not None:
            rec = self.bubble(f["bubble"]) if bubble is _LOOK_UP else bubble
            owner = rec[1] if rec is not None else sender
            self._bubbles[f["bubble"]] = d.bubbles[f["bubble"]] = (f["state"], owner, index)
        rule = KINDS.get(f["kind"])
        if rule is not None and f["job"] is not None and (rule.opens_job or rule.closes_job):
            job = f["job"]
            opened = self.jobs.get(job)  # None: closing a job never opened (verify goes on)
            info = (
                JobInfo(True, sender, f["bubble"])
                if rule.opens_job or opened is None
                else JobInfo(False, opened.sender, opened.bubble)
            )
            if rule.closes_job:
                info = JobInfo(False, info.sender, info.bubble)
            self.jobs[job] = info
            d.jobs[job] = (info, index)
        if f["kind"] == "node.register":
            b = f["body"]
            self._register(b["name"], base64.b64decode(b["key"]), b["role"], index)
        self.size = index + 1
        return index

    def accept(self, m: Message, *, verify_sig: bool = True) -> int:
        return self.apply(m, self.check(m, verify_sig=verify_sig))

    def _register(self, name: str, key: bytes, role: str, index: int) -> None:
        self.nodes[name] = (key, role)
        self.delta.nodes[name] = (key, role, index)

    def take_delta(self) -> Delta:
        d, self.delta = self.delta, Delta()
        return d

    def forget_recent(self, upto_index: int) -> None:
        """Move hashes and bubbles a store now holds (written before `upto_index`) to the
        bounded caches."""
        if self._known_in_store is not None:
            keep = {}
            for h, i in self.recent.items():
                if i >= upto_index:
                    keep[h] = i
                else:
                    self._remember(h)
            self.recent = keep
        if self._bubble_in_store is not None:
            pending = {}
            for b, (state, owner, i) in self._bubbles.items():
                if i >= upto_index:
                    pending[b] = (state, owner, i)
                else:
                    self._cache_bubble(b, (state, owner))
            self._bubbles = pending
