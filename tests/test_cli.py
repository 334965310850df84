"""The command line as a user drives it: outputs, --json, exit codes, bad input."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import sqlite3

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli_process, tree_digest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rich.console import Console
from rich.table import Table

from bubblechain.cli.common import cell
from bubblechain.ledger import Ledger


def test_init_note_status_log_verify(tmp_path, cli):
    home = tmp_path / "h"
    code, out, _ = cli("init", "--home", home, "--witnesses", "4", "--quorum", "3", "--json")
    assert code == 0
    st = json.loads(out)
    assert [w["name"] for w in st["witnesses"]] == ["w1", "w2", "w3", "w4"]
    assert st["quorum"] == 3 and st["final_height"] == 0

    code, out, _ = cli("note", "model v3 approved by risk committee", "--home", home, "--json")
    assert code == 0
    note = json.loads(out)
    assert note["index"] == 1 and note["block"] == note["final_height"] == 1

    code, out, _ = cli("status", "--home", home, "--json")
    st = json.loads(out)
    assert (st["height"], st["size"], st["final_height"], st["final_size"]) == (1, 2, 1, 2)
    assert {(w["height"], w["size"]) for w in st["witnesses"]} == {(1, 2)}

    code, out, _ = cli("log", "--home", home, "--kind", "note", "--json")
    (entry,) = json.loads(out)
    assert entry["body"] == {"text": "model v3 approved by risk committee"}
    assert entry["id"] == note["id"] and entry["sender"] == "admin"

    code, out, _ = cli("verify", "--home", home)
    assert code == 0 and "ledger verified: 2 messages in 2 blocks" in out


def test_log_kind_unknown_is_refused_and_a_kind_without_messages_says_so(home, cli, monkeypatch):
    """Both printed an empty table header: a typo looked like a ledger without messages."""
    from bubblechain.ledger.kinds import KINDS

    for k in [k for k in KINDS if k.startswith("test.")]:  # kinds other tests declared
        monkeypatch.delitem(KINDS, k)
    code, out, err = cli("log", "--home", home, "--kind", "nosuch")
    assert (code, out) == (2, "")
    assert err == (
        "error: --kind must be one of the message kinds (genesis, node.register, note, "
        "data.commit, job.start, task.result, task.refused, task.retry, state.update, "
        "model.final, job.end), not 'nosuch'\n"
    )
    assert cli("log", "--home", home, "--kind", "nosuch", "--json")[:2] == (2, "")
    assert cli("log", "--home", home, "--kind", "job.start") == (0, "no job.start messages\n", "")
    assert cli("log", "--home", home, "--kind", "job.start", "--json") == (0, "[]\n", "")


def test_home_from_environment(tmp_path, cli):
    env = {"BUBBLECHAIN_HOME": str(tmp_path / "env-home")}
    assert cli("init", env=env)[0] == 0
    _code, out, _ = cli("status", "--json", env=env)
    assert json.loads(out)["home"] == str(tmp_path / "env-home")


def test_default_home_is_dot_bubblechain(tmp_path):
    r = run_cli_process("init", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / ".bubblechain" / "genesis.json").is_file()


def _c2sp_verify(note_text: str, vkeys: list[str]) -> set[str]:
    """A small, independent signed-note verifier (pyca/cryptography, straight from the
    C2SP spec): returns the names whose signatures verify."""
    body, sigs = note_text.rsplit("\n\n", 1)
    body = (body + "\n").encode()
    verified = set()
    keys = {}
    for v in vkeys:
        name, kid, b64 = v.split("+", 2)
        raw = base64.b64decode(b64)
        assert hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4].hex() == kid
        keys[(name, bytes.fromhex(kid))] = raw
    for line in sigs.rstrip("\n").split("\n"):
        dash, name, b64 = line.split(" ")
        assert dash == "—"
        raw = base64.b64decode(b64)
        key = keys.get((name, raw[:4]))
        if key is None:
            continue
        pub = Ed25519PublicKey.from_public_bytes(key[1:])
        try:
            if key[0] == 0x01:
                pub.verify(raw[4:], body)
            elif key[0] == 0x04:
                ts = int.from_bytes(raw[4:12], "big")
                pub.verify(raw[12:], b"cosignature/v1\ntime %d\n" % ts + body)
            verified.add(name)
        except InvalidSignature:
            pass
    return verified


def test_checkpoint_verifies_with_only_the_printed_vkeys(home, cli):
    cli("note", "hello", "--home", home)
    code, checkpoint, _ = cli("checkpoint", "--home", home)
    assert code == 0
    code, keys, _ = cli("keys", "--home", home)
    vkeys = keys.split()
    assert len(vkeys) == 4 and vkeys[1].startswith("w1+")
    origin = checkpoint.split("\n")[0]
    assert vkeys[0].startswith(origin + "+")
    assert _c2sp_verify(checkpoint, vkeys) == {origin, "w1", "w2", "w3"}
    assert checkpoint.split("\n")[1] == "2"  # the log size line
    forged = checkpoint.replace("\n2\n", "\n3\n", 1)
    assert _c2sp_verify(forged, vkeys) == set()


def test_checkpoint_json_and_a_block_not_final_is_flagged(home, cli):
    cli("note", "hello", "--home", home)
    code, text, _ = cli("checkpoint", "--home", home)
    code, out, err = cli("checkpoint", "--home", home, "--json")
    doc = json.loads(out)
    assert code == 0 and err == "" and doc["final"] is True and doc["note"] == text
    con = sqlite3.connect(home / "ledger.db")
    con.execute(
        "DELETE FROM cosignatures WHERE height=? AND witness IN ('w1', 'w2')", (doc["height"],)
    )
    con.commit()
    con.close()
    code, out, err = cli("checkpoint", "--home", home, "--height", str(doc["height"]))
    assert code == 0 and out.startswith(text.split("\n")[0])
    assert f"warning: block {doc['height']} is not final" in err
    assert (
        json.loads(cli("checkpoint", "--home", home, "--height", str(doc["height"]), "--json")[1])[
            "final"
        ]
        is False
    )


def test_verify_json_reports_findings_with_exit_1_and_reopening_heals(home, cli):
    cli("note", "before", "--home", home)
    con = sqlite3.connect(home / "ledger.db")
    con.execute("DELETE FROM cosignatures WHERE height=0 AND witness IN ('w1', 'w2')")
    con.commit()
    con.close()
    code, out, _ = cli("verify", "--home", home, "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    assert report["findings"] == [
        {
            "kind": "quorum",
            "where": "block 0",
            "detail": "has 1 valid cosignatures of the 2 required, yet block 1 after it is final",
        }
    ]
    # The next sequencer run asks the witnesses again for the cosignatures it lacks.
    cli("note", "after", "--home", home)
    assert cli("verify", "--home", home)[0] == 0


def _corrupt(path):
    raw = bytearray(path.read_bytes())
    raw[0:16] = b"this is not sql!"
    path.write_bytes(bytes(raw))


def _truncate(path):
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 3])


@pytest.mark.parametrize("damage", [_corrupt, _truncate], ids=["corrupt", "truncated"])
@pytest.mark.parametrize("command", ["status", "log", "verify", "note"])
def test_damaged_store_is_one_clear_line_exit_2(home, damage, command):
    with Ledger.open(home) as led:  # enough pages for truncation to cut into the data
        for i in range(300):
            led.append("note", {"text": f"note {i}"})
    damage(home / "ledger.db")
    before = tree_digest(home)
    args = [command, "x"] if command == "note" else [command]
    r = run_cli_process(*args, "--home", home)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "ledger.db" in lines[0] and lines[0].startswith("error:")
    assert tree_digest(home) == before


def test_missing_key_file(home):
    (home / "keys" / "admin.key").unlink()
    before = tree_digest(home)
    r = run_cli_process("note", "x", "--home", home)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: key file {home / 'keys' / 'admin.key'} is missing"
    assert tree_digest(home) == before


@pytest.mark.parametrize("command", ["status", "log", "verify", "note", "checkpoint", "keys"])
def test_wrong_home(tmp_path, command):
    args = [command, "x"] if command == "note" else [command]
    r = run_cli_process(*args, "--home", tmp_path / "nowhere")
    assert r.returncode == 2
    assert r.stderr.strip() == (
        f"error: no ledger at {tmp_path / 'nowhere'}: run `bubblechain init` or pass --home"
    )
    assert not (tmp_path / "nowhere").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cli_process(*args, "--home", empty)
    assert r.returncode == 2 and "genesis.json is missing" in r.stderr
    assert list(empty.iterdir()) == []


def test_init_refuses_a_home_that_is_a_file(tmp_path, cli):
    """It said the file 'already exists and is not empty', as of a directory in use."""
    f = tmp_path / "afile"
    f.write_text("x")
    code, out, err = cli("init", "--home", f)
    assert (code, out) == (2, "")
    assert err == f"error: {f} is a file, not a directory; refusing to overwrite it\n"
    assert f.read_text() == "x"


def test_init_refuses_existing_home(home):
    before = tree_digest(home)
    r = run_cli_process("init", "--home", home)
    assert r.returncode == 2 and "refusing to overwrite" in r.stderr
    assert tree_digest(home) == before


def test_bad_quorum(tmp_path):
    r = run_cli_process("init", "--home", tmp_path / "h", "--witnesses", "2", "--quorum", "3")
    assert r.returncode == 2
    assert (
        r.stderr.strip() == "error: --quorum must be a majority of the 2 witnesses (2 to 2), got 3"
    )
    assert not (tmp_path / "h").exists()


def test_table_cells_of_data_are_shown_as_they_are_never_as_markup():
    reason = "columns [id, x] are missing [/x]\nsee [bold]the file[/bold]"
    t = Table("reason")
    t.add_row(cell(reason, 200))
    out = io.StringIO()
    Console(file=out, width=300).print(t)
    assert "columns [id, x] are missing [/x] see [bold]the file[/bold]" in out.getvalue()
    assert cell("x" * 100, 10).plain == "xxxxxxx..."


def test_error_lines_show_names_as_they_are_never_as_markup(cli, tmp_path):
    home = tmp_path / "h"
    assert cli("init", "--home", home)[0] == 0
    for name in ("[bold]churn", "churn[/x]"):
        code, out, err = cli(
            "train", "--data", name, "--target", "y", "--algorithm", "logistic", "--home", home
        )
        assert code == 2 and out == ""
        assert err.strip() == f"error: no dataset {name!r} is committed; committed: none"


def test_result_lines_show_paths_as_they_are_never_as_markup(cli, tmp_path):
    """A model path with [brackets] crashed the summary after the job had succeeded.

    The dataset name holds markup without a '/' (a name may not hold one).
    """
    data = tmp_path / "[bold]d.parquet"
    pq.write_table(
        pa.table({"id": [1, 2, 3, 4], "x": [0.5, 1.5, 2.0, 3.5], "y": [0, 1, 0, 1]}), data
    )
    home = tmp_path / "h"
    assert cli("init", "--home", home)[0] == 0
    code, out, _ = cli(
        "data", "commit", data, "--id-column", "id", "--name", "d[bold]x", "--home", home
    )
    assert code == 0 and "committed dataset d[bold]x version 1" in out
    code, out, _ = cli("data", "verify", data, "--name", "d[bold]x", "--home", home)
    assert code == 0 and f"✓ {data} is exactly dataset d[bold]x" in out
    model = tmp_path / "[/x].model"
    code, out, err = cli("train", "--data", "d[bold]x", "--target", "y", "--algorithm",
                         "naive-bayes", "--out", model, "--home", home)  # fmt: skip
    assert code == 0, err
    assert f"model {model}" in out
    preds = tmp_path / "[/x].csv"
    code, out, err = cli("predict", data, "--model", model, "--out", preds, "--home", home)
    assert code == 0 and f"written to {preds}" in out, err


def test_an_os_error_is_one_line_not_a_traceback(cli, tmp_path):
    """`init --home` on a path where nothing can be created raised a traceback."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, out, err = cli("init", "--home", afile / "home")
    assert code == 2 and out == ""
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert str(afile) in err


