"""Faults a user makes with ordinary tools: the sqlite3 CLI, rm, a truncated file.

Each test really changes the home on disk and asserts the exact finding or error.
"""

from __future__ import annotations

import json
import os
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
        ("message", where, "signature does not verify under the key registered to 'admin'"),
        ("checkpoint", "block 1", "checkpoint root does not match the recomputed log"),
        ("replica", where, "differs from witness w1's copy, which verifies"),
        ("replica", where, "differs from witness w2's copy, which verifies"),
        ("replica", where, "differs from witness w3's copy, which verifies"),
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
    assert ("replica", where, "differs from witness w1's copy, which verifies") in got


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


# -- 2. one witness unusable: a 2-of-3 ledger keeps writing ---------------------------------


def _break_witness(home: Path, name: str, fault: str) -> tuple[str, str]:
    """Break one witness as a user would; return (finding kind, reason) verify gives."""
    d = home / "witnesses" / name
    if fault == "replica-deleted":
        (d / "replica.db").unlink()
        return "replica", f"ledger store {d / 'replica.db'} does not exist"
    if fault == "replica-garbage":
        (d / "replica.db").write_bytes(b"not a database\n" * 100)
        return "replica", (
            f"ledger store {d / 'replica.db'} is unreadable or corrupt: file is not a database"
        )
    if fault == "directory-deleted":
        shutil.rmtree(d)
        return "witness", f"witness directory {d} is missing"
    assert fault == "key-deleted"
    (d / "witness.key").unlink()
    return "witness", f"key file {d / 'witness.key'} is missing"


FAULTS = ["replica-deleted", "replica-garbage", "directory-deleted", "key-deleted"]


@pytest.mark.parametrize("fault", FAULTS)
def test_one_unusable_witness_does_not_stop_a_2_of_3_ledger(home, cli, fault):
    kind, reason = _break_witness(home, "w3", fault)
    code, _out, err = cli("note", "still written", "--home", home)
    assert (code, err) == (0, "")
    with Ledger.open(home, readonly=True) as led:
        st = led.status()
        note = [e for e in led.entries(kind="note") if e.body["text"] == "still written"]
    assert len(note) == 1 and st["final_height"] == st["height"] == note[0].block
    w = {x["name"]: x for x in st["witnesses"]}
    assert w["w1"]["usable"] and w["w2"]["usable"] and "error" not in w["w1"]
    fix = " (`bubblechain witness rebuild w3`)" if kind == "replica" else ""
    assert (w["w3"]["usable"], w["w3"]["error"]) == (False, f"unusable: {reason}{fix}")
    hint = " (`bubblechain witness rebuild w3` rebuilds it)" if kind == "replica" else ""
    assert findings(home) == {(kind, "witness w3", f"unusable: {reason}{hint}")}
    code, out, _ = cli("verify", "--home", home)
    assert code == 1 and f"witness w3: unusable: {reason}" in out
    code, out, _ = cli("status", "--home", home)
    assert code == 0 and "unusable:" in out
    with Ledger.open(home) as led:  # a session with it open names it too
        assert led.status()["witnesses"][2]["error"] == f"unusable: {reason}"


def test_status_shows_a_dash_not_none_for_a_replica_it_cannot_read(home, cli):
    """A witness whose replica holds no readable head has no height or size: a dash, as
    for its cosigning time (the table said 'None'); --json keeps null."""
    _, reason = _break_witness(home, "w3", "replica-garbage")
    code, out, _ = cli("status", "--home", home)
    assert code == 0
    (row,) = [line.split(maxsplit=4) for line in out.splitlines() if line.startswith("w3 ")]
    problem = f"unusable: {reason} (`bubblechain witness rebuild w3`)"
    assert [cell.strip() for cell in row] == ["w3", "-", "-", "-", problem]
    assert "None" not in out
    code, out, _ = cli("status", "--home", home, "--json")
    w3 = json.loads(out)["witnesses"][2]
    assert (w3["height"], w3["size"]) == (None, None)


