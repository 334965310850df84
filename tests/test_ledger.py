"""The ledger's rules, finality and proofs, through the Python API."""

from __future__ import annotations

import base64
import fcntl
import os
import re
import sys
import threading
import time
from pathlib import Path

import pytest

from bubblechain import merkle
from bubblechain.crypto.keys import Identity
from bubblechain.crypto.note import Checkpoint, SignedNote
from bubblechain.errors import NotFinal, Rejected, UsageError, WitnessRefusal
from bubblechain.ledger import Ledger, Message, rules
from bubblechain.ledger.kinds import KindRule, register_kind
from bubblechain.ledger.sequencer import load_block
from bubblechain.ledger.store import Store
from bubblechain.ledger.verify import verify_home

register_kind("test.step", KindRule(needs_job=True))
register_kind("test.open", KindRule(opens_job=True))
register_kind("test.close", KindRule(closes_job=True))

H = "ab" * 32


@pytest.fixture
def led(home):
    with Ledger.open(home, block_size=16) as led:
        yield led


def worker(led: Ledger, name: str = "worker-1") -> Identity:
    ident = Identity.generate(name)
    led.register_node(ident.name, ident.public_key, "worker")
    return ident


def test_append_returns_id_and_index_and_flush_finalises(led):
    a = led.append("note", {"text": "first"})
    b = led.append("note", {"text": "second"})
    assert (a.index, b.index) == (1, 2)
    height = led.flush()
    st = led.status()
    assert st["final_height"] == height == st["height"]
    assert st["size"] == st["final_size"] == 3
    assert [e.body["text"] for e in led.entries(kind="note")] == ["first", "second"]
    assert led.entry(a.id).index == 1


def test_blocks_are_cut_by_count_and_all_witnesses_keep_up(home):
    with Ledger.open(home, block_size=16) as led:
        for i in range(100):
            led.append("note", {"text": str(i)})
        led.flush()
        st = led.status()
        assert st["final_size"] == st["size"] == 101  # a quorum has cosigned everything
    # closing lets the witness outside the quorum finish too
    with Ledger.open(home, readonly=True) as led:
        st = led.status()
    assert st["height"] >= 100 // 16  # genesis block + at least 6 full blocks
    assert {w["size"] for w in st["witnesses"]} == {101}
    assert verify_home(home).ok


def test_message_from_unregistered_sender_is_rejected(led):
    stranger = Identity.generate("stranger")
    with pytest.raises(Rejected, match="sender 'stranger' is not registered"):
        led.submit(Message.create(stranger, "note", {"text": "hi"}, seq=1))


def test_bad_signature_is_rejected(led):
    w = worker(led)
    m = Message.create(w, "note", {"text": "hi"}, seq=1)
    forged = Message.from_parts(m.payload, bytes(64))
    with pytest.raises(
        Rejected, match="signature does not verify under the key registered to 'worker-1'"
    ):
        led.submit(forged)
    impostor = Identity.generate("worker-1")  # same name, other key
    with pytest.raises(Rejected, match="signature does not verify"):
        led.submit(Message.create(impostor, "note", {"text": "hi"}, seq=1))


def test_duplicate_and_sequence_rules(led):
    w = worker(led)
    m1 = Message.create(w, "note", {"text": "one"}, seq=1)
    led.submit(m1)
    with pytest.raises(Rejected, match="duplicate"):
        led.submit(m1)
    led.flush()
    with pytest.raises(Rejected, match="duplicate"):  # also once it is committed
        led.submit(m1)
    with pytest.raises(Rejected, match="sequence 5 from 'worker-1' out of order \\(expected 2\\)"):
        led.submit(Message.create(w, "note", {"text": "gap"}, seq=5))


def test_bubble_state_continuity(led):
    w = worker(led)
    s1, s2, s3 = "11" * 32, "22" * 32, "33" * 32
    led.submit(Message.create(w, "note", {"text": "a"}, seq=1, bubble="b1", last=None, state=s1))
    led.submit(Message.create(w, "note", {"text": "b"}, seq=2, bubble="b1", last=s1, state=s2))
    with pytest.raises(Rejected, match=f"state discontinuity in bubble 'b1': last_state {s1}"):
        led.submit(Message.create(w, "note", {"text": "c"}, seq=3, bubble="b1", last=s1, state=s3))


