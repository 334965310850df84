"""Shared fixtures: a fresh ledger home, and the CLI run as a user runs it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from bubblechain.cli.main import app
from bubblechain.ledger import Ledger

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A freshly initialised ledger home (3 witnesses, quorum 2)."""
    h = tmp_path / "home"
    Ledger.init(h).close()
    return h


def home_of_notes(path: Path, notes: int, block_size: int, text: str = "note {i:03d}") -> Path:
    """A ledger home at ``path`` holding ``notes`` note messages, in blocks of ``block_size``."""
    Ledger.init(path).close()
    with Ledger.open(path, block_size=block_size) as led:
        for i in range(notes):
            led.append("note", {"text": text.format(i=i)})
    return path


@pytest.fixture
def cli():
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None):
        r = runner.invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)
        return r.exit_code, r.stdout, r.stderr

    return run


def run_cli_process(*args: str, cwd: Path | None = None, timeout: float = 120):
    """Run the real console entry point in a subprocess."""
    env = {k: v for k, v in os.environ.items() if k != "BUBBLECHAIN_HOME"}
    return subprocess.run(
        [sys.executable, "-m", "bubblechain", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def tree_digest(path: Path) -> dict[str, str]:
    """Every file under `path` with its SHA-256: to assert nothing changed on disk."""
    out = {}
    for p in sorted(path.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(path))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def rewrite_and_resign(home: Path, idx: int, forged) -> None:
    """The insider on the sequencer's machine: replace entry `idx` with `forged`, then
    rebuild every block from it on (roots, headers, links) and re-sign each checkpoint
    with the sequencer's own key, so the copy is internally valid again."""
    import sqlite3

    from bubblechain import merkle
    from bubblechain.crypto.keys import Identity
    from bubblechain.crypto.note import SignedNote, sign_note
    from bubblechain.ledger.block import checkpoint_for, header_hash, make_header, parse_header

    seq_key = Identity.load(home / "keys" / "sequencer.key")
    con = sqlite3.connect(home / "ledger.db", isolation_level=None)
    blk = con.execute("SELECT block FROM messages WHERE idx=?", (idx,)).fetchone()[0]
    con.execute("BEGIN")
    con.execute(
        "UPDATE messages SET id=?, kind=?, sender=?, leaf=?, payload=?, sig=? WHERE idx=?",
        (forged.id, forged.kind, forged.sender, forged.leaf, forged.payload, forged.signature, idx),
    )
    leaves = [bytes(r[0]) for r in con.execute("SELECT leaf FROM messages ORDER BY idx")]
    prev = con.execute("SELECT hash FROM blocks WHERE height=?", (blk - 1,)).fetchone()[0]
    for height, header in con.execute(
        "SELECT height, header FROM blocks WHERE height>=? ORDER BY height", (blk,)
    ).fetchall():
        h = parse_header(header)
        root = merkle.root(leaves[: h["size"]])
        new_header = make_header(height, prev, h["first"], h["count"], root, h["time"])
        hh = header_hash(new_header)
        body = checkpoint_for(seq_key.name, h["size"], root, height, hh).body()
        note = SignedNote(body, (sign_note(body, seq_key),)).text()
        con.execute(
            "UPDATE blocks SET hash=?, header=?, checkpoint=? WHERE height=?",
            (hh, new_header, note, height),
        )
        prev = hh
    tree = merkle.CompactTree()
    tree.extend(leaves)  # and the cached log tree the next block would extend
    con.execute("UPDATE meta SET value=? WHERE key='tree'", (tree.to_bytes(),))
    con.execute("COMMIT")
    con.close()


# The leaves of the RFC 6962 / Certificate Transparency test tree (sizes 1..8).
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    bytes(range(0x60, 0x70)),
]


def rfc9162_verify(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2, written out independently of bubblechain.merkle."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def with_value(table: pa.Table, column: str, row: int, value) -> pa.Table:
    values = table.column(column).to_pylist()
    values[row] = value
    i = table.column_names.index(column)
    return table.set_column(i, column, pa.array(values, table.schema.field(column).type))