def test_below_quorum_of_usable_witnesses_refuses_to_write_naming_each(home, cli):
    _, r1 = _break_witness(home, "w1", "key-deleted")
    _, r3 = _break_witness(home, "w3", "replica-garbage")
    before = head_of(home / "ledger.db")
    code, _out, err = cli("note", "lost?", "--home", home)
    assert code == 1
    assert err.strip() == (
        f"error: cannot reach quorum 2 of 3: only 1 witness(es) can be opened; w1: {r1}; w3: {r3}"
    )
    assert head_of(home / "ledger.db") == before  # nothing appended that cannot be final


def test_a_witness_key_that_is_not_the_genesis_key_is_unusable(home):
    from bubblechain.crypto.keys import Identity

    key = home / "witnesses" / "w2" / "witness.key"
    key.unlink()
    Identity.generate("w2").save(key)
    reason = f"key file {key} is not the genesis key of witness w2"
    assert findings(home) == {("witness", "witness w2", f"unusable: {reason}")}
    with Ledger.open(home) as led:
        led.append("note", {"text": "x"})
        led.flush(timeout=30)
        assert led.status()["witnesses"][1]["error"] == f"unusable: {reason}"


# -- 4. the artifacts a data.commit names ---------------------------------------------------


@pytest.fixture
def committed(home):
    """A dataset of 3 partitions committed on the ledger: (home, commit body)."""
    import pyarrow as pa

    from bubblechain.data.ledger import commit_dataset

    table = pa.table({"id": list(range(300)), "x": [i * 0.5 for i in range(300)]})
    with Ledger.open(home) as led:
        body = commit_dataset(led, table, "id", name="toy", partition_rows=128)
    assert verify_home(home).ok
    return home, body


def _artifact(home: Path, digest: str) -> Path:
    return home / "artifacts" / digest[:2] / digest[2:]


def _leaves(home: Path, body: dict) -> list[str]:
    import json

    index = json.loads(_artifact(home, body["partitions"]).read_bytes())
    return [p["leaves"] for p in index["partitions"]]


def test_verify_reports_a_deleted_and_a_corrupted_leaves_artifact(committed, cli):
    home, body = committed
    leaves = _leaves(home, body)
    assert len(leaves) == 3
    _artifact(home, leaves[0]).unlink()
    victim = _artifact(home, leaves[2])
    victim.chmod(0o644)
    raw = bytearray(victim.read_bytes())
    raw[-1] ^= 1  # one bit of the last leaf hash
    victim.write_bytes(bytes(raw))
    where = f"message {body['index']} (data.commit toy v1)"
    assert findings(home) == {
        (
            "artifact",
            where,
            f"leaves of partition 0 ({leaves[0]}) is missing from the artifact store",
        ),
        ("artifact", where, f"leaves of partition 2 ({leaves[2]}) does not match its hash"),
    }
    code, out, _ = cli("verify", "--home", home)
    assert code == 1 and f"{where}: leaves of partition 0 ({leaves[0]})" in out


def test_verify_reports_a_deleted_partition_index(committed):
    home, body = committed
    _artifact(home, body["partitions"]).unlink()
    where = f"message {body['index']} (data.commit toy v1)"
    assert findings(home) == {
        (
            "artifact",
            where,
            f"partition index {body['partitions']} is missing from the artifact store",
        )
    }


def test_a_leaves_artifact_shared_by_two_versions_is_hashed_once_and_reported_on_each(
    committed, monkeypatch
):
    import pyarrow as pa

    from bubblechain.artifacts import ArtifactStore
    from bubblechain.data.ledger import commit_dataset

    home, v1 = committed
    table = pa.table({"id": list(range(300)), "x": [i * 0.5 for i in range(300)]})
    table = table.set_column(1, "x", pa.array([i * 0.5 for i in range(299)] + [-1.0]))
    with Ledger.open(home) as led:  # only the last partition changes
        v2 = commit_dataset(led, table, "id", name="toy", partition_rows=128)
    shared = _leaves(home, v1)[0]
    assert _leaves(home, v2)[0] == shared
    _artifact(home, shared).unlink()
    reads: list[str] = []
    get = ArtifactStore.get
    monkeypatch.setattr(ArtifactStore, "get", lambda s, d: reads.append(d) or get(s, d))
    detail = f"leaves of partition 0 ({shared}) is missing from the artifact store"
    assert findings(home) == {
        ("artifact", f"message {v1['index']} (data.commit toy v1)", detail),
        ("artifact", f"message {v2['index']} (data.commit toy v2)", detail),
    }
    assert reads.count(shared) == 1