def test_bubbles_are_read_from_the_store_not_loaded_at_open(home, monkeypatch):
    """A ledger gains ~100 bubbles per job: opening it must not load them all, and a
    bubble evicted from (or never in) memory is still checked from the store."""
    monkeypatch.setattr(rules, "BUBBLE_CACHE", 2)
    s1, s2, s3 = "11" * 32, "22" * 32, "33" * 32
    with Ledger.open(home, block_size=4) as led:
        w = worker(led)
        for i in range(6):  # more bubbles than the cache holds, in several blocks
            msg = Message.create(w, "note", {"text": str(i)}, seq=i + 1, bubble=f"b{i}", state=s1)
            led.submit(msg)
        led.flush()
        led.append("note", {"text": "the next block moves what is committed to the cache"})
        led.flush()
        assert len(led.sequencer.state.bubble_table()) == 2  # b0 was evicted
        with pytest.raises(Rejected, match=f"state discontinuity in bubble 'b0': last_state {s2}"):
            led.submit(
                Message.create(w, "note", {"text": "x"}, seq=7, bubble="b0", last=s2, state=s3)
            )
        led.submit(Message.create(w, "note", {"text": "x"}, seq=7, bubble="b0", last=s1, state=s2))
        led.flush()
    with Ledger.open(home) as led:
        assert led.sequencer.state.bubble_table() == {}  # nothing loaded at open
        other = worker(led, "worker-2")
        with pytest.raises(Rejected, match="bubble 'b1' belongs to 'worker-1', not 'worker-2'"):
            led.submit(
                Message.create(other, "note", {"text": "x"}, seq=1, bubble="b1", last=s1, state=s2)
            )
        with pytest.raises(Rejected, match=f"state discontinuity in bubble 'b0': last_state {s1}"):
            led.submit(
                Message.create(w, "note", {"text": "x"}, seq=8, bubble="b0", last=s1, state=s3)
            )
        led.submit(Message.create(other, "note", {"text": "x"}, seq=1, bubble="b9", state=s1))
        led.flush()
    assert verify_home(home).ok  # every replica's stored bubbles match a replay
    # A compromised sequencer lets the discontinuity through: the witnesses, which
    # also hold no bubbles in memory after opening, find b0 in their replicas.
    led = Ledger.open(home)
    led.sequencer.state.check = lambda m, verify_sig=True: None
    led.submit(Message.create(w, "note", {"text": "x"}, seq=8, bubble="b0", last=s1, state=s3))
    with pytest.raises(NotFinal, match=f"state discontinuity in bubble 'b0': last_state {s1}"):
        led.flush()
    with pytest.raises(NotFinal):
        led.close()


def test_loading_a_block_reads_its_rows_not_the_whole_log(home):
    """A witness that falls behind is sent each missing block by `load_block`, as is one
    being rebuilt: it scanned every message of the log for each block (~90 ms a block
    on a 170,000-message ledger). The work must not grow with the log."""

    def steps(height: int) -> int:
        """SQLite steps of loading a block, on a connection of its own: a progress handler
        on the sequencer's, which its writer thread uses too, can deadlock the two."""
        count = [0]

        def tick() -> int:
            count[0] += 1
            return 0

        store = Store.open(home / "ledger.db", readonly=True)
        try:
            store.con.set_progress_handler(tick, 100)
            assert load_block(store, height).height == height
        finally:
            store.close()
        return count[0]

    def append(n: int) -> None:
        with Ledger.open(home, block_size=5) as led:
            for i in range(n):
                led.append("note", {"text": f"{i}"})

    append(10)
    short = steps(2)
    append(400)
    assert steps(2) <= short + 2


