"""`bubblechain witness rebuild`: a lost or corrupt replica rebuilt from the final record."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import types
from pathlib import Path

import pytest
from conftest import home_of_notes, rewrite_and_resign, tree_digest

from bubblechain.crypto.keys import Identity
from bubblechain.ledger import Ledger, Message
from bubblechain.ledger.lock import HomeLock
from bubblechain.ledger.verify import verify_home

BLOCK = 4


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return home_of_notes(tmp_path / "home", 10, BLOCK, "note {i}")


def replica(home: Path, name: str) -> Path:
    return home / "witnesses" / name / "replica.db"


def findings(home: Path) -> list[str]:
    return [str(f) for f in verify_home(home).findings]


def test_a_deleted_replica_is_rebuilt_and_the_witness_cosigns_again(home, cli):
    for f in replica(home, "w2").parent.glob("replica.db*"):
        f.unlink()
    assert findings(home) == [
        f"witness w2: unusable: ledger store {replica(home, 'w2')} does not exist "
        "(`bubblechain witness rebuild w2` rebuilds it)"
    ]
    with Ledger.open(home, readonly=True) as led:
        final, size = led.final_height(), led.store.size()

    code, out, err = cli("witness", "rebuild", "w2", "--home", home, "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "witness": "w2",
        "blocks": final + 1,
        "messages": size,
        "replaced": None,
        "cosigned": 0,
    }
    assert findings(home) == []
    with Ledger.open(home) as led:  # the rebuilt witness takes the next block as usual
        led.append("note", {"text": "after"})
        led.flush()
        st = led.status()
    assert [w["height"] for w in st["witnesses"]] == [st["height"]] * 3
    assert findings(home) == []


def test_a_corrupt_replica_is_replaced_and_kept_beside_the_new_one(home, cli):
    garbage = b"not a database " * 300
    for f in replica(home, "w3").parent.glob("replica.db-*"):
        f.unlink()
    replica(home, "w3").write_bytes(garbage)
    assert any("w3: unusable" in f for f in findings(home))

    code, out, _ = cli("witness", "rebuild", "w3", "--home", home)
    assert code == 0
    assert out.startswith("✓ witness w3 rebuilt: ")
    kept = [p for p in replica(home, "w3").parent.iterdir() if ".replaced-" in p.name]
    assert [p.read_bytes() for p in kept] == [garbage]  # the old one, byte for byte
    assert f"the old replica is kept at {kept[0]}" in out
    assert findings(home) == []


def test_a_ledger_whose_history_changed_after_the_witness_cosigned_is_refused(home, cli):
    """The insider rewrites a message and re-signs every checkpoint with the sequencer
    key: the witness's own cosignatures kept on the ledger no longer verify, so its
    replica is not rebuilt from that history."""
    admin = Identity.load(home / "keys" / "admin.key")
    con = sqlite3.connect(home / "ledger.db")
    payload = con.execute("SELECT payload FROM messages WHERE idx=5").fetchone()[0]
    con.close()
    old = Message.from_parts(payload, bytes(64))
    forged = Message.create(
        admin, "note", {"text": "forged"}, seq=old.seq, time_us=old.fields["time"]
    )
    rewrite_and_resign(home, 5, forged)
    before = tree_digest(home / "witnesses")

    code, _, err = cli("witness", "rebuild", "w1", "--home", home)
    assert code == 2
    assert err.startswith("error: witness w1: its cosignature of block ")
    assert "does not verify over that block: the ledger's history changed" in err
    assert tree_digest(home / "witnesses") == before  # nothing replaced, nothing left over


def test_a_message_edited_in_the_ledger_is_refused_and_nothing_is_replaced(home, cli):
    con = sqlite3.connect(home / "ledger.db")
    con.execute("UPDATE messages SET payload=replace(payload, 'note 3', 'note 8') WHERE idx=4")
    con.commit()
    con.close()
    before = tree_digest(home / "witnesses")
    code, _, err = cli("witness", "rebuild", "w2", "--home", home)
    assert code == 2
    assert err.startswith("error: witness w2: block ")
    assert "of the ledger cannot be replayed" in err
    assert tree_digest(home / "witnesses") == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["w9"], "error: witness 'w9' is not in the genesis (its witnesses: w1, w2, w3)"),
        (["w1"], "error: witness w1 cannot be rebuilt: key file {home}/witnesses/w1/witness.key "),
    ],
    ids=["unknown-witness", "lost-key"],
)
def test_what_cannot_be_rebuilt_is_one_line_and_changes_nothing(home, cli, args, message):
    (home / "witnesses" / "w1" / "witness.key").unlink()
    before = tree_digest(home)
    code, out, err = cli("witness", "rebuild", *args, "--home", home)
    assert (code, out) == (2, "")
    assert err.startswith(message.format(home=home)) and err.count("\n") == 1
    assert tree_digest(home) == before


def test_a_home_in_use_is_waited_for_then_given_up(home, cli):
    lock = HomeLock(home / "ledger.lock", 1)
    try:
        code, _, err = cli(
            "witness", "rebuild", "w2", "--home", home, env={"BUBBLECHAIN_LOCK_WAIT": "0"}
        )
    finally:
        lock.release()
    assert code == 2
    assert f"error: ledger {home} is in use by " in err
    assert not list(replica(home, "w2").parent.glob("*.rebuild-*"))


def _settle(directory: Path) -> None:
    """Fold each replica's WAL into its file, so the file alone can be copied."""
    for p in directory.glob("replica.db"):
        con = sqlite3.connect(p)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.close()