def test_a_ledger_restored_behind_its_witnesses_refuses_to_append_at_once(home, cli):
    """The ledger file put back from an older copy: the witnesses hold a block it lost.
    Appending used to wait forever in silence; it now refuses at once, naming it."""
    backup = home.parent / "backup"
    backup.mkdir()
    for f in home.glob("ledger.db*"):
        shutil.copy2(f, backup / f.name)
    assert cli("note", "one", "--home", home)[0] == 0
    with Ledger.open(home, readonly=True) as led:
        lost = led.store.head().height
    for f in home.glob("ledger.db*"):
        f.unlink()
    for f in backup.iterdir():
        shutil.copy2(f, home / f.name)
    before = head_of(home / "ledger.db")
    code, _out, err = cli("note", "two", "--home", home)
    assert code == 1
    head = lost - 1
    reason = (
        f"it holds block {lost}, beyond this ledger's head {head}: the ledger lost blocks "
        "the witnesses cosigned (restored from an older copy?); `bubblechain verify` names them"
    )
    assert err.strip() == (
        f"error: block {head + 1} cannot reach quorum 2 of 3: "
        + "; ".join(f"{w}: {reason}" for w in ("w1", "w2", "w3"))
    )
    assert head_of(home / "ledger.db") == before
    assert ("replica", f"block {lost}") in {(f.kind, f.where) for f in verify_home(home).findings}
    code, out, _ = cli("status", "--home", home, "--json")  # said nothing was wrong
    assert code == 0 and all(
        w["error"].startswith(f"ahead: it holds block {lost}, beyond this ledger's head {head}")
        for w in json.loads(out)["witnesses"]
    )


def _replica(home: Path, name: str) -> Path:
    return home / "witnesses" / name / "replica.db"


def test_a_witness_head_with_a_malformed_cosignature_is_reported_not_a_crash(home, cli):
    """status and audit parsed a witness's head cosignature unguarded: a traceback."""
    db = _replica(home, "w3")
    sql(db, "UPDATE cosignatures SET line=replace(line, '— w3 ', '— w3 A')")
    code, out, err = cli("status", "--home", home, "--json")
    assert code == 0, err
    w3 = json.loads(out)["witnesses"][2]
    assert not w3["usable"] and w3["error"].startswith("corrupt head (")
    code, out, err = cli("audit", "--home", home, "--replay", "none", "--json")
    assert code == 1, err
    assert {"kind": "witness", "where": "witness w3"} in [
        {k: f[k] for k in ("kind", "where")} for f in json.loads(out)["findings"]
    ]


def test_a_corrupt_head_header_or_genesis_is_one_line_or_a_finding(home, cli):
    """Garbage where a block header or the genesis is stored: one line (exit 2) for the
    ledger's own file, a finding for a replica; never a traceback."""
    with Ledger.open(home, readonly=True) as led:
        head = led.store.head().height
    sql(_replica(home, "w2"), "UPDATE meta SET value=x'78' WHERE key='genesis'")
    code, out, err = cli("verify", "--home", home)
    assert code == 1 and "holds an unreadable genesis" in out, err
    sql(home / "ledger.db", "UPDATE blocks SET header='garbage' WHERE height=?", head)
    code, _out, err = cli("status", "--home", home)
    assert code == 2
    assert err.startswith(f"error: block {head}'s header in ") and len(err.splitlines()) == 1
    sql(home / "ledger.db", "UPDATE meta SET value=x'78' WHERE key='genesis'")
    code, out, err = cli("verify", "--home", home)  # checking it is verify's job: a finding
    assert (
        code == 1
        and f"{home / 'ledger.db'}: store {home / 'ledger.db'} holds an unreadable genesis"
        in " ".join(out.split())
    ), err
    for cmd in (["note", "x"], ["audit", "--replay", "none"], ["log"]):
        code, _out, err = cli(*cmd, "--home", home)
        assert code == 2 and "holds an unreadable genesis" in err, (cmd, err)
        assert len(err.strip().splitlines()) == 1