def test_inputs_must_be_known(led):
    with pytest.raises(Rejected, match=f"input {H} is neither a message nor an artifact"):
        led.append("note", {"text": "x"}, inputs=[H])
    a = led.append("note", {"text": "declares"}, outputs=[H])
    led.append("note", {"text": "uses artifact"}, inputs=[H])
    led.append("note", {"text": "uses message"}, inputs=[a.id])
    led.flush()
    led.append("note", {"text": "after commit"}, inputs=[H, a.id])
    led.flush()


def test_job_binding(led):
    with pytest.raises(Rejected, match="names job 'j1', which is not open"):
        led.append("test.step", {}, job="j1")
    led.append("test.open", {}, job="j1")
    with pytest.raises(Rejected, match="must open a new job"):
        led.append("test.open", {}, job="j1")
    led.append("test.step", {}, job="j1")
    led.append("test.close", {}, job="j1")
    with pytest.raises(Rejected, match="not open"):
        led.append("test.step", {}, job="j1")


def test_admin_only_kinds(led):
    w = worker(led)
    body = {"name": "evil", "key": base64.b64encode(bytes(32)).decode(), "role": "worker"}
    with pytest.raises(Rejected, match=r"node\.register must be signed by the admin"):
        led.submit(Message.create(w, "node.register", body, seq=1))
    with pytest.raises(Rejected, match=r"unknown message kind 'no\.such'"):
        led.append("no.such", {})


def test_inclusion_and_consistency_proofs_verify_against_checkpoints(led):
    ids = [led.append("note", {"text": str(i)}) for i in range(40)]
    led.flush()
    cp1 = Checkpoint.parse(SignedNote.parse(led.checkpoint()).body)
    for a in ids[::7]:
        p = led.inclusion_proof(a.index)
        assert p["size"] == cp1.size and p["root"] == cp1.root.hex()
        entry = led.entry(a.id).message.entry
        assert p["leaf_hash"] == merkle.leaf_hash(entry).hex()
        merkle.verify_inclusion(
            merkle.leaf_hash(entry),
            a.index,
            p["size"],
            [bytes.fromhex(h) for h in p["proof"]],
            cp1.root,
        )
    for i in range(30):
        led.append("note", {"text": f"more {i}"})
    led.flush()
    cp2 = Checkpoint.parse(SignedNote.parse(led.checkpoint()).body)
    c = led.consistency_proof(cp1.size)
    merkle.verify_consistency(
        cp1.size, cp2.size, [bytes.fromhex(h) for h in c["proof"]], cp1.root, cp2.root
    )
    with pytest.raises(UsageError, match="not in a log"):
        led.inclusion_proof(10_000)


def test_witness_refuses_to_cosign_a_rival_block_and_keeps_evidence(led):
    led.append("note", {"text": "real"})
    led.flush()
    head = led.store.head()
    block = load_block(led.store, head.height)
    # The sequencer's key signs a different block at the same height (an equivocation).
    seq_key = Identity.load(led.home.key("sequencer"))
    from bubblechain.crypto.note import sign_note
    from bubblechain.ledger.block import checkpoint_for, header_hash, make_header

    rival_msg = Message.create(led.admin, "note", {"text": "rival"}, seq=block.messages[0].seq)
    tree = merkle.CompactTree()
    tree.extend(led.store.leaves(stop=block.first))
    tree.append(rival_msg.leaf)
    prev = led.store.block(head.height - 1).hash
    header = make_header(head.height, prev, block.first, 1, tree.root(), 0)
    hh = header_hash(header)
    body = checkpoint_for(led.genesis.origin, tree.size, tree.root(), head.height, hh).body()
    rival = type(block)(
        head.height, header, hh, SignedNote(body, (sign_note(body, seq_key),)), (rival_msg,)
    )
    w1 = led.sequencer.links[0].witness
    with pytest.raises(WitnessRefusal, match="equivocation: block"):
        w1.add_block(rival)
    ((_, reason, evidence),) = w1.store.evidence()
    assert "equivocation" in reason and "rival" not in evidence and body.decode() in evidence
    # the witness still re-serves its cosignature for the real block
    assert w1.add_block(block).line() == w1.store.cosignatures(head.height)["w1"]


