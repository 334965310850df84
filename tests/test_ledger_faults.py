"""Faults a user makes with ordinary tools: the sqlite3 CLI, rm, a truncated file.

Each test really changes the home on disk and asserts the exact finding or error.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from bubblechain.ledger import Ledger
from bubblechain.ledger.verify import verify_home


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    Ledger.init(h).close()
    with Ledger.open(h) as led:
        led.append("note", {"text": "hello"})
        led.flush()
        led.append("note", {"text": "world"})
    assert verify_home(h).ok
    return h


def sql(db: Path, statement: str, *args) -> None:
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute(statement, args)
    finally:
        con.close()


def findings(home: Path) -> set[tuple[str, str, str]]:
    return {(f.kind, f.where, f.detail) for f in verify_home(home).findings}


# -- 1. a payload edited with the sqlite3 CLI is stored as TEXT --------------------------


def test_a_payload_edited_with_sql_replace_is_text_and_gives_the_blob_edits_findings(
    home, tmp_path
):
    as_text, as_blob = tmp_path / "as_text", tmp_path / "as_blob"
    shutil.copytree(home, as_text)
    shutil.copytree(home, as_blob)
    edit = "replace(payload, 'hello', 'HELLO')"
    sql(as_text / "ledger.db", f"UPDATE messages SET payload={edit} WHERE kind='note'")
    sql(
        as_blob / "ledger.db", f"UPDATE messages SET payload=CAST({edit} AS BLOB) WHERE kind='note'"
    )
    con = sqlite3.connect(as_text / "ledger.db")
    types = con.execute("SELECT typeof(payload) FROM messages WHERE kind='note'").fetchall()
    con.close()
    assert types == [("text",), ("text",)]  # what the CLI really leaves behind

    got = findings(as_text)
    assert got == findings(as_blob)
    where = "message 1 (block 1)"
    assert {
        ("message", where, "stored id does not match the payload's hash"),
        ("message", where, "stored leaf hash does not match the entry"),
        ("message", where, "signature does not verify under 'admin''s registered key"),
        ("checkpoint", "block 1", "checkpoint root does not match the recomputed log"),
        ("replica", where, "differs from witness w1's copy"),
        ("replica", where, "differs from witness w2's copy"),
        ("replica", where, "differs from witness w3's copy"),
    } <= got
    assert any(k == "root" and w == "block 1" for k, w, _ in got)
    # message 2 became TEXT with the same bytes: nothing is wrong with it
    assert not [w for _k, w, _d in got if w.startswith("message 2")]

    with Ledger.open(as_text, readonly=True) as led:  # `log` reads it back as bytes
        assert [e.body["text"] for e in led.entries(kind="note")] == ["HELLO", "world"]


@pytest.mark.parametrize(
    "value",
    ["42", "1.5", "CAST(x'ff00fe' AS TEXT)", "CAST(x'' AS TEXT)"],
    ids=["integer", "real", "invalid-utf8-text", "empty-text"],
)
def test_any_storage_class_in_a_blob_column_is_a_finding_not_a_crash(home, value):
    sql(home / "ledger.db", f"UPDATE messages SET payload={value} WHERE idx=1")
    got = findings(home)
    where = "message 1 (block 1)"
    assert any(k == "message" and w == where and d.startswith("malformed") for k, w, d in got)
    assert ("replica", where, "differs from witness w1's copy") in got


def test_blob_columns_stored_as_text_with_the_same_bytes_are_not_findings(home):
    sql(home / "ledger.db", "UPDATE messages SET sig=CAST(sig AS TEXT), id=CAST(id AS TEXT)")
    sql(home / "ledger.db", "UPDATE blocks SET header=CAST(header AS TEXT)")
    assert findings(home) == set()


# -- 3. a missing or stale cached log tree -------------------------------------------------


def head_of(db: Path) -> tuple[int, int]:
    con = sqlite3.connect(db)
    try:
        height = con.execute("SELECT MAX(height) FROM blocks").fetchone()[0]
        size = con.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    finally:
        con.close()
    return height, size


def test_a_deleted_cached_tree_is_a_finding_and_is_rebuilt_before_the_next_block(home):
    sql(home / "ledger.db", "DELETE FROM meta WHERE key='tree'")
    height, size = head_of(home / "ledger.db")
    assert findings(home) == {
        (
            "state",
            "cached log tree",
            f"missing (meta 'tree'); head block {height} states {size} entries",
        )
    }
    with Ledger.open(home) as led:  # was: a block on an empty tree, refused by every witness
        led.append("note", {"text": "after"})
        assert led.flush(timeout=30) == height + 1
    report = verify_home(home)
    assert report.ok, [str(f) for f in report.findings]
    with Ledger.open(home, readonly=True) as led:
        assert [w["height"] for w in led.status()["witnesses"]] == [height + 1] * 3


def test_a_witness_replicas_stale_cached_tree_is_a_finding_and_is_rebuilt(home):
    from bubblechain import merkle

    stale = merkle.CompactTree()
    stale.append(b"\1" * 32)
    replica = home / "witnesses" / "w2" / "replica.db"
    sql(replica, "UPDATE meta SET value=? WHERE key='tree'", stale.to_bytes())
    height, size = head_of(replica)
    con = sqlite3.connect(replica)
    root = con.execute("SELECT header FROM blocks WHERE height=?", (height,)).fetchone()[0]
    con.close()
    root = root.decode().split('"root":"')[1][:16]
    assert findings(home) == {
        (
            "state",
            "witness w2, cached log tree",
            f"has 1 entries and root {stale.root().hex()[:16]}…, but head block {height} "
            f"states {size} entries and root {root}…",
        )
    }
    with Ledger.open(home) as led:
        led.append("note", {"text": "after"})
        led.flush(timeout=30)
    report = verify_home(home)  # w2 cosigned it too: no refusal, no evidence kept
    assert report.ok, [str(f) for f in report.findings]
    assert head_of(replica)[0] == height + 1


def test_a_missing_tree_over_damaged_leaves_refuses_to_start_and_commits_nothing(home):
    from bubblechain.errors import StoreError

    sql(home / "ledger.db", "DELETE FROM meta WHERE key='tree'")
    sql(home / "ledger.db", "UPDATE messages SET leaf=zeroblob(32) WHERE idx=1")
    before = head_of(home / "ledger.db")
    with pytest.raises(StoreError) as e:
        Ledger.open(home)
    assert str(e.value) == (
        f"ledger store {home / 'ledger.db'}: its stored messages do not give the log root of "
        f"head block {before[0]}, and its cached log tree is missing; run `bubblechain verify`"
    )
    assert head_of(home / "ledger.db") == before
    with Ledger.open(home, readonly=True):  # reading still works, and verify says why
        pass
    assert (
        "state",
        "cached log tree",
        f"missing (meta 'tree'); head block {before[0]} states {before[1]} entries",
    ) in findings(home)