def test_audit_refuses_a_negative_seed_in_one_line(home, cli):
    code, _out, err = cli("audit", "--home", home, "--seed", "-5")
    assert (code, err.strip()) == (
        2,
        "error: --seed must be a whole number from 0 to 2**128-1, got -5",
    )


def test_a_replica_s_cached_role_or_artifact_table_edited_is_a_finding(home, cli):
    """verify compared only the keys of the cached nodes table and never the declared
    artifacts: a role changed in a replica (which then refused every job.start, with
    verify clean) or an artifact added to the ledger passed."""
    sql(_replica(home, "w1"), "UPDATE nodes SET role='worker' WHERE role='admin'")
    fake = bytes.fromhex("aa" * 32)
    sql(home / "ledger.db", "INSERT INTO artifacts(hash, idx) VALUES(?, 0)", fake)
    role = "stored role 'worker' but its registration gives 'admin'"
    assert findings(home) == {
        ("state", "witness w1, node admin", role),
        ("state", f"artifact {'aa' * 32}", "stored as declared, but no message names it"),
    }


def test_status_and_checkpoint_count_only_valid_cosignatures(home, cli):
    """The head block left with one valid cosignature and another block's line stored as
    a second: status called it final and checkpoint printed it below quorum."""
    with Ledger.open(home, readonly=True) as led:
        head = led.store.head().height
        prior = led.store.cosignatures(head - 1)["w2"]
    db = home / "ledger.db"
    sql(db, "DELETE FROM cosignatures WHERE height=? AND witness IN ('w2', 'w3')", head)
    sql(db, "INSERT INTO cosignatures(height, witness, line) VALUES(?, 'w2', ?)", head, prior)
    code, out, err = cli("status", "--home", home, "--json")
    assert code == 0, err
    assert json.loads(out)["final_height"] == head - 1
    code, out, err = cli("checkpoint", "--home", home)
    assert code == 0, err
    with Ledger.open(home, readonly=True) as led:
        assert out == led.checkpoint(head - 1)
    assert sum(line.startswith("— w") for line in out.splitlines()) >= 2
    assert verify_home(home).copies["ledger"].final_height == head - 1


def test_status_names_a_witness_left_behind(home, cli):
    """A replica whose cached state was edited refuses every later block; with no process
    appending, status used to show it a block behind with no problem at all."""
    sql(_replica(home, "w1"), "UPDATE senders SET seq=seq+5 WHERE name='admin'")
    assert cli("note", "refused by w1", "--home", home)[0] == 0  # w2 and w3 are a quorum
    code, out, _ = cli("status", "--home", home, "--json")
    st = json.loads(out)
    w1, w2 = st["witnesses"][0], st["witnesses"][1]
    assert code == 0 and "error" not in w2
    assert w1["error"] == (
        f"behind: it does not hold block {st['height']} of {st['height']}; the next append "
        "retries it, and `bubblechain verify` checks it"
    )


_AS_ROOT = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to drop to another user"
)