def test_quorum_unreachable_then_recovered(home):
    with Ledger.open(home) as led:
        down = {"w2", "w3"}
        for link in led.sequencer.links:
            real = link.witness.add_block

            def flaky(block, real=real, name=link.witness.name):
                if name in down:
                    raise ConnectionError(f"{name} unreachable")
                return real(block)

            link.witness.add_block = flaky
        led.append("note", {"text": "stuck"})
        with pytest.raises(NotFinal, match="timed out waiting for block 1 to be final"):
            led.flush(timeout=1.5)
        errors = {w["name"]: w.get("error") for w in led.status()["witnesses"]}
        assert errors == {
            "w1": None,
            "w2": "ConnectionError: w2 unreachable",
            "w3": "ConnectionError: w3 unreachable",
        }
        down.discard("w2")  # one witness comes back: quorum 2 of 3 is reached
        led.flush(timeout=30)
        assert led.status()["final_height"] == 1


def test_refusals_beyond_the_quorum_margin_fail_fast(home):
    led = Ledger.open(home)
    for link in led.sequencer.links[1:]:

        def refuse(block, name=link.witness.name):
            raise WitnessRefusal(name, "policy says no")

        link.witness.add_block = refuse
    led.append("note", {"text": "refused"})
    with pytest.raises(NotFinal, match="cannot reach quorum 2 of 3: w2: policy says no"):
        led.flush(timeout=30)
    with pytest.raises(NotFinal):  # closing says so too, and still releases the home
        led.close()
    Ledger.open(home, lock_timeout=0.5).close()


def test_witness_rejects_a_message_the_sequencer_should_not_have_accepted(led):
    w1 = led.sequencer.links[0].witness
    led.append("note", {"text": "ok"})
    led.flush()
    block = load_block(led.store, led.store.head().height)
    bad = Message.from_parts(block.messages[0].payload, bytes(64))
    forged = type(block)(block.height + 1, block.header, block.hash, block.checkpoint, (bad,))
    with pytest.raises(WitnessRefusal):
        w1.add_block(forged)


def test_open_errors_are_clear(tmp_path):
    with pytest.raises(UsageError, match=f"no ledger at {tmp_path / 'nope'}"):
        Ledger.open(tmp_path / "nope")


def test_init_refuses_to_overwrite(home):
    with pytest.raises(UsageError, match="refusing to overwrite"):
        Ledger.init(home)


def test_home_is_locked_against_a_second_sequencer(home):
    with Ledger.open(home), pytest.raises(UsageError, match="in use by another process"):
        Ledger.open(home, lock_timeout=0.2)


def test_verify_api_returns_findings(led):
    led.append("note", {"text": "x"})
    led.flush()
    assert led.verify() == []
    led.store.con.execute("DELETE FROM cosignatures WHERE height=1 AND witness='w3'")
    led.store.con.execute("UPDATE cosignatures SET line='garbage' WHERE height=1 AND witness='w2'")
    (f,) = led.verify()
    assert (f.kind, f.where) == ("cosignature", "block 1")
    assert f.detail.startswith("cosignature by w2 is malformed")


def test_a_bubble_belongs_to_its_first_sender(led):
    a, b = worker(led, "worker-a"), worker(led, "worker-b")
    s1, s2 = "11" * 32, "22" * 32
    led.submit(Message.create(a, "note", {"text": "x"}, seq=1, bubble="job/c", state=s1))
    with pytest.raises(Rejected, match="bubble 'job/c' belongs to 'worker-a', not 'worker-b'"):
        led.submit(
            Message.create(b, "note", {"text": "y"}, seq=1, bubble="job/c", last=s1, state=s2)
        )


def test_roles_are_enforced_per_kind(led):
    w = worker(led)
    body = {"name": "toy", "root": "00" * 32, "rows": 0, "schema_hash": "00" * 32,
            "partitions": "00" * 32, "partition_rows": 1,
            "schema": {"id_column": "id", "columns": []}}  # fmt: skip
    with pytest.raises(Rejected, match=r"data\.commit needs a node with role admin or data-owner"):
        led.submit(Message.create(w, "data.commit", body, seq=1))
    led.append("data.commit", body)  # the admin may


