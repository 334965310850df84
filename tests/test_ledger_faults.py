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