def test_init_records_the_artifact_store_so_any_directory_finds_it(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("init", "--home", "h", "--artifacts", "arts")[0] == 0
    assert json.loads((tmp_path / "h" / "home.json").read_text())["artifacts"] == str(
        tmp_path / "arts"
    )
    code, out, err = cli("init", "--home", "h2", "--artifacts", "memory://bc")
    assert code == 2 and out == "" and "an in-memory store is gone when the command ends" in err
    assert not (tmp_path / "h2").exists()
    # Refused before anything is built (a bad URL used to leave a home init then refused).
    (tmp_path / "afile").write_text("x")
    for where, says in [
        ("bogus://x", "error: artifact store bogus://x: Protocol not known: bogus"),
        ("afile", f"error: --artifacts {tmp_path / 'afile'} is not a directory"),
        *(
            [("/proc/x", "error: --artifacts /proc/x: cannot create files there")]
            if os.path.isdir("/proc/self")
            else []
        ),  # no files can be made under /proc
    ]:
        code, out, err = cli("init", "--home", "h3", "--artifacts", where)
        assert code == 2 and out == "" and err.startswith(says), err
        assert not (tmp_path / "h3").exists()


def test_a_command_kept_waiting_for_the_ledger_says_by_whom(home, cli):
    """Another process sequencing the home: the command says it is waiting, and for whom,
    then gives up with one line naming the holder; nothing is appended."""
    import os

    with Ledger.open(home) as holder:
        size = holder.sequencer.state.size
        code, out, err = cli("note", "queued", "--home", home, env={"BUBBLECHAIN_LOCK_WAIT": "1.3"})
        # reading commands never wait for the writer
        rc, _, rerr = cli("status", "--home", home, env={"BUBBLECHAIN_LOCK_WAIT": "0"})
        assert rc == 0 and rerr == ""
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    who = f"in use by another process (pid {os.getpid()} since "
    assert len(lines) == 2, err
    assert lines[0].startswith(f"waiting for ledger {home}: {who}")
    assert lines[0].endswith("giving up after 1.3 s (BUBBLECHAIN_LOCK_WAIT sets the wait)")
    assert (
        lines[1].startswith(f"error: ledger {home} is {who}") and "gave up after 1.3 s" in lines[1]
    )
    with Ledger.open(home, readonly=True) as led:
        assert led.store.size() == size


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "--data", "d", "--partitions", "abc"],
         "error: bubblechain train: Invalid value for '--partitions': "),
        (["data", "verify", "x.csv", "--nope"],
         "error: bubblechain data verify: No such option: --nope"),
        (["data", "commit"],
         "error: bubblechain data commit: Missing argument 'path' "
         "(see bubblechain data commit --help)"),
        (["bogus"], "error: bubblechain: No such command 'bogus' (see bubblechain --help)"),
    ],
)  # fmt: skip
def test_usage_errors_are_one_line(cli, args, expected):
    """An option that does not parse, an unknown option or command, a missing argument:
    one line naming the command and the input, exit 2 (typer would draw a boxed panel)."""
    code, out, err = cli(*args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(expected), err
    assert err.rstrip().endswith("--help)")


@pytest.mark.parametrize(
    ("args", "given"),
    [(["train", "--data", "d", "--partitions", "abc"], "(got 'abc')"),
     (["train", "--data", "d", "--partitions", "2.5"], "(got '2.5')"),
     (["audit", "--sample-rate", "half"], "(got 'half')")],
)  # fmt: skip
def test_a_value_that_does_not_parse_is_named(cli, args, given):
    code, _, err = cli(*args)
    assert code == 2 and f" {given} (see bubblechain " in err, err


def test_usage_error_from_the_console_script_and_bare_commands_show_help():
    r = run_cli_process("train", "--iterations", "many")
    assert r.returncode == 2 and r.stdout == ""
    prog = "python -m bubblechain"  # what `python -m` calls it; the script says bubblechain
    assert r.stderr.startswith(f"error: {prog} train: Invalid value for '--iterations'")
    assert r.stderr.count("\n") == 1
    for bare in (["data"], []):  # the help, once
        r = run_cli_process(*bare)
        assert r.returncode == 2 and r.stderr == ""
        assert r.stdout.count("Usage: python -m bubblechain") == 1, r.stdout
    r = run_cli_process("data", "verify", "x.csv", "--home")  # click gives no command here
    assert r.returncode == 2 and r.stderr == "error: Option '--home' requires an argument\n"
    r = run_cli_process("data", "verify", "--help")
    assert r.returncode == 0 and "--version" in r.stdout


@pytest.mark.parametrize("content", ["[]", "null", "3"])
def test_a_genesis_or_key_file_that_is_json_but_no_object_is_one_line(home, cli, content):
    """Valid JSON of another shape used to end in AttributeError tracebacks."""
    bad = home.parent / "g.json"
    bad.write_text(content)
    code, out, err = cli("audit", "--home", home, "--genesis", bad)
    assert code == 2 and out == "" and err.startswith(f"error: --genesis {bad} is not a genesis")
    key = home / "keys" / "admin.key"
    key.write_text(content)
    code, out, err = cli("note", "x", "--home", home)
    assert (code, out, err.strip()) == (
        2, "", f"error: key file {key} is malformed: not a bubblechain ed25519 key file"
    )  # fmt: skip


_SEED = "A" * 43 + "="  # 32 bytes of base64


@pytest.mark.parametrize(
    "content, says",
    [
        ("not json", "not JSON"),
        ('{"v":1,"type":"ed25519","name":"admin"}', "it has no field 'private'"),
        (f'{{"v":1,"type":"ed25519","private":"{_SEED}"}}', "it has no field 'name'"),
        (
            f'{{"v":1,"type":"ed25519","name":5,"private":"{_SEED}"}}',
            "its field 'name' is not text",
        ),
        ('{"v":1,"type":"ed25519","name":"admin","private":5}', "its field 'private' is not text"),
        (
            '{"v":1,"type":"ed25519","name":"admin","private":"@@@"}',
            "its private key is not base64",
        ),
        (
            '{"v":1,"type":"ed25519","name":"admin","private":"AAAA"}',
            "its private key is 3 bytes, not 32",
        ),
    ],
)
def test_a_malformed_key_file_says_what_is_wrong_in_words(home, cli, content, says):
    """It printed what Python said: "Expecting value: line 1 column 1 (char 0)", a
    KeyError's "'private'", "'int' object is not iterable", "Only base64 data is allowed",
    "The seed must be exactly 32 bytes long"."""
    key = home / "keys" / "admin.key"
    key.write_text(content)
    code, out, err = cli("note", "x", "--home", home)
    assert (code, out, err) == (2, "", f"error: key file {key} is malformed: {says}\n")


def test_a_checkpoint_height_beyond_any_integer_is_one_line(home, cli):
    code, out, err = cli("checkpoint", "--home", home, "--height", str(2**63))
    assert (code, out) == (2, "") and err.strip() == (
        f"error: block {2**63} is not in the ledger at {home}"
    )


def test_an_error_line_escapes_control_characters_of_what_it_names(home, cli, tmp_path):
    """A file name holding an escape sequence reached the terminal raw (ESC [31m)."""
    name = tmp_path / "\x1b[31mRED\nx.csv"
    code, out, err = cli("data", "commit", name, "--id-column", "id", "--home", home)
    assert code == 2 and out == ""
    assert "\x1b" not in err and err.count("\n") == 1
    assert "\\x1b[31mRED\\nx.csv" in err


def test_ctrl_c_while_the_command_still_imports_is_one_line_and_130(tmp_path):
    """SIGINT in the first half second (numpy and pyarrow being imported) printed a
    KeyboardInterrupt traceback from inside numpy."""
    import subprocess
    import sys

    script = (
        "import builtins\n"
        "real = builtins.__import__\n"
        "def interrupted(name, *a, **k):\n"
        "    if name == 'numpy':\n"
        "        raise KeyboardInterrupt\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = interrupted\n"
        "from bubblechain.cli import main\n"
        "main()\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", script, "status"], capture_output=True, text=True, timeout=120
    )
    assert (r.returncode, r.stdout, r.stderr) == (130, "", "error: interrupted\n")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks")
def test_a_forked_worker_leaves_ctrl_c_to_the_command(tmp_path):
    """A hashing worker forked from the command inherits its handler until its own start
    replaces it: Ctrl-C in that window raised in the worker, printing a traceback."""
    import signal

    from bubblechain.cli.main import _on_signal

    pid = os.fork()
    if pid == 0:
        try:
            _on_signal(signal.SIGINT, None)
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with pytest.raises(KeyboardInterrupt):  # in the command itself it interrupts
        _on_signal(signal.SIGINT, None)