def test_only_state_update_moves_a_coordinator_bubble(led):
    coord = Identity.generate("coordinator")
    led.register_node(coord.name, coord.public_key, "coordinator")
    d = led.append("note", {"text": "data"})
    start = {
        "algorithm": "logistic",
        "hyper": {},
        "dataset": {"commit": d.id, "name": "d"},
        "partitions": 1,
        "plan": [[0, 10]],
        "features": ["x"],
        "seed": 0,
    }
    p0, p1 = "aa" * 32, "bb" * 32
    led.submit(
        Message.create(
            coord, "job.start", start, seq=1, job="J", bubble="J/c", state=p0, outputs=[p0]
        )
    )
    with pytest.raises(Rejected, match="note may not change the state of coordinator bubble"):
        led.submit(
            Message.create(
                coord, "note", {"text": "swap"}, seq=2, job="J", bubble="J/c", last=p0, state=p1
            )
        )


def test_job_end_must_name_an_open_job(led):
    with pytest.raises(Rejected, match=r"job\.end names job None, which is not open"):
        led.append("job.end", {"status": "failed"})


def test_cosignatures_stored_before_a_restart_still_count(tmp_path):
    home = tmp_path / "h"
    Ledger.init(home, witnesses=2, quorum=2).close()
    led = Ledger.open(home)
    w2 = led.sequencer.links[1].witness
    real = w2.add_block
    w2.add_block = lambda block: (_ for _ in ()).throw(ConnectionError("w2 down"))
    led.append("note", {"text": "half cosigned"})
    led.sequencer.seal()
    deadline = time.monotonic() + 10
    while "w1" not in led.store.cosignatures(1) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert led.store.cosignatures(1).keys() == {"w1"}
    led._release()  # the process stops here, block 1 one cosignature short
    del real
    with Ledger.open(home) as led:  # w2 is back
        led.flush(timeout=30)
        assert led.status()["final_height"] == 1


def test_a_minority_quorum_is_refused(tmp_path):
    with pytest.raises(UsageError, match="must be a majority of the 3 witnesses"):
        Ledger.init(tmp_path / "h", witnesses=3, quorum=1)


def test_deeply_nested_payloads_are_rejected_not_crashed():
    payload = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(Rejected, match="nested too deeply"):
        Message.from_parts(payload, bytes(64))


def test_a_waiting_writer_is_told_who_holds_the_home(home):
    """The holder writes who it is into the lock; a waiting opener is told once, after a
    second, and gets the lock when the holder closes."""
    first = Ledger.open(home)
    lock = home / "ledger.lock"
    assert lock.read_text().startswith(f"pid {os.getpid()} since ")
    told: list[tuple[str, float]] = []
    closer = threading.Timer(1.5, first.close)
    closer.start()
    try:
        with Ledger.open(
            home, lock_timeout=20, on_lock_wait=lambda who, wait: told.append((who, wait))
        ) as second:
            assert second.append("note", {"text": "after the wait"}).index > 0
    finally:
        closer.join()
    ((who, wait),) = told
    assert who.startswith(f"another process (pid {os.getpid()} since ") and wait == 20
    assert lock.read_text() == ""  # released: nobody named as holder any more


def test_the_holder_is_named_on_one_line(home, monkeypatch):
    """The holder's command line may hold a newline (a note's text): it is escaped, so the
    waiting notice and the error stay one line each."""
    monkeypatch.setattr(sys, "argv", ["/venv/bin/bubblechain", "note", "two\nlines\x1b[31m"])
    with Ledger.open(home), pytest.raises(UsageError) as e:
        Ledger.open(home, lock_timeout=0.1)
    message = str(e.value)
    assert "\n" not in message and "\x1b" not in message
    assert "Z: bubblechain note 'two\\nlines\\x1b[31m'); gave up after 0.1 s" in message