def _as_nobody(read) -> object:
    """``read()`` run as user nobody in a child, with the modules already loaded; its
    JSON result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(65534)
            os.setuid(65534)
            out = json.dumps(read())
        except BaseException as e:  # reported to the parent
            out = json.dumps(f"{type(e).__name__}: {e}")
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        got = json.loads(f.read())
    os.waitpid(pid, 0)
    return got


def _read_as_nobody(home: Path, read) -> object:
    """``read(copy)`` run as user nobody on a copy of ``home`` it may read but not write,
    the key files (0600) not even read: an auditor's account. Returns its JSON result."""
    import tempfile

    place = Path(tempfile.mkdtemp(prefix="bubblechain-ro-"))  # /tmp: reachable by nobody
    place.chmod(0o755)
    home = Path(shutil.copytree(home, place / "home"))
    for f in home.glob("ledger.db-*"):
        f.unlink()
    for d in [home, *home.rglob("*")]:
        if d.is_dir():
            d.chmod(0o555)
        elif d.suffix != ".key":
            d.chmod(0o444)

    got = _as_nobody(lambda: read(home))
    for d in [home, *home.rglob("*")]:
        d.chmod(0o755)
    shutil.rmtree(place)
    return got


@_AS_ROOT
def test_a_home_the_user_may_read_but_not_write_can_be_read(home):
    """An auditor's account with read access only: every reading command failed with
    'unreadable or corrupt: attempt to write a readonly database' (SQLite could not make
    the WAL's shared-memory file)."""

    def notes(copy: Path) -> list:
        with Ledger.open(copy, readonly=True) as led:
            return [e.body.get("text") for e in led.entries(kind="note")]

    assert _read_as_nobody(home, notes) == ["hello", "world"]


@_AS_ROOT
def test_a_reader_who_may_not_read_the_witness_keys_gets_no_findings_for_them(home):
    """verify and audit reported each witness as 'unusable' (3 findings, exit 1) to an
    auditor who may read the ledger but not the witnesses' private keys. The
    cosignatures are checked against the genesis keys either way; the key files are
    now named as not checked."""
    from bubblechain.audit import audit

    def check(copy: Path) -> dict:
        v, a = verify_home(copy), audit(copy)
        with Ledger.open(copy, readonly=True) as led:
            st = led.status()
        return {
            "verify": [str(f) for f in v.findings],
            "audit": [str(f) for f in a.findings],
            "unchecked": v.unchecked,
            "audit_unchecked": a.unchecked,
            "usable": [w["usable"] for w in st["witnesses"]],
        }

    got = _read_as_nobody(home, check)
    assert got["verify"] == got["audit"] == []
    assert got["usable"] == [True, True, True]
    assert got["unchecked"] == got["audit_unchecked"]
    assert [u.split(":")[0] for u in got["unchecked"]] == [
        "witness w1's key",
        "witness w2's key",
        "witness w3's key",
    ]
    assert all("Permission denied" in u for u in got["unchecked"])


@_AS_ROOT
@pytest.mark.parametrize("how", ["mode-0", "directory"])
def test_a_key_file_its_own_writer_may_not_read_is_a_finding(home, how):
    """'not checked' is for a reader who is not the home's writer: a key file made
    unreadable to the account that owns the home (chmod 000), or replaced by a
    directory, is a witness that cosigns nothing, and was hidden as 'not checked'."""
    import tempfile

    place = Path(tempfile.mkdtemp(prefix="bubblechain-own-"))
    place.chmod(0o755)
    copy = Path(shutil.copytree(home, place / "home"))
    key = copy / "witnesses" / "w1" / "witness.key"
    if how == "directory":
        key.unlink()
        key.mkdir()
        key.chmod(0)
    else:
        key.chmod(0)
    for p in [copy, *copy.rglob("*")]:
        os.chown(p, 65534, 65534)

    def check() -> dict:
        v = verify_home(copy)
        with Ledger.open(copy, readonly=True) as led:
            st = led.status()
        return {
            "verify": [str(f) for f in v.findings],
            "unchecked": v.unchecked,
            "usable": [w["usable"] for w in st["witnesses"]],
        }

    try:
        got = _as_nobody(check)
    finally:
        shutil.rmtree(place)
    assert isinstance(got, dict), got
    assert got["unchecked"] == []
    assert [f.split(": unusable: key file")[0] for f in got["verify"]] == ["witness w1"]
    assert got["usable"] == [False, True, True]
