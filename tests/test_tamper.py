"""Tamper tests: really change what an attacker would change, assert the exact finding."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from conftest import home_of_notes, rewrite_and_resign

from bubblechain.crypto.keys import Identity
from bubblechain.ledger import Ledger, Message
from bubblechain.ledger.verify import verify_home

N_NOTES = 40
BLOCK = 8


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = home_of_notes(tmp_path / "home", N_NOTES, BLOCK)
    assert not (h / "ledger.db-wal").exists()  # everything is in the main file now
    assert verify_home(h).ok
    return h


def db(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "ledger.db", isolation_level=None)


def block_of(home: Path, idx: int) -> int:
    return db(home).execute("SELECT block FROM messages WHERE idx=?", (idx,)).fetchone()[0]


def findings(home: Path) -> set[tuple[str, str, str]]:
    report = verify_home(home)
    assert not report.ok
    return {(f.kind, f.where, f.detail) for f in report.findings}


def wheres(home: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in verify_home(home).findings:
        out.setdefault(f.where, []).append(f.detail)
    return out


def test_one_byte_of_a_stored_message_changed_in_the_file(home):
    raw = (home / "ledger.db").read_bytes()
    needle = b'"text":"note 009"'
    assert raw.count(needle) == 1
    at = raw.index(needle) + len(needle) - 2
    (home / "ledger.db").write_bytes(raw[:at] + b"7" + raw[at + 1 :])  # one byte, in place
    idx, blk = 10, block_of(home, 10)  # note 009 is entry 10 (entry 0 is the genesis)
    w = wheres(home)
    where = f"message {idx} (block {blk})"
    assert "signature does not verify under the key registered to 'admin'" in w[where]
    assert "stored id does not match the payload's hash" in w[where]
    assert any("header root does not match" in d for d in w[f"block {blk}"])
    assert "differs from witness w1's copy, which verifies" in w[where]
    assert not [k for k in w if k.startswith("message") and k != where]  # nothing else blamed


def test_one_byte_of_a_message_changed_in_one_witness_replica_is_placed_at_that_witness(home):
    """The comparison's finding was placed at the ledger's message ("message 10: differs
    from witness w2's copy"), as if the ledger were the copy tampered with."""
    replica = home / "witnesses" / "w2" / "replica.db"
    raw = replica.read_bytes()
    needle = b'"text":"note 009"'
    assert raw.count(needle) == 1
    at = raw.index(needle) + len(needle) - 2
    replica.write_bytes(raw[:at] + b"7" + raw[at + 1 :])
    idx, blk = 10, block_of(home, 10)
    w = wheres(home)
    mine = f"witness w2, message {idx} (block {blk})"
    assert "stored id does not match the payload's hash" in w[mine]
    assert "differs from the ledger's copy, which verifies" in w[mine]
    assert not [k for k in w if not k.startswith("witness w2")]  # the ledger is not blamed


def test_each_signature_is_checked_once_not_once_per_copy(home, monkeypatch):
    """verify checked every signature in the ledger and again in each of the 3 replicas,
    which hold the same bytes: ~4x the work of the largest part of a replay."""
    from bubblechain.ledger import rules

    calls = []
    real = rules.verify_signature
    monkeypatch.setattr(rules, "verify_signature", lambda *a: calls.append(a) or real(*a))
    assert verify_home(home).ok
    # Every entry once, the genesis message too: a replica's block that is the ledger's,
    # after the same blocks, is replayed once for both.
    assert len(calls) == N_NOTES + 1


def test_each_entry_is_parsed_once_not_once_per_copy(home, monkeypatch):
    """After the signature, the largest part of a replica's replay was parsing each entry
    again (its canonical form re-encoded and compared), though the same bytes had
    passed in the ledger's copy."""
    from bubblechain.ledger import Message

    calls = []
    real = Message.from_parts.__func__
    monkeypatch.setattr(
        Message, "from_parts", classmethod(lambda cls, *a: calls.append(a) or real(cls, *a))
    )
    assert verify_home(home).ok
    assert len(calls) == N_NOTES + 1  # the ledger's entries, genesis included, once each


def test_a_replica_message_with_another_messages_signature_is_still_refused(home):
    """A signature checked in the ledger's copy counts for another copy only for the very
    same signed bytes: here a replica's message carries a valid signature of another."""
    replica = home / "witnesses" / "w2" / "replica.db"
    con = sqlite3.connect(replica, isolation_level=None)
    other = con.execute("SELECT sig FROM messages WHERE idx=11").fetchone()[0]
    con.execute("UPDATE messages SET sig=? WHERE idx=10", (other,))
    con.close()
    w = wheres(home)
    where = f"witness w2, message 10 (block {block_of(home, 10)})"
    assert "signature does not verify under the key registered to 'admin'" in w[where]
    assert not [k for k in w if not k.startswith("witness w2")]


def test_a_replica_entry_split_elsewhere_between_signature_and_payload_is_malformed(tmp_path):
    """The leaf hashes signature || payload, so a replica moving a signature's last byte, a
    space, to the payload's front keeps the leaf (and the cache key) of the entry the
    ledger checked: the replica's short signature and non-canonical payload went
    unreported, and the comparison blamed neither copy."""
    h = tmp_path / "home"
    Ledger.init(h).close()
    found = None
    for _ in range(60):  # 1 signature in 64 ends in one of JSON's 4 whitespace bytes
        with Ledger.open(h, block_size=BLOCK) as led:
            for i in range(50):
                led.append("note", {"text": f"note {i:03d}"})
        found = (
            db(h)
            .execute(
                "SELECT idx, payload, sig FROM messages WHERE idx>0 AND substr(sig, 64, 1)"
                " IN (x'20', x'09', x'0a', x'0d') LIMIT 1"
            )
            .fetchone()
        )
        if found:
            break
    assert found
    idx, payload, sig = found
    payload, sig = sig[63:] + payload, sig[:63]  # the same bytes, split one byte earlier
    con = sqlite3.connect(h / "witnesses" / "w2" / "replica.db", isolation_level=None)
    con.execute(
        "UPDATE messages SET payload=?, sig=?, id=? WHERE idx=?",
        (payload, sig, hashlib.sha256(payload).digest(), idx),
    )
    con.close()
    w = wheres(h)
    where = f"witness w2, message {idx} (block {block_of(h, idx)})"
    assert "malformed: signature must be 64 bytes, got 63" in w[where]
    assert "differs from the ledger's copy, which verifies" in w[where]
    assert not [k for k in w if not k.startswith("witness w2")]


def test_a_replica_entry_nested_too_deeply_is_malformed_not_a_crash(home):
    """Decoding a replica's entry before looking it up among the checked ones let a
    RecursionError out of verify: one tampered replica left no report at all."""
    payload = b"[" * 200_000 + b"]" * 200_000
    con = sqlite3.connect(home / "witnesses" / "w2" / "replica.db", isolation_level=None)
    con.execute("UPDATE messages SET payload=? WHERE idx=10", (payload,))
    con.close()
    w = wheres(home)
    where = f"witness w2, message 10 (block {block_of(home, 10)})"
    assert "malformed: payload is not canonical JSON: JSON is nested too deeply" in w[where]


def test_one_byte_of_a_block_header_changed(home):
    con = db(home)
    header = con.execute("SELECT header FROM blocks WHERE height=3").fetchone()[0]
    at = header.index(b'"time":') + 10
    tampered = header[:at] + bytes([(header[at] - 48 + 1) % 10 + 48]) + header[at + 1 :]
    assert tampered != header and len(tampered) == len(header)
    con.execute("UPDATE blocks SET header=? WHERE height=3", (tampered,))
    w = wheres(home)
    assert "stored block hash does not match its header" in w["block 3"]
    assert "checkpoint does not commit to this block's header" in w["block 3"]
    assert any("does not link to block 3" in d for d in w["block 4"])
    assert any("differs from witness w1's replica" in d for d in w["block 3"])


def test_one_byte_of_a_cosignature_changed(home):
    con = db(home)
    line = con.execute("SELECT line FROM cosignatures WHERE height=2 AND witness='w2'").fetchone()[
        0
    ]
    i = len(line) - 10  # a character inside the signature bytes
    flipped = line[:i] + ("A" if line[i] != "A" else "B") + line[i + 1 :]
    con.execute("UPDATE cosignatures SET line=? WHERE height=2 AND witness='w2'", (flipped,))
    assert findings(home) == {
        ("cosignature", "block 2", "cosignature by w2 does not verify over this checkpoint")
    }


def test_a_block_deleted(home):
    con = db(home)
    con.execute("DELETE FROM messages WHERE block=2")
    con.execute("DELETE FROM blocks WHERE height=2")
    w = wheres(home)
    assert "missing: heights jump from 1 to 3" in w["block 2"]
    assert "missing from the ledger; witness w1 holds it" in w["block 2"]
    assert "missing from the ledger; witness w3 holds it" in w["block 2"]


def test_the_last_block_deleted(home):
    con = db(home)
    last = con.execute("SELECT MAX(height) FROM blocks").fetchone()[0]
    con.execute("DELETE FROM messages WHERE block=?", (last,))
    con.execute("DELETE FROM blocks WHERE height=?", (last,))
    w = wheres(home)
    assert w[f"block {last}"] == [
        f"missing from the ledger; witness {n} holds it" for n in ("w1", "w2", "w3")
    ]


def test_two_messages_reordered(home):
    con = db(home)
    rows = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT idx, id, leaf, payload, sig FROM messages WHERE idx IN (12, 13)"
        )
    }
    for idx, other in ((12, 13), (13, 12)):
        con.execute(
            "UPDATE messages SET id=?, leaf=?, payload=?, sig=? WHERE idx=?", (*rows[other], idx)
        )
    blk = block_of(home, 12)
    w = wheres(home)
    # entry 12 holds seq 13 (the genesis took the admin's seq 1); swapped, it now holds 14
    assert "sequence 14 from 'admin' out of order (expected 13)" in w[f"message 12 (block {blk})"]
    assert "sequence 13 from 'admin' out of order (expected 15)" in w[f"message 13 (block {blk})"]
    assert any("header root does not match" in d for d in w[f"block {blk}"])
    for idx in (12, 13):
        assert "differs from witness w2's copy, which verifies" in w[f"message {idx} (block {blk})"]


def test_insider_rewrites_a_message_and_resigns_everything_with_the_sequencer_key(home):
    """Root on the sequencer's machine: its keys (and the admin's) are there to use."""
    idx = 10
    blk = block_of(home, idx)
    admin = Identity.load(home / "keys" / "admin.key")
    payload = db(home).execute("SELECT payload FROM messages WHERE idx=?", (idx,)).fetchone()[0]
    old = Message.from_parts(payload, bytes(64))
    forged = Message.create(
        admin, "note", {"text": "note 009 (approved)"}, seq=old.seq, time_us=old.fields["time"]
    )
    rewrite_and_resign(home, idx, forged)
    report = verify_home(home)
    ledger_only = [f for f in report.findings if f.kind not in ("cosignature", "quorum", "replica")]
    assert ledger_only == []  # the rewritten copy is internally valid: signatures, roots, links
    w = wheres(home)
    for name in ("w1", "w2", "w3"):
        assert f"cosignature by {name} does not verify over this checkpoint" in w[f"block {blk}"]
        assert any(f"differs from witness {name}'s replica" in d for d in w[f"block {blk}"])
        assert f"differs from witness {name}'s copy" in w[f"message {idx} (block {blk})"]