def test_a_readers_probe_does_not_fail_a_writer_with_no_wait(home, monkeypatch):
    """Reading commands probe the lock (who appends?) by taking it for an instant; a writer
    with BUBBLECHAIN_LOCK_WAIT=0 that asked at that instant failed with 'in use'."""
    monkeypatch.setenv("BUBBLECHAIN_LOCK_WAIT", "0")
    fd = os.open(home / "ledger.lock", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a probe, held a little long
    released = threading.Timer(0.03, lambda: (fcntl.flock(fd, fcntl.LOCK_UN), os.close(fd)))
    released.start()
    try:
        with Ledger.open(home) as led:
            assert led.append("note", {"text": "not failed"}).index > 0
    finally:
        released.join()


def test_a_bad_lock_wait_builds_no_home(tmp_path, monkeypatch):
    monkeypatch.setenv("BUBBLECHAIN_LOCK_WAIT", "soon")
    with pytest.raises(UsageError, match="BUBBLECHAIN_LOCK_WAIT must be a number"):
        Ledger.init(tmp_path / "h")
    assert not (tmp_path / "h").exists()


def test_lock_wait_comes_from_the_environment(home, monkeypatch):
    with Ledger.open(home):
        monkeypatch.setenv("BUBBLECHAIN_LOCK_WAIT", "0.2")
        with pytest.raises(UsageError) as e:
            Ledger.open(home)
        assert f"in use by another process (pid {os.getpid()} since " in str(e.value)
        assert "gave up after 0.2 s" in str(e.value)
        for bad in ("soon", "-1", "inf", "nan"):
            monkeypatch.setenv("BUBBLECHAIN_LOCK_WAIT", bad)
            with pytest.raises(
                UsageError,
                match=f"BUBBLECHAIN_LOCK_WAIT must be a number of seconds >= 0, got '{bad}'",
            ):
                Ledger.open(home)


def test_closing_does_not_wait_out_the_block_delay(home):
    with Ledger.open(home, block_delay=120) as led:
        led.append("note", {"text": "x"})
        led.flush()
        t = time.monotonic()
    assert time.monotonic() - t < 10  # the sealer used to sleep through half the delay


def test_the_writer_stops_at_close_even_right_behind_a_cosignature(led):
    """A cosignature and the close marker queued together: the writer used to take the
    marker while batching cosignatures, lose it, and hold `close` up for 30 s."""
    from bubblechain.crypto.note import NoteSignature

    height = led.flush()
    seq = led.sequencer
    name, line = next(iter(seq.store.cosignatures(height).items()))
    writer = seq._threads[0]
    with seq._writer_q.mutex:  # both in the queue before the writer wakes
        seq._writer_q.queue.extend([(height, name, NoteSignature.parse_line(line)), None])
        seq._writer_q.not_empty.notify()
    writer.join(timeout=10)
    assert not writer.is_alive()


APPEND_UNTIL_TOLD = """
import os, sys, time
from bubblechain.ledger import Ledger
end = time.monotonic() + 300  # a test that died never tells it
with Ledger.open(sys.argv[1], block_size=5, block_delay=0.002) as led:
    i = 0
    while not os.path.exists(sys.argv[2]) and time.monotonic() < end:
        led.append("note", {"text": f"n{i}"})
        i += 1
        if i == 20:
            led.flush()
            open(sys.argv[2] + ".ready", "w").close()
"""
"""A writer appending notes in small blocks until the file sys.argv[2] exists; it makes
sys.argv[2] + ".ready" once its first blocks are final."""


def start_appending(home: Path, stop: Path):
    """The writer of `APPEND_UNTIL_TOLD`, once it appends."""
    import subprocess

    writer = subprocess.Popen([sys.executable, "-c", APPEND_UNTIL_TOLD, str(home), str(stop)])
    ready = Path(str(stop) + ".ready")
    deadline = time.monotonic() + 60
    while not ready.exists() and writer.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if not ready.exists():
        writer.kill()
        raise AssertionError("the writer never started appending")
    return writer


def test_verify_while_another_process_appends_finds_nothing(home):
    """verify reads each copy as one snapshot: run while a writer appends, it used to
    report dozens of false findings (messages "not covered by any block", wrong
    sequence numbers, a cached tree ahead of its head block)."""

    stop = home.parent / "stop"
    writer = start_appending(home, stop)
    try:
        runs = []
        for _ in range(4):
            runs.append(verify_home(home))
            assert writer.poll() is None, "the writer stopped before verify ran 4 times"
        assert runs[-1].copies["ledger"].size > runs[0].copies["ledger"].size
    finally:
        stop.touch()
        writer.wait(timeout=120)
    assert writer.returncode == 0
    assert [str(f) for r in runs for f in r.findings] == []
    assert verify_home(home).ok


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"source": 5}, "body field 'source' must be a path or URL"),
        ({"root": "AB" * 32}, "body field 'root' must be a lowercase hex SHA-256 hash"),
        ({"rows": -1}, "body field 'rows' must be a non-negative integer"),
        ({"name": ""}, "data.commit name must not be empty"),
        ({"version": "2"}, "body field 'version' must be a version number"),
        ({"partitions": None}, "body field 'partitions' must be a lowercase hex SHA-256"),
        ({"partition_rows": "2"}, "body field 'partition_rows' must be a non-negative"),
        ({"schema": {"columns": []}}, "data.commit schema must name its id column"),
    ],
)
def test_a_data_commit_whose_fields_readers_cannot_use_is_rejected(led, body, error):
    """Signed by the admin and well formed, but with a field of the wrong type: it used to
    be accepted and then crash `data list` and `audit --data` (TypeError)."""
    good = {"name": "d", "root": "ab" * 32, "rows": 3, "schema_hash": "cd" * 32,
            "partitions": "ef" * 32, "partition_rows": 2,
            "schema": {"id_column": "id", "columns": []}}  # fmt: skip
    led.append("data.commit", good)
    with pytest.raises(Rejected, match=re.escape(error)):
        led.append("data.commit", {**good, **body})


