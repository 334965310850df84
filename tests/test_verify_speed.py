"""verify checks the replicas in step with the ledger and replays a block they hold alike
once: its findings must be those of checking every copy on its own, from genesis."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import home_of_notes

from bubblechain.home import Home
from bubblechain.ledger.genesis import read_genesis
from bubblechain.ledger.store import Store
from bubblechain.ledger.verify import LEDGER, check_copies, check_copy, verify_home

BLOCK = 8


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    return home_of_notes(tmp_path / "home", 60, BLOCK)


def _db(home: Path, copy: str) -> sqlite3.Connection:
    path = home / "ledger.db" if copy == LEDGER else home / "witnesses" / copy / "replica.db"
    return sqlite3.connect(path, isolation_level=None)


def _bump_time(home: Path, copy: str, idx: int) -> None:
    """One digit of the signed payload's time changed, as an edit of the file would."""
    con = _db(home, copy)
    p = con.execute("SELECT payload FROM messages WHERE idx=?", (idx,)).fetchone()[0]
    at = p.index(b'"time":') + 9
    p = p[:at] + bytes([(p[at] - 48 + 1) % 10 + 48]) + p[at + 1 :]
    con.execute("UPDATE messages SET payload=? WHERE idx=?", (p, idx))
    con.close()


def _each_on_its_own(home: Path) -> dict[str, list]:
    h = Home(home)
    genesis = read_genesis(h)
    paths = {
        LEDGER: h.store,
        **{w.name: h.witness(w.name) / "replica.db" for w in genesis.witnesses},
    }
    out = {}
    for label, path in paths.items():
        store = Store.open(path, readonly=True)
        try:
            findings, view = check_copy(store, genesis, label)
        finally:
            store.close()
        out[label] = (findings, view)
    return out


def _together(home: Path) -> dict[str, list]:
    h = Home(home)
    genesis = read_genesis(h)
    stores = {LEDGER: Store.open(h.store, readonly=True)}
    for w in genesis.witnesses:
        stores[w.name] = Store.open(h.witness(w.name) / "replica.db", readonly=True)
    try:
        return check_copies(stores, genesis)
    finally:
        for s in stores.values():
            s.close()


TAMPERS = {
    "a replica's first block": lambda h: _bump_time(h, "w1", 1),
    "a replica's later block": lambda h: _bump_time(h, "w2", 30),
    "the ledger's block": lambda h: _bump_time(h, LEDGER, 30),
    "every copy alike": lambda h: [_bump_time(h, c, 30) for c in (LEDGER, "w1", "w2", "w3")],
    "the ledger, and a replica elsewhere": lambda h: (
        _bump_time(h, LEDGER, 20),
        _bump_time(h, "w3", 40),
    ),
    "a replica's last block deleted": lambda h: (
        _db(h, "w2").execute("DELETE FROM messages WHERE block=(SELECT MAX(height) FROM blocks)"),
        _db(h, "w2").execute("DELETE FROM blocks WHERE height=(SELECT MAX(height) FROM blocks)"),
    ),
    "a ledger block deleted": lambda h: (
        _db(h, LEDGER).execute("DELETE FROM messages WHERE block=3"),
        _db(h, LEDGER).execute("DELETE FROM blocks WHERE height=3"),
    ),
}


@pytest.mark.parametrize("tamper", list(TAMPERS), ids=list(TAMPERS))
def test_checking_copies_together_finds_what_checking_each_alone_finds(filled, tamper):
    TAMPERS[tamper](filled)
    alone, together = _each_on_its_own(filled), _together(filled)
    assert list(together) == list(alone)
    for label in alone:
        assert together[label][0] == alone[label][0], label
        assert together[label][1] == alone[label][1], label
    assert not verify_home(filled).ok


def test_a_clean_home_checked_together_replays_each_block_once(filled, monkeypatch):
    from bubblechain.ledger import verify

    replayed = []
    real = verify._replay_block
    monkeypatch.setattr(verify, "_replay_block", lambda *a: replayed.append(a[2][0]) or real(*a))
    together = _together(filled)
    assert all(not findings for findings, _ in together.values())
    assert replayed == sorted(set(replayed))  # each height once, for the 4 copies
    assert {v.size for _, v in together.values()} == {61}
