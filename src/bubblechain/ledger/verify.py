"""Offline verification of a home: every store replayed from the pinned genesis.

Each copy (the sequencer's and every witness replica) is checked on its own:
hashes, header links, message encodings and signatures, the acceptance rules,
log roots, checkpoint signatures, cosignatures and quorum, and the derived state
tables. Then the copies are compared block by block, which is what catches an
insider who rewrote the sequencer's copy and re-signed it with the sequencer key:
the witnesses' replicas and cosignatures disagree with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .. import merkle
from ..artifacts import ArtifactCorrupt, ArtifactMissing, ArtifactStore
from ..crypto import canonical
from ..crypto.note import (
    Checkpoint,
    NoteSignature,
    SignedNote,
    verify_cosignature,
    verify_note_signature,
)
from ..errors import KeyFileForbidden, Rejected, StoreError, UsageError
from ..home import Home, resolve_home
from ..witness.local import REPLICA_FILE, load_witness_key, reads_only
from .block import ZERO_HASH, block_extension, header_hash, parse_header
from .genesis import Genesis, read_genesis
from .lock import is_appending
from .message import SIG_LEN, Message
from .rules import JobInfo, LedgerState
from .store import BlockRow, Store, blob_col, text_col

LEDGER = "ledger"
_MAX_DIFFS = 20


@dataclass(frozen=True)
class Finding:
    """One thing that does not hold: what kind, where (block, message, witness), detail."""

    kind: str
    where: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.where}: {self.detail}"


@dataclass
class CopyView:
    """What one copy of the ledger holds, as recomputed while checking it."""

    label: str
    blocks: dict[int, bytes] = field(default_factory=dict)  # height -> recomputed header hash
    contents: dict[int, bytes] = field(default_factory=dict)  # height -> digest of stored rows
    ranges: dict[int, tuple[int, int]] = field(default_factory=dict)  # height -> (first, count)
    valid_cosigners: dict[int, set[str]] = field(default_factory=dict)
    size: int = 0
    # The last block with a quorum of valid cosignatures, and the blocks after it
    # without; for a replica, counting the cosignatures every copy holds of that block.
    final_height: int = -1
    pending: list[int] = field(default_factory=list)


@dataclass
class Report:
    findings: list[Finding]
    copies: dict[str, CopyView]
    # What this reader may not read (a witness's private key, for an auditor with read
    # access only): left unchecked, and said so, rather than reported as broken.
    unchecked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "findings": [f.to_dict() for f in self.findings],
            "copies": {
                label: {
                    "height": max(v.blocks, default=-1),
                    "size": v.size,
                    "final_height": v.final_height,
                    "pending": v.pending,
                }
                for label, v in self.copies.items()
            },
            "unchecked": self.unchecked,
        }


def _where(label: str, what: str) -> str:
    return what if label == LEDGER else f"witness {label}, {what}"


def _lenient_sender_seq(payload: bytes) -> tuple[str, int] | None:
    try:
        f = json.loads(payload)
        return str(f["sender"]), int(f["seq"])
    except Exception:
        return None


class CheckedSignatures:
    """Signatures a copy checked, so that the next copies, which normally hold the same
    bytes, do not check each one again: a key is a digest of the entry (signature and
    payload) and the public key, so it stands for that very check, nothing less."""

    def __init__(self) -> None:
        self._new: bytearray | None = bytearray()
        self._sorted = np.empty(0, "S16")

    @staticmethod
    def key(leaf: bytes, public_key: bytes) -> bytes:
        # 120 bits, and a last byte that is never 0 (numpy strips trailing zeros).
        return hashlib.sha256(leaf + public_key).digest()[:15] + b"\x01"

    @property
    def sealed(self) -> bool:
        return self._new is None

    def __contains__(self, key: bytes) -> bool:
        i = int(np.searchsorted(self._sorted, key))
        return i < len(self._sorted) and self._sorted[i] == key

    def add(self, key: bytes) -> None:
        if self._new is not None:
            self._new += key

    def seal(self) -> None:
        """Make what was added count for lookups, and add no more: the first copy checked
        (the ledger's) holds every signature the others normally share, and each key
        costs 16 bytes to keep (160 MB for 10 million messages)."""
        if self._new is not None:
            added = np.frombuffer(self._new, "S16")
            self._sorted = np.sort(
                np.concatenate([self._sorted, added]) if len(self._sorted) else added
            )
            self._new = None


def check_copy(
    store: Store, genesis: Genesis, label: str, checked: CheckedSignatures | None = None
) -> tuple[list[Finding], CopyView]:
    """Replay one store from genesis and report everything that does not hold.

    ``checked``: signatures already checked in another copy, skipped here; those
    this copy checks are added to it.
    """
    run = _CopyRun(store, genesis, label)
    while run.request is not None:
        run.send(_replay_block(run.state, run.tree, run.request, checked))
    return run.out, run.view


_Request = tuple[int, int, int, list[tuple]]
"""A block to replay: its height, first log index, count and stored message rows."""

_Replayed = tuple[bytes, list[tuple[str, str, str]]]
"""A replay's digest of the rows and its findings (kind, what, detail), unplaced."""


class _CopyRun:
    """One copy's check, paused at each block it replays (`request`) until `send` gives
    the replay's outcome: the replay can then be one shared by copies whose replays so
    far and whose next block's rows are the same, which give the same outcome."""

    def __init__(
        self, store: Store, genesis: Genesis, label: str, notes: _NoteChecks | None = None
    ) -> None:
        self.label = label
        self.notes = notes or _NoteChecks()
        self.out: list[Finding] = []
        self.view = CopyView(label)
        # everything in memory: trust nothing the store derived
        self.state = LedgerState(genesis)
        self.tree = merkle.CompactTree()
        self._steps = _check_steps(self, store, genesis)
        self.request: _Request | None = None
        self._advance(None)

    def _advance(self, value: _Replayed | None) -> None:
        try:
            self.request = self._steps.send(value)
        except StopIteration:
            self.request = None

    def send(self, replayed: _Replayed) -> None:
        self._advance(replayed)

    def fork(self, other: _CopyRun) -> None:
        """Go on from ``other``'s state and log, as replaying the same blocks gave them."""
        self.state, self.tree = other.state.copy(), other.tree.copy()


def _check_steps(run: _CopyRun, store: Store, genesis: Genesis) -> Generator[_Request, Any, None]:
    label, view = run.label, run.view
    out = run.out

    def find(kind: str, what: str, detail: str) -> None:
        out.append(Finding(kind, _where(label, what), detail))

    for problem in store.integrity_problems():
        find("store", str(store.path), f"SQLite integrity check: {problem}")
    try:
        if store.genesis.hash != genesis.hash:
            find("store", str(store.path), "holds a different genesis than the pinned one")
            return
    except StoreError as e:
        find("store", str(store.path), str(e))
        return

    all_cosigs: dict[int, dict[str, str]] = {}
    for hh, name, line in store.con.execute(
        f"SELECT height, witness, {text_col('line')} FROM cosignatures"
    ):
        all_cosigs.setdefault(hh, {})[name] = line
    # run.state and run.tree: read anew after each replay, which a fork may replace
    prev: bytes | None = None
    expected_height = 0
    replay_ok = True
    quorum = genesis.quorum
    non_final: list[int] = []
    head: tuple[int, dict | None] = (-1, None)  # the last block and its header, if well-formed
    for row in store.blocks():
        h = row.height
        if h != expected_height:
            missing = (
                f"{expected_height}" if h == expected_height + 1 else f"{expected_height}-{h - 1}"
            )
            find(
                "block",
                f"block {missing}",
                f"missing: heights jump from {expected_height - 1} to {h}",
            )
        expected_height = h + 1
        computed = header_hash(row.header)
        view.blocks[h] = computed
        if computed != row.hash:
            find("block", f"block {h}", "stored block hash does not match its header")
        try:
            hdr = parse_header(row.header)
        except ValueError as e:
            find("block", f"block {h}", f"header is malformed: {e}")
            head = (h, None)
            replay_ok = False
            prev = computed
            continue
        view.ranges[h] = (hdr["first"], hdr["count"])
        head = (h, hdr)
        if hdr["height"] != h:
            find("block", f"block {h}", f"header says height {hdr['height']}")
        want_prev = prev.hex() if prev is not None else ZERO_HASH
        if hdr["prev"] != want_prev:
            find(
                "block",
                f"block {h}",
                f"does not link to block {h - 1}: prev {hdr['prev'][:16]}"
                f"… but block {h - 1} hashes to {want_prev[:16]}…",
            )
        prev = computed
        if replay_ok and hdr["first"] != run.tree.size:
            find(
                "block",
                f"block {h}",
                f"starts at entry {hdr['first']} but the log before it has {run.tree.size} entries",
            )
            replay_ok = False
        if replay_ok:
            first, count = hdr["first"], hdr["count"]
            rows = store.message_rows(first, first + count)
            digest, found = yield (h, first, count, rows)
            view.contents[h] = digest
            for kind, what, detail in found:
                find(kind, what, detail)
            if run.tree.root().hex() != hdr["root"]:
                find(
                    "root",
                    f"block {h}",
                    "header root does not match the log recomputed from "
                    f"the stored messages ({run.tree.root().hex()[:16]}…)",
                )
        cosigners = _check_checkpoint(
            row,
            hdr,
            genesis,
            all_cosigs.get(h, {}),
            computed,
            find,
            run.tree if replay_ok else None,
            run.notes,
        )
        view.valid_cosigners[h] = cosigners
        if label != LEDGER:
            if label not in cosigners:
                find("cosignature", f"block {h}", "the witness's own cosignature is missing")
        elif len(cosigners) >= quorum:
            if non_final:
                for nh in non_final:
                    find(
                        "quorum",
                        f"block {nh}",
                        f"has {len(view.valid_cosigners[nh])} valid "
                        f"cosignatures of the {quorum} required, yet block {h} after it is final",
                    )
                non_final = []
            view.final_height = h
        else:
            non_final.append(h)
    view.pending = non_final
    _check_cached_tree(store, head, find)
    view.size = run.tree.size if replay_ok else 0
    for _time, reason, _checkpoint in store.evidence():
        find("evidence", str(store.path), f"witness kept evidence of equivocation: {reason}")
    if replay_ok:
        extra = store.con.execute(
            "SELECT idx FROM messages WHERE idx>=? ORDER BY idx LIMIT 5", (run.tree.size,)
        ).fetchall()
        if extra:
            idx = ", ".join(str(r[0]) for r in extra)
            find("message", f"message {idx}", "stored but not covered by any block")
        _check_derived(store, run.state, find)


def check_copies(
    stores: dict[str, Store], genesis: Genesis
) -> dict[str, tuple[list[Finding], CopyView]]:
    """`check_copy` of every store, the ledger's (``stores[LEDGER]``) first; the same
    findings, but a block a replica holds as the ledger does, after the same blocks,
    is replayed once for both.

    The replicas' checks go on in step with the ledger's, sharing its state and log,
    until one's next block to replay differs; that one goes on from a copy of them,
    after the ledger's check, with the signatures it checked.
    """
    checked = CheckedSignatures()
    notes = _NoteChecks()
    runs = {label: _CopyRun(store, genesis, label, notes) for label, store in stores.items()}
    led = runs.get(LEDGER)
    following = [r for r in runs.values() if r is not led]
    parted: list[_CopyRun] = []
    while led is not None:
        for r in list(following):
            if r.request is None:  # done, with the state of the blocks it replayed
                following.remove(r)
            elif r.request != led.request:
                r.fork(led)
                following.remove(r)
                parted.append(r)
        if led.request is None:
            break
        replayed = _replay_block(led.state, led.tree, led.request, checked)
        led.send(replayed)
        for r in following:
            r.state, r.tree = led.state, led.tree
            r.send(replayed)
    checked.seal()  # the ledger's signatures, for the replicas
    for r in parted if led is not None else following:
        while r.request is not None:
            r.send(_replay_block(r.state, r.tree, r.request, checked))
    return {label: (r.out, r.view) for label, r in runs.items()}


def _replay_block(
    state: LedgerState,
    tree: merkle.CompactTree,
    request: _Request,
    checked: CheckedSignatures | None,
) -> _Replayed:
    """Check a block's messages in order; return a digest of its stored rows and the
    findings, placed as in the ledger's copy."""
    h, first, count, rows = request
    found: list[tuple[str, str, str]] = []

    def find(kind: str, what: str, detail: str) -> None:
        found.append((kind, what, detail))

    digest = hashlib.sha256()
    for r in rows:
        digest.update(r[0].to_bytes(8, "big") + r[7] + len(r[6]).to_bytes(4, "big"))
        digest.update(r[6])
    if len(rows) != count:
        got = {r[0] for r in rows}
        for idx in range(first, first + count):
            if idx not in got:
                find("message", f"message {idx} (block {h})", "missing from the store")
    for idx, mid, block, kind, sender, stored_leaf, payload, sig in rows:
        where = f"message {idx} (block {h})"
        if block != h:
            find("message", where, f"stored as part of block {block}")
        try:
            m, leaf, key, known = _parse(payload, sig, state, checked)
        except Rejected as e:
            find("message", where, f"malformed: {e}")
            ss = _lenient_sender_seq(payload)
            if ss is not None and ss[0] in state.nodes:
                state.seqs[ss[0]] = ss[1]
            tree.append(merkle.leaf_hash(sig + payload))
            state.size += 1
            continue
        if m.id != mid:
            find("message", where, "stored id does not match the payload's hash")
        f = m.fields
        if (f["kind"], f["sender"]) != (kind, sender):
            find("message", where, "stored kind/sender columns differ from the signed payload")
        if leaf != stored_leaf:
            find("message", where, "stored leaf hash does not match the entry")
        try:
            state.check(m, verify_sig=not known)
        except Rejected as e:
            find("message", where, str(e))
        else:
            if key is not None and not known:
                checked.add(key)
        try:
            state.apply(m)  # judge later messages on their own, not as a cascade of this one
        except (KeyError, TypeError, ValueError):  # a body the check refused: not applicable
            state.size += 1
        tree.append(leaf)
    # rows missing from the block still occupy log positions in the signed roots
    for _ in range(count - len(rows)):
        tree.append(b"\0" * 32)
        state.size += 1
    return digest.digest(), found


def _parse(
    payload: bytes, sig: bytes, state: LedgerState, checked: CheckedSignatures | None
) -> tuple[Message, bytes, bytes | None, bool]:
    """A stored entry as a Message, with its leaf, its key in ``checked`` (None if its
    sender is unknown) and whether another copy checked it already.

    An entry that another copy parsed and checked, signature and all, under the same
    sender key is only decoded: `Message.from_parts` is a function of its bytes, so
    its canonical-form and structure checks would pass again. Raises Rejected for an
    entry that does not parse.

    The leaf hashes signature and payload joined, so it fixes their bytes only with
    the signature's length: a 63-byte signature whose last byte (a space, say) starts
    the payload has the very leaf of the entry checked, so only a signature of the
    checked length may take the shortcut.
    """
    leaf = merkle.leaf_hash(sig + payload)
    if checked is not None and checked.sealed and len(sig) == SIG_LEN:
        try:
            fields = canonical.decode(payload)
            node = state.nodes.get(fields["sender"])
        except (ValueError, TypeError, KeyError, RecursionError):  # from_parts says why
            node = None
        if node is not None:
            key = checked.key(leaf, node[0])
            if key in checked:
                m = Message(payload, sig, fields, hashlib.sha256(payload).digest())
                return m, leaf, key, True
    m = Message.from_parts(payload, sig)
    node = state.nodes.get(m.sender) if checked is not None else None
    key = checked.key(leaf, node[0]) if node is not None else None
    return m, leaf, key, key is not None and checked.sealed and key in checked


class _NoteChecks:
    """Outcomes of recent checkpoint signature checks: the copies hold the same checkpoint
    and cosignatures of a block, checked one copy after the other."""

    _KEEP = 1024

    def __init__(self) -> None:
        self._seen: dict[tuple, bool] = {}

    def check(self, verify: Any, body: bytes, sig: NoteSignature, signer: Any) -> bool:
        key = (verify, body, sig.name, sig.key_id, sig.signature, signer.name, signer.public_key)
        ok = self._seen.get(key)
        if ok is None:
            if len(self._seen) >= self._KEEP:
                self._seen.clear()
            ok = self._seen[key] = verify(body, sig, signer)
        return ok


def _check_checkpoint(
    row: BlockRow, hdr, genesis: Genesis, cosigs, computed, find, tree, memo: _NoteChecks
):
    h = row.height
    try:
        note = SignedNote.parse(row.checkpoint)
        cp = Checkpoint.parse(note.body)
    except ValueError as e:
        find("checkpoint", f"block {h}", f"checkpoint is malformed: {e}")
        return set()
    if cp.origin != genesis.origin:
        find(
            "checkpoint", f"block {h}", f"checkpoint origin {cp.origin!r} is not the genesis origin"
        )
    if cp.size != hdr["size"] or cp.root.hex() != hdr["root"]:
        find("checkpoint", f"block {h}", "checkpoint size/root differ from the block header")
    if tree is not None and (cp.size != tree.size or cp.root != tree.root()):
        find("checkpoint", f"block {h}", "checkpoint root does not match the recomputed log")
    if cp.extensions != (block_extension(h, computed),):
        find("checkpoint", f"block {h}", "checkpoint does not commit to this block's header")
    if not any(
        memo.check(verify_note_signature, note.body, s, genesis.sequencer) for s in note.signatures
    ):
        find("signature", f"block {h}", "checkpoint is not signed by the genesis sequencer key")
    valid: set[str] = set()
    for name, line in sorted(cosigs.items()):
        w = genesis.witness(name)
        if w is None:
            find("cosignature", f"block {h}", f"cosignature by {name!r}, not a genesis witness")
            continue
        try:
            sig = NoteSignature.parse_line(line)
        except ValueError as e:
            find("cosignature", f"block {h}", f"cosignature by {name} is malformed: {e}")
            continue
        if memo.check(verify_cosignature, note.body, sig, w):
            valid.add(name)
        else:
            find(
                "cosignature",
                f"block {h}",
                f"cosignature by {name} does not verify over this checkpoint",
            )
    return valid


def _check_cached_tree(store: Store, head: tuple[int, dict | None], find) -> None:
    """The cached compact tree (meta 'tree') must be the log as the head block states it.

    The next block extends it: a missing or stale one would make a root that no
    witness cosigns (the node rebuilds it from its stored leaves when it opens).
    """
    height, hdr = head
    if height >= 0 and hdr is None:
        return  # the head's header is malformed: already a finding
    size, root = (hdr["size"], hdr["root"]) if hdr else (0, merkle.EMPTY_ROOT.hex())
    what = "cached log tree"
    raw = store.meta("tree")
    if raw is None:
        if height >= 0:
            find("state", what, f"missing (meta 'tree'); head block {height} states {size} entries")
        return
    try:
        tree = merkle.CompactTree.from_bytes(raw)
    except ValueError as e:
        find("state", what, f"malformed (meta 'tree'): {e}")
        return
    if tree.size != size or tree.root().hex() != root:
        find(
            "state",
            what,
            f"has {tree.size} entries and root {tree.root().hex()[:16]}…, but head block "
            f"{height} states {size} entries and root {root[:16]}…",
        )


def _check_derived(store: Store, state: LedgerState, find) -> None:
    """The store's cached validation state must equal the replayed one."""
    c = store.con
    seqs = dict(c.execute("SELECT name, seq FROM senders").fetchall())
    for name in sorted(set(seqs) | set(state.seqs)):
        if seqs.get(name) != state.seqs.get(name):
            find(
                "state",
                f"sender {name}",
                f"stored sequence {seqs.get(name)} but the messages give {state.seqs.get(name)}",
            )
    stored = {b: (st, owner) for b, st, owner in c.execute("SELECT id, state, owner FROM bubbles")}
    chains = state.bubble_table()
    for b in sorted(set(stored) | set(chains)):
        (st, owner), (st2, owner2) = stored.get(b, (None, None)), chains.get(b, (None, None))
        if owner != owner2:
            find("state", f"bubble {b}", f"stored owner {owner} but its messages are from {owner2}")
        if st != st2:
            find("state", f"bubble {b}", f"stored state {st} but its state chain ends at {st2}")
    nodes = {n: (k, r) for n, k, r in c.execute(f"SELECT name, {blob_col('key')}, role FROM nodes")}
    for n in sorted(set(nodes) | set(state.nodes)):
        stored, replayed = nodes.get(n), state.nodes.get(n)
        if (stored or (None,))[0] != (replayed or (None,))[0]:
            find("state", f"node {n}", "stored key differs from the registrations on the ledger")
        elif stored and replayed and stored[1] != replayed[1]:
            find(
                "state",
                f"node {n}",
                f"stored role {stored[1]!r} but its registration gives {replayed[1]!r}",
            )
    jobs = {
        j: JobInfo(bool(o), s, b)
        for j, o, s, b in c.execute("SELECT id, open, sender, bubble FROM jobs")
    }
    if jobs != state.jobs:
        find("state", "jobs", "stored job states differ from the job messages")
    # Every output a message names, at its first index (replaying, nothing was persisted).
    named = state.delta.artifacts
    arts = dict(c.execute(f"SELECT {blob_col('hash')}, idx FROM artifacts").fetchall())
    for h in sorted(set(arts) ^ set(named)) + sorted(h for h in arts if h in named):
        if h not in named:
            find("state", f"artifact {h.hex()}", "stored as declared, but no message names it")
        elif h not in arts:
            find("state", f"artifact {h.hex()}", f"named by message {named[h]}, but not stored")
        elif arts[h] != named[h]:
            find(
                "state",
                f"artifact {h.hex()}",
                f"stored as first named by message {arts[h]}, but that is message {named[h]}",
            )


def _compare(
    led: Store, lv: CopyView, rep: Store, rv: CopyView, out: list[Finding], settling: bool
) -> None:
    """Compare the sequencer's copy with one witness replica, block by block.

    ``settling``: a process appends now, so the ledger's later snapshot may hold the
    witness's cosignature of a block its replica stored after its own snapshot.
    """
    w = rv.label
    head = max(rv.blocks, default=-1)
    for h in sorted(set(lv.blocks) | set(rv.blocks)):
        if h not in lv.blocks:
            detail = f"missing from the ledger; witness {w} holds it"
            out.append(Finding("replica", f"block {h}", detail))
            continue
        if h not in rv.blocks:
            if w in lv.valid_cosigners.get(h, ()) and not (settling and h > head):
                detail = "cosigned by the witness but missing from its replica"
                out.append(Finding("replica", f"witness {w}, block {h}", detail))
            continue
        if lv.blocks[h] == rv.blocks[h]:
            if lv.contents.get(h) != rv.contents.get(h):
                _compare_messages(led, rep, h, lv, rv, out)
            continue
        detail = (
            f"differs from witness {w}'s replica "
            f"(header {lv.blocks[h].hex()[:16]}… vs {rv.blocks[h].hex()[:16]}…)"
        )
        out.append(Finding("replica", f"block {h}", detail))
        _compare_messages(led, rep, h, lv, rv, out)


def _compare_messages(led, rep, h, lv, rv, out) -> None:
    ranges = [r for r in (lv.ranges.get(h), rv.ranges.get(h)) if r]
    if not ranges:
        return
    start = min(f for f, _ in ranges)
    stop = max(f + c for f, c in ranges)
    mine = {r.idx: (r.payload, r.sig) for r in led.messages(start=start, stop=stop)}
    theirs = {r.idx: (r.payload, r.sig) for r in rep.messages(start=start, stop=stop)}
    diffs = [i for i in range(start, stop) if mine.get(i) != theirs.get(i)]
    flagged = {f.where for f in out if f.kind == "message"}  # each copy's own checks
    for i in diffs[:_MAX_DIFFS]:
        where = f"message {i} (block {h})"
        theirs_bad = _where(rv.label, where) in flagged
        if i not in mine:
            detail = f"missing from the ledger; witness {rv.label} holds it"
        elif theirs_bad and where not in flagged and i in theirs:  # the witness's is wrong
            detail = "differs from the ledger's copy, which verifies"
            where = _where(rv.label, where)
        elif where in flagged and not theirs_bad and i in theirs:
            detail = f"differs from witness {rv.label}'s copy, which verifies"
        else:
            detail = f"differs from witness {rv.label}'s copy"
        out.append(Finding("replica", where, detail))
    if len(diffs) > _MAX_DIFFS:
        detail = f"{len(diffs) - _MAX_DIFFS} more messages differ from witness {rv.label}'s copy"
        out.append(Finding("replica", f"block {h}", detail))


def _replica_finality(copies: dict[str, CopyView], label: str, quorum: int) -> None:
    """A witness replica's final height and pending blocks, as the ledger's copy has them.

    A block is final at ``quorum`` valid cosignatures. A replica stores only its
    own witness's cosignature, so the others are counted from every copy holding
    the very same block (same header hash): the ledger's, which collects them,
    and the other replicas. Its final height is its last such block; pending,
    the blocks after it.
    """
    view = copies[label]
    final, pending = -1, []
    for h in sorted(view.blocks):
        signers: set[str] = set()
        for other in copies.values():
            if other.blocks.get(h) == view.blocks[h]:
                signers |= other.valid_cosigners.get(h, set())
        if len(signers) >= quorum:
            final, pending = h, []
        else:
            pending.append(h)
    view.final_height, view.pending = final, pending


def _check_data_artifacts(store: Store, home: Home, out: list[Finding]) -> None:
    """Every artifact a `data.commit` names must be in the store and hash to its name.

    That is the commitment's partition index and the leaves artifact of each
    partition it lists; each distinct artifact is read and hashed once.
    """
    from .ledger import artifacts_location  # the Ledger API imports this module

    artifacts = ArtifactStore(artifacts_location(home))
    checked: dict[str, str | None] = {}  # digest -> what is wrong with it, None if sound

    def read(digest: str) -> bytes | None:
        """The artifact's bytes if sound; else None, with why in `checked`."""
        try:
            data = artifacts.get(digest)  # reads and hashes it
        except ArtifactMissing:
            checked[digest] = "is missing from the artifact store"
        except ArtifactCorrupt:
            checked[digest] = "does not match its hash"
        except (OSError, UsageError) as e:
            checked[digest] = f"cannot be read: {e}"
        else:
            checked[digest] = None
            return data
        return None

    def problem(digest: str) -> str | None:
        if digest not in checked:
            read(digest)
        return checked[digest]

    for r in store.messages(kind="data.commit"):
        try:
            m = Message.from_parts(r.payload, r.sig)
        except Rejected:
            continue  # already a finding of the copy's check
        body = m.body
        where = f"message {r.idx} (data.commit {body.get('name')} v{body.get('version')})"
        index = body.get("partitions")
        if not isinstance(index, str) or not _is_digest(index):
            out.append(Finding("artifact", where, "names no partition index address"))
            continue
        raw = read(index) if checked.get(index) is None else None  # unread, or sound
        if raw is None:
            out.append(Finding("artifact", where, f"partition index {index} {checked[index]}"))
            continue
        try:
            leaves = _index_leaves(raw)
        except ValueError as e:
            out.append(Finding("artifact", where, f"partition index {index} is malformed: {e}"))
            continue
        for i, digest in enumerate(leaves):
            wrong = problem(digest)
            if wrong is not None:
                detail = f"leaves of partition {i} ({digest}) {wrong}"
                out.append(Finding("artifact", where, detail))


def _index_leaves(raw: bytes) -> list[str]:
    """The leaves address of each partition in a partition index; a ValueError says in
    words what is wrong with it."""
    try:
        doc = json.loads(raw)
    except ValueError:  # not JSON, or not UTF-8
        raise ValueError("not JSON") from None
    parts = doc.get("partitions") if isinstance(doc, dict) else None
    if not isinstance(parts, list):
        raise ValueError("it has no list of partitions")
    leaves = []
    for i, p in enumerate(parts):
        address = p.get("leaves") if isinstance(p, dict) else None
        if not (isinstance(address, str) and _is_digest(address)):
            raise ValueError(f"partition {i} has no leaves address (a SHA-256 hex digest)")
        leaves.append(address)
    return leaves


def _is_digest(s: str) -> bool:
    return len(s) == 64 and all(c in "0123456789abcdef" for c in s)


def verify_home(home: Any = None, genesis: Genesis | None = None) -> Report:
    """Check everything in a home against its genesis (or a pinned one).

    Raises UsageError only when input is unreadable.
    """
    h = Home(resolve_home(home))
    genesis = genesis or read_genesis(h)
    findings: list[Finding] = []
    unchecked: list[str] = []
    copies: dict[str, CopyView] = {}
    led = Store.open(h.store, readonly=True)
    replicas: dict[str, Store] = {}
    reader = reads_only(h.store)  # not the writer, which must read every witness key
    try:
        for w in genesis.witnesses:
            path = h.witness(w.name) / REPLICA_FILE
            try:
                load_witness_key(h.witness(w.name), genesis)
            except (ValueError, OSError) as e:  # it can cosign nothing more
                if isinstance(e, KeyFileForbidden) and reader:
                    unchecked.append(f"witness {w.name}'s key: {e} (read access only?)")
                else:
                    findings.append(Finding("witness", f"witness {w.name}", f"unusable: {e}"))
                    if not path.parent.is_dir():
                        continue
            try:
                replicas[w.name] = Store.open(path, readonly=True)
            except StoreError as e:
                detail = f"unusable: {e} (`bubblechain witness rebuild {w.name}` rebuilds it)"
                findings.append(Finding("replica", f"witness {w.name}", detail))
        # Each copy read as one snapshot, the witnesses' before the ledger's: a block
        # reaches the ledger before any witness, so no replica is ahead of it in the
        # middle of an append, as it would be if the ledger were read first.
        settling = is_appending(h.lock, unknown=False)
        for store in [*replicas.values(), led]:
            with contextlib.suppress(sqlite3.DatabaseError):  # its check reports it
                store.freeze()
        settling = settling or is_appending(h.lock, unknown=False)
        for label, (f, view) in check_copies({LEDGER: led, **replicas}, genesis).items():
            findings += f
            copies[label] = view
        for name, rep in replicas.items():
            _compare(led, copies[LEDGER], rep, copies[name], findings, settling)
            _replica_finality(copies, name, genesis.quorum)
        _check_data_artifacts(led, h, findings)
    finally:
        led.close()
        for s in replicas.values():
            s.close()
    return Report(findings, copies, unchecked)