@pytest.mark.parametrize(
    ("kind", "body", "error"),
    [
        ("model.final", {"model_hash": ["a"]}, "'model_hash' must be a lowercase hex"),
        ("model.final", {"model_hash": H, "value": "0.9"}, "'value' must be a number"),
        ("model.final", {"model_hash": H, "metric": "r2"}, "names a metric and its value"),
        ("job.end", {"status": "ok"}, "job.end status must be 'succeeded' or 'failed'"),
        ("job.end", {"status": "failed", "reason": 3}, "'reason' must be text"),
        ("task.retry", {"partition": "0", "attempt": 1}, "'partition' must be a non-negative"),
    ],
)
def test_training_kinds_refuse_fields_readers_cannot_use(kind, body, error):
    """The rule every validating node applies (`jobs` and `audit` crashed on these)."""
    from bubblechain.ledger.kinds import KINDS

    with pytest.raises(Rejected, match=re.escape(error)):
        KINDS[kind].check_body(body)


def test_a_signal_inside_a_block_cut_is_raised_after_it_and_the_ledger_goes_on(home, monkeypatch):
    """SIGTERM landing while a block is cut (between signing its checkpoint and queueing it)
    used to leave the tree, the state and the heights out of step: no later block could
    be cosigned. It now ends the call once the block is whole."""
    import signal

    from bubblechain.cli.main import _on_signal
    from bubblechain.errors import Terminated
    from bubblechain.ledger import sequencer

    real_sign = sequencer.sign_note

    def sign_then_signalled(body, identity):
        sig = real_sign(body, identity)
        os.kill(os.getpid(), signal.SIGTERM)  # its handler runs at the next bytecode
        return sig

    old = signal.signal(signal.SIGTERM, _on_signal)
    try:
        with Ledger.open(home) as led:
            led.append("note", {"text": "before"})
            monkeypatch.setattr(sequencer, "sign_note", sign_then_signalled)
            with pytest.raises(Terminated):
                led.seal()
            monkeypatch.setattr(sequencer, "sign_note", real_sign)
            led.flush(timeout=30)
            led.append("note", {"text": "after"})
            led.flush(timeout=30)
    finally:
        signal.signal(signal.SIGTERM, old)
    assert verify_home(home).ok
    with Ledger.open(home, readonly=True) as led:
        texts = [e.body["text"] for e in led.entries(kind="note")]
    assert texts[-2:] == ["before", "after"]