def test_a_witness_that_cosigned_blocks_the_ledger_lost_is_not_rebuilt(home, cli):
    """The ledger restored from an older copy: w1 had cosigned blocks 3.. that it no
    longer has. Rebuilt from the older ledger, w1 cosigned the next note there, a
    second root for a size it had cosigned; two such rebuilds made that fork final."""
    with Ledger.open(home, readonly=True) as led:
        head = led.store.head().height
    older = home.parent / "older.db"
    shutil.copy(home / "ledger.db", older)  # checkpointed: no WAL left by the fixture
    with Ledger.open(home, block_size=BLOCK) as led:
        for i in range(4):
            led.append("note", {"text": f"later {i}"})
    for suffix in ("-wal", "-shm"):
        (home / f"ledger.db{suffix}").unlink(missing_ok=True)
    shutil.copy(older, home / "ledger.db")
    before = tree_digest(home / "witnesses")

    code, _, err = cli("witness", "rebuild", "w1", "--home", home)
    assert code == 2
    assert err.startswith(f"error: witness w1: {replica(home, 'w1')} holds its cosignature of ")
    assert f"which this ledger does not have (its head is block {head})" in err
    assert tree_digest(home / "witnesses") == before


@pytest.mark.parametrize("kept", [False, True], ids=["in-place", "kept-by-a-rebuild"])
def test_a_witness_that_cosigned_a_fork_is_not_rebuilt(home, cli, tmp_path, kept):
    """w1's replica (or one kept by an earlier rebuild) holds its cosignature of a
    block that differs from the ledger's at that height: rebuilt, it would hold
    two cosigned roots for one size."""
    other = tmp_path / "other"
    shutil.copytree(home, other)
    for h, text in ((home, "here"), (other, "there")):
        with Ledger.open(h, block_size=1) as led:
            led.append("note", {"text": text})
    _settle(other / "witnesses" / "w1")
    theirs = other / "witnesses" / "w1" / "replica.db"
    if kept:
        shutil.copy(theirs, replica(home, "w1").with_name("replica.db.replaced-20260101T000000"))
    else:
        for f in replica(home, "w1").parent.glob("replica.db*"):
            f.unlink()
        shutil.copy(theirs, replica(home, "w1"))
    before = tree_digest(home / "witnesses")

    code, _, err = cli("witness", "rebuild", "w1", "--home", home)
    assert code == 2, err
    assert "over a different checkpoint than this ledger's block" in err
    assert tree_digest(home / "witnesses") == before


def _leave_a_live_wal(db: Path) -> None:
    """As a process killed mid-append does: the last transaction only in the WAL."""
    pid = os.fork()
    if pid == 0:
        try:
            con = sqlite3.connect(db, isolation_level=None)
            con.execute("PRAGMA wal_autocheckpoint=0")
            con.execute("INSERT INTO meta(key, value) VALUES('probe', 'x')")
            con.execute("DELETE FROM meta WHERE key='probe'")
        finally:
            os._exit(0)  # no close: no checkpoint
    os.waitpid(pid, 0)
    assert db.with_name(db.name + "-wal").stat().st_size > 0


def _rebuild_killed_at(home: Path, k: int) -> bool:
    """Rebuild w2 in a child SIGKILLed just before its k-th link, rename or unlink;
    True if it was killed, False if it finished."""
    from bubblechain.ledger import rebuild

    pid = os.fork()
    if pid == 0:
        try:
            calls = [0]

            def fatal(f):
                def call(*a, **kw):
                    if calls[0] == k:
                        os.kill(os.getpid(), signal.SIGKILL)
                    calls[0] += 1
                    return f(*a, **kw)

                return call

            proxy = types.ModuleType("os")
            proxy.__dict__.update(os.__dict__)
            for fn in ("replace", "rename", "link", "unlink"):
                setattr(proxy, fn, fatal(getattr(os, fn)))
            rebuild.os = proxy
            rebuild.rebuild_witness(home, "w2")
        except BaseException:
            os._exit(3)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return True
    assert os.WEXITSTATUS(status) == 0
    return False


@pytest.mark.parametrize("old", ["live-wal", "corrupt", "missing"])
def test_a_rebuild_killed_at_any_step_leaves_a_usable_replica(home, tmp_path, old):
    """kill -9 between moving the old replica aside and renaming the new one in left
    no replica at all; the old one's WAL must never pair with the new file."""
    db = replica(home, "w2")
    if old == "live-wal":
        _leave_a_live_wal(db)
    else:
        for f in db.parent.glob("replica.db*"):
            f.unlink()
        if old == "corrupt":
            db.write_bytes(b"not a database " * 300)
    k, killed = 0, True
    while killed:
        copy = tmp_path / f"k{k}"
        shutil.copytree(home, copy)
        killed = _rebuild_killed_at(copy, k)
        unusable = [f for f in findings(copy) if f.startswith("witness w2: unusable")]
        if old == "live-wal":  # the old replica, or the new one, never none
            assert unusable == [], (k, unusable)
        # What is in place opens as a replica, or is the unusable old one: run again,
        # rebuild completes, and the witness cosigns the next block.
        if unusable or killed:
            _rebuild_killed_at(copy, 10**6)
        assert findings(copy) == [], k
        with Ledger.open(copy, block_size=1) as led:
            led.append("note", {"text": "after"})
            led.flush()
            st = led.status()
        assert [w["height"] for w in st["witnesses"]] == [st["height"]] * 3, k
        assert findings(copy) == [], k
        assert not list(db.parent.glob("*.rebuild-*"))
        k += 1
    assert k > 3
