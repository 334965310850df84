"""SQLite storage of one node's copy of the ledger (the sequencer's or a witness's).

WAL mode with synchronous=FULL: a committed block survives power loss, and a
block, its messages, the derived validation state and the compact tree are one
transaction, so a crash leaves the previous block or the new one, never half.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import merkle
from ..errors import StoreError
from .block import parse_header
from .genesis import Genesis
from .rules import Delta, JobInfo, LedgerState

STORE_FORMAT = "bubblechain-store/1"

_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE blocks(
    height INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    header BLOB NOT NULL,
    checkpoint TEXT NOT NULL
);
CREATE TABLE messages(
    idx INTEGER PRIMARY KEY,
    id BLOB NOT NULL,
    block INTEGER NOT NULL,
    kind TEXT NOT NULL,
    sender TEXT NOT NULL,
    leaf BLOB NOT NULL,
    payload BLOB NOT NULL,
    sig BLOB NOT NULL
);
CREATE INDEX messages_id ON messages(id);
CREATE INDEX messages_kind ON messages(kind, idx);
CREATE TABLE cosignatures(
    height INTEGER NOT NULL,
    witness TEXT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY(height, witness)
);
CREATE TABLE nodes(name TEXT PRIMARY KEY, key BLOB NOT NULL, role TEXT NOT NULL, idx INTEGER);
CREATE TABLE senders(name TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE bubbles(id TEXT PRIMARY KEY, state TEXT, owner TEXT NOT NULL, idx INTEGER NOT NULL);
CREATE TABLE jobs(
    id TEXT PRIMARY KEY,
    open INTEGER NOT NULL,
    sender TEXT NOT NULL,
    bubble TEXT,
    idx INTEGER NOT NULL
);
CREATE TABLE artifacts(hash BLOB PRIMARY KEY, idx INTEGER NOT NULL);
CREATE TABLE evidence(
    seq INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    reason TEXT NOT NULL,
    checkpoint TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class BlockRow:
    height: int
    hash: bytes
    header: bytes
    checkpoint: str


@dataclass(frozen=True)
class MessageRow:
    idx: int
    id: bytes
    block: int
    kind: str
    sender: str
    leaf: bytes
    payload: bytes
    sig: bytes


def blob_col(col: str) -> str:
    """Select a BLOB column as bytes whatever storage class an edit left in it.

    The sqlite3 CLI's replace() or a hand-written UPDATE stores TEXT (or a number)
    in a BLOB column; CAST gives its bytes (TEXT as its UTF-8, even if invalid) and
    is free for a BLOB, so verification sees the edited bytes, never a crash.
    """
    return f"CAST(IFNULL({col}, x'') AS BLOB)"


def text_col(col: str) -> str:
    """Select a TEXT column as str when an edit stored it as a BLOB or a number."""
    return f"CAST(IFNULL({col}, '') AS TEXT)"


_BLOCK_COLS = f"height, {blob_col('hash')}, {blob_col('header')}, {text_col('checkpoint')}"
_MESSAGE_COLS = (
    f"idx, {blob_col('id')}, block, {text_col('kind')}, {text_col('sender')}, "
    f"{blob_col('leaf')}, {blob_col('payload')}, {blob_col('sig')}"
)


def _connect(path: Path, *, readonly: bool, immutable: bool = False) -> sqlite3.Connection:
    if readonly:
        flags = "mode=ro&immutable=1" if immutable else "mode=ro"
        con = sqlite3.connect(f"file:{path}?{flags}", uri=True, check_same_thread=False)
    else:
        con = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
    con.execute("PRAGMA busy_timeout=10000")
    return con


class Store:
    """One node's SQLite copy of the ledger."""

    def __init__(self, path: Path, con: sqlite3.Connection, readonly: bool):
        self.path = path
        self.con = con
        self.readonly = readonly

    # -- opening ------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, genesis: Genesis, role: str, node: str) -> Store:
        path = Path(path)
        if path.exists():
            raise StoreError(f"store {path} already exists")
        con = _connect(path, readonly=False)
        con.executescript(_SCHEMA)
        with con:
            con.execute("BEGIN")
            con.executemany(
                "INSERT INTO meta(key, value) VALUES(?, ?)",
                [
                    ("format", STORE_FORMAT.encode()),
                    ("genesis", genesis.to_bytes()),
                    ("role", role.encode()),
                    ("node", node.encode()),
                ],
            )
            a = genesis.admin
            con.execute(
                "INSERT INTO nodes(name, key, role, idx) VALUES(?, ?, 'admin', -1)",
                (a.name, a.public_key),
            )
        return cls(path, con, readonly=False)

    @classmethod
    def open(cls, path: Path, *, readonly: bool = False) -> Store:
        """Open an existing store, turning SQLite's failures into one clear line."""
        path = Path(path)
        if not path.is_file():
            raise StoreError(f"ledger store {path} does not exist")
        sidecars = [path.with_name(path.name + s) for s in ("-wal", "-shm")]
        existed = [p.exists() for p in sidecars]
        con = None
        try:
            con = _connect(path, readonly=readonly)
            query = f"SELECT {blob_col('value')} FROM meta WHERE key='format'"
            try:
                fmt = con.execute(query).fetchone()
            except sqlite3.OperationalError:
                # A home this user may read but not write (an auditor's account, a
                # read-only mount): SQLite cannot make the WAL's shared-memory file. With
                # no WAL left beside the file, every committed block is in the file
                # itself and it can be read as immutable.
                wal = sidecars[0]
                if (
                    not readonly
                    or (wal.exists() and wal.stat().st_size)
                    or os.access(path.parent, os.W_OK)
                ):
                    raise
                con.close()
                con = _connect(path, readonly=True, immutable=True)
                fmt = con.execute(query).fetchone()
            if fmt is None or fmt[0] != STORE_FORMAT.encode():
                raise StoreError(f"{path} is not a {STORE_FORMAT} store")
        except (sqlite3.DatabaseError, StoreError) as e:
            if con is not None:
                con.close()
            for p, was in zip(sidecars, existed, strict=True):
                if not was:  # SQLite made it while failing: leave the disk as we found it
                    p.unlink(missing_ok=True)
            if isinstance(e, StoreError):
                raise
            raise StoreError(f"ledger store {path} is unreadable or corrupt: {e}") from None
        return cls(path, con, readonly)

    def close(self) -> None:
        self.con.close()

    def freeze(self) -> None:
        """Read one snapshot from now until `close`, whatever a writer commits meanwhile.

        A read-only copy being checked while another process appends would
        otherwise show its blocks from one moment and its messages from a later
        one (SQLite starts a snapshot per statement outside a transaction), and
        every check across the two would be a false finding.
        """
        if not self.readonly:
            raise ValueError("only a read-only store can be frozen")
        self.con.execute("BEGIN")
        self.con.execute("SELECT COUNT(*) FROM meta").fetchone()  # the snapshot starts here

    def integrity_problems(self) -> list[str]:
        """SQLite's own page-level check; empty when the file is structurally sound."""
        try:
            rows = self.con.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as e:
            return [str(e)]
        return [] if rows == [("ok",)] else [r[0] for r in rows]

    # -- meta ---------------------------------------------------------------
    def meta(self, key: str) -> bytes | None:
        row = self.con.execute(
            f"SELECT {blob_col('value')} FROM meta WHERE key=?", (key,)
        ).fetchone()
        return None if row is None else row[0]

    @property
    def genesis(self) -> Genesis:
        raw = self.meta("genesis")
        if raw is None:
            raise StoreError(f"store {self.path} has no genesis")
        try:
            return Genesis.from_bytes(raw)
        except ValueError as e:
            raise StoreError(f"store {self.path} holds an unreadable genesis: {e}") from None

    # -- reads ----------------------------------------------------------------
    def head(self) -> BlockRow | None:
        row = self.con.execute(
            f"SELECT {_BLOCK_COLS} FROM blocks ORDER BY height DESC LIMIT 1"
        ).fetchone()
        return None if row is None else BlockRow(*row)

    def block(self, height: int) -> BlockRow | None:
        if not -(2**63) <= height < 2**63:  # beyond SQLite's integers: no such block
            return None
        row = self.con.execute(
            f"SELECT {_BLOCK_COLS} FROM blocks WHERE height=?", (height,)
        ).fetchone()
        return None if row is None else BlockRow(*row)

    def blocks(self) -> Iterator[BlockRow]:
        for row in self.con.execute(f"SELECT {_BLOCK_COLS} FROM blocks ORDER BY height"):
            yield BlockRow(*row)

    def messages(
        self,
        *,
        block: int | None = None,
        kind: str | None = None,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[MessageRow]:
        sql = f"SELECT {_MESSAGE_COLS} FROM messages WHERE idx>=?"
        args: list[object] = [start]
        if stop is not None:
            sql += " AND idx<?"
            args.append(stop)
        if block is not None:
            sql += " AND block=?"
            args.append(block)
        if kind is not None:
            sql += " AND kind=?"
            args.append(kind)
        for r in self.con.execute(sql + " ORDER BY idx", args):
            yield MessageRow(*r)

    def message_rows(self, start: int, stop: int) -> list[tuple]:
        """The `MessageRow` fields of messages start..stop-1 as plain tuples, in order:
        for reading many without building an object for each."""
        sql = f"SELECT {_MESSAGE_COLS} FROM messages WHERE idx>=? AND idx<? ORDER BY idx"
        return self.con.execute(sql, (start, stop)).fetchall()

    def message_by_id(self, mid: bytes) -> MessageRow | None:
        r = self.con.execute(f"SELECT {_MESSAGE_COLS} FROM messages WHERE id=?", (mid,)).fetchone()
        return None if r is None else MessageRow(*r)

    def leaves(self, stop: int | None = None) -> list[bytes]:
        sql = f"SELECT {blob_col('leaf')} FROM messages"
        args: tuple[int, ...] = ()
        if stop is not None:
            sql += " WHERE idx<?"
            args = (stop,)
        return [r[0] for r in self.con.execute(sql + " ORDER BY idx", args)]

    def size(self) -> int:
        row = self.con.execute("SELECT MAX(idx) FROM messages").fetchone()
        return 0 if row[0] is None else row[0] + 1

    def final_height(self, quorum: int) -> int:
        """The last height up to which every block has `quorum` stored cosignatures."""
        counts = dict(
            self.con.execute("SELECT height, COUNT(*) FROM cosignatures GROUP BY height").fetchall()
        )
        h = -1
        while counts.get(h + 1, 0) >= quorum:
            h += 1
        return h

    def cosignatures(self, height: int) -> dict[str, str]:
        rows = self.con.execute(
            f"SELECT witness, {text_col('line')} FROM cosignatures WHERE height=? ORDER BY witness",
            (height,),
        )
        return dict(rows.fetchall())

    def known(self, h: bytes) -> bool:
        """Whether `h` is a committed message id or declared artifact."""
        c = self.con
        return (
            c.execute("SELECT 1 FROM messages WHERE id=?", (h,)).fetchone() is not None
            or c.execute("SELECT 1 FROM artifacts WHERE hash=?", (h,)).fetchone() is not None
        )

    def bubble(self, bubble: str) -> tuple[str | None, str] | None:
        """A committed bubble's (latest state, owner), or None if it never sent a message."""
        return self.con.execute("SELECT state, owner FROM bubbles WHERE id=?", (bubble,)).fetchone()

    def evidence(self) -> list[tuple[int, str, str]]:
        return self.con.execute(
            "SELECT time, reason, checkpoint FROM evidence ORDER BY seq"
        ).fetchall()

    def head_log(self) -> tuple[int, int, bytes]:
        """(height, log size, log root) the head block states; (-1, 0, empty root) if none."""
        head = self.head()
        if head is None:
            return -1, 0, merkle.EMPTY_ROOT
        try:
            hdr = parse_header(head.header)
            return head.height, hdr["size"], bytes.fromhex(hdr["root"])
        except (ValueError, TypeError) as e:
            raise StoreError(
                f"ledger store {self.path}: block {head.height}'s header is malformed ({e}); "
                "run `bubblechain verify`"
            ) from None

    def log_tree(self) -> merkle.CompactTree:
        """The compact tree of the stored log, as the head block states it.

        The cached tree (meta 'tree') is used when its size and root are the head
        block's; otherwise (missing, malformed, stale) it is rebuilt from the stored
        leaves, and saved again if the store is writable. If the stored log does not
        give the head's size and root either, raise StoreError: extending it would
        make a block no witness can cosign.
        """
        height, size, root = self.head_log()
        stored = self.size()
        if stored != size:
            raise StoreError(
                f"ledger store {self.path} holds {stored} log entries but its head block "
                f"{height} states {size}; run `bubblechain verify`"
            )
        raw = self.meta("tree")
        if raw is not None:
            try:
                tree = merkle.CompactTree.from_bytes(raw)
            except ValueError:
                tree = None
            if tree is not None and tree.size == size and tree.root() == root:
                return tree
        tree = merkle.CompactTree()
        try:
            tree.extend(self.leaves())
        except ValueError:  # a leaf that is not a hash: the stored log is damaged
            tree = merkle.CompactTree()
        if tree.size != size or tree.root() != root:
            raise StoreError(
                f"ledger store {self.path}: its stored messages do not give the log root of "
                f"head block {height}, and its cached log tree is "
                f"{'missing' if raw is None else 'stale'}; run `bubblechain verify`"
            )
        if not self.readonly:
            with self.con:
                self.con.execute("BEGIN IMMEDIATE")
                self.con.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES('tree', ?)", (tree.to_bytes(),)
                )
        return tree

    # -- validation state -------------------------------------------------------
    def load_state(self) -> LedgerState:
        """The rules' state as of the last committed block, without replaying the log."""
        st = LedgerState(self.genesis, self.known, self.bubble)
        c = self.con
        for name, key, role in c.execute(f"SELECT name, {blob_col('key')}, role FROM nodes"):
            st.nodes[name] = (key, role)
        st.seqs = dict(c.execute("SELECT name, seq FROM senders").fetchall())
        st.jobs = {
            j: JobInfo(bool(o), s, b)
            for j, o, s, b in c.execute("SELECT id, open, sender, bubble FROM jobs")
        }
        st.size = self.size()
        st.delta = Delta()
        return st

    # -- writes -----------------------------------------------------------------
    def write_block(
        self,
        block: BlockRow,
        rows: list[tuple[int, bytes, str, str, bytes, bytes, bytes]],
        delta: Delta,
        tree: bytes,
        cosignatures: dict[str, str] | None = None,
    ) -> None:
        """Commit a block, its messages and the state they change, atomically."""
        c = self.con
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute(
                "INSERT INTO blocks(height, hash, header, checkpoint) VALUES(?,?,?,?)",
                (block.height, block.hash, block.header, block.checkpoint),
            )
            c.executemany(
                "INSERT INTO messages(idx, id, block, kind, sender, leaf, payload, sig)"
                f" VALUES(?,?,{block.height},?,?,?,?,?)",
                rows,
            )
            _write_delta(c, delta)
            c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('tree', ?)", (tree,))
            if cosignatures:
                c.executemany(
                    "INSERT OR REPLACE INTO cosignatures(height, witness, line) VALUES(?,?,?)",
                    [(block.height, w, line) for w, line in cosignatures.items()],
                )
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def add_cosignatures(self, items: list[tuple[int, str, str]]) -> None:
        c = self.con
        c.execute("BEGIN IMMEDIATE")
        try:
            c.executemany(
                "INSERT OR REPLACE INTO cosignatures(height, witness, line) VALUES(?,?,?)", items
            )
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def add_evidence(self, time_us: int, reason: str, checkpoint: str) -> None:
        with self.con:
            self.con.execute("BEGIN IMMEDIATE")
            self.con.execute(
                "INSERT INTO evidence(time, reason, checkpoint) VALUES(?,?,?)",
                (time_us, reason, checkpoint),
            )


def _write_delta(c: sqlite3.Connection, d: Delta) -> None:
    if d.nodes:
        c.executemany(
            "INSERT OR REPLACE INTO nodes(name, key, role, idx) VALUES(?,?,?,?)",
            [(n, k, r, i) for n, (k, r, i) in d.nodes.items()],
        )
    if d.seqs:
        c.executemany("INSERT OR REPLACE INTO senders(name, seq) VALUES(?,?)", d.seqs.items())
    if d.bubbles:
        c.executemany(
            "INSERT OR REPLACE INTO bubbles(id, state, owner, idx) VALUES(?,?,?,?)",
            [(b, s, o, i) for b, (s, o, i) in d.bubbles.items()],
        )
    if d.jobs:
        c.executemany(
            "INSERT OR REPLACE INTO jobs(id, open, sender, bubble, idx) VALUES(?,?,?,?,?)",
            [(j, int(info.open), info.sender, info.bubble, i) for j, (info, i) in d.jobs.items()],
        )
    if d.artifacts:
        c.executemany("INSERT OR IGNORE INTO artifacts(hash, idx) VALUES(?,?)", d.artifacts.items())
