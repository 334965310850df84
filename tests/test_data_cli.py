"""`bubblechain data …` as a user drives it: commit, list, prove and verify, on real files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, rfc9162_verify, run_cli_process, tree_digest
from rich.console import Console

from bubblechain.cli import data_cmds
from bubblechain.data.ledger import commit_dataset, datasets, find_commitment
from bubblechain.errors import UsageError
from bubblechain.ledger import Ledger
from bubblechain.merkle import verify_inclusion

N = 40
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()


def table(n: int = N) -> pa.Table:
    rng = np.random.default_rng(3)
    return pa.table(
        {
            "id": np.arange(n, dtype=np.int64),
            "x": rng.random(n).round(4),
            "s": [f"customer-{i}" for i in range(n)],
        }
    )


@pytest.fixture
def train(tmp_path: Path) -> Path:
    path = tmp_path / "train.parquet"
    pq.write_table(table(), path)
    return path


def ok_json(result: tuple[int, str, str], code: int = 0):
    rc, out, err = result
    assert rc == code, (rc, out, err)
    return json.loads(out)


def one_line_error(result: tuple[int, str, str], code: int = 2) -> str:
    rc, out, err = result
    assert rc == code, (rc, out, err)
    assert out == ""
    line = err.strip()
    assert line.startswith("error: ") and "\n" not in line, err
    assert "Traceback" not in err
    return line


def reference_leaf(schema: dict, row: dict) -> str:
    """The row's leaf hash from the spec's own reference lines (docs/row-encoding.md)."""
    text = (REPO / "docs" / "row-encoding.md").read_text()
    block = re.search(r"<!-- reference-encoder -->\n```python\n(.*?)```", text, re.S)
    namespace: dict = {}
    exec(block.group(1), namespace)
    return namespace["leaf_hash"](schema, row)


# -- the happy path ------------------------------------------------------------------------------


def test_commit_list_prove_verify(home: Path, train: Path, cli) -> None:
    c = ok_json(cli("data", "commit", train, "--id-column", "id", "--home", home, "--json"))
    assert (c["name"], c["version"], c["rows"]) == ("train", 1, N)
    assert c["source"] == os.path.abspath(train) and len(c["root"]) == 64
    assert isinstance(c["id"], str) and c["index"] >= 1

    with Ledger.open(home, readonly=True) as led:
        (entry,) = led.entries(kind="data.commit")
        assert entry.id == c["id"] and entry.index == c["index"]
        assert entry.block <= led.final_height()  # final when the command returned
        assert entry.fields["outputs"] == [c["partitions"]]
        assert entry.body == {k: v for k, v in c.items() if k not in ("id", "index")}

    (listed,) = ok_json(cli("data", "list", "--home", home, "--json"))
    assert {k: listed[k] for k in ("name", "version", "rows", "root", "id", "source")} == {
        k: c[k] for k in ("name", "version", "rows", "root", "id", "source")
    }
    rc, out, _ = cli("data", "list", "--home", home)
    assert rc == 0 and "train" in out and os.path.abspath(train) in out

    p = ok_json(cli("data", "prove", train, "--row", "7", "--home", home, "--json"))
    assert set(p) == {"row", "index", "size", "leaf_hash", "proof", "root", "name", "version", "id"}
    assert (p["row"], p["index"], p["size"], p["root"]) == (7, 7, N, c["root"])
    assert (p["name"], p["version"], p["id"]) == ("train", 1, c["id"])  # the commit it is for
    proof = [bytes.fromhex(h) for h in p["proof"]]
    leaf, root = bytes.fromhex(p["leaf_hash"]), bytes.fromhex(p["root"])
    verify_inclusion(leaf, p["index"], p["size"], proof, root)
    assert rfc9162_verify(leaf, p["index"], p["size"], proof, root)
    row = table().slice(7, 1).to_pylist()[0]
    assert p["leaf_hash"] == reference_leaf(c["schema"], row)

    rc, out, err = cli("data", "verify", train, "--home", home)
    assert rc == 0 and "is exactly dataset train version 1" in out and err == ""
    v = ok_json(cli("data", "verify", train, "--home", home, "--json"))
    assert v["ok"] is True and v["changed"] == v["missing"] == v["added"] == []
    assert (v["name"], v["version"], v["root"]) == ("train", 1, c["root"])

    # The ledger itself still verifies with data commits on it.
    rc, out, _ = cli("verify", "--home", home)
    assert rc == 0 and "ledger verified" in out


def test_prove_string_ids_and_text_output(home: Path, tmp_path: Path, cli) -> None:
    path = tmp_path / "people.csv"
    path.write_text("key,age\nbob,41\nalice,37\ncarol,\n")
    c = ok_json(cli("data", "commit", path, "--id-column", "key", "--home", home, "--json"))
    assert c["name"] == "people" and c["rows"] == 3
    p = ok_json(cli("data", "prove", path, "--row", "bob", "--home", home, "--json"))
    assert (p["row"], p["index"]) == ("bob", 1)  # ids in order: alice, bob, carol
    verify_inclusion(
        bytes.fromhex(p["leaf_hash"]),
        1,
        3,
        [bytes.fromhex(h) for h in p["proof"]],
        bytes.fromhex(c["root"]),
    )
    rc, out, _ = cli("data", "prove", path, "--row", "carol", "--home", home)
    assert rc == 0 and "'carol' is leaf 2 of 3" in out and c["root"] in out


# -- tampering ---------------------------------------------------------------------------------


def test_tampered_file_names_the_rows(home: Path, train: Path, cli) -> None:
    ok_json(cli("data", "commit", train, "--id-column", "id", "--home", home, "--json"))
    t = table()
    x = t.column("x").to_pylist()
    x[3] += 1.0  # change one value
    t = t.set_column(1, "x", pa.array(x))
    keep = pa.array([i != 10 for i in range(N)])  # delete a row
    t = t.filter(keep)
    extra = pa.table({"id": [100], "x": [0.5], "s": ["new"]}).cast(t.schema)  # add a row
    pq.write_table(pa.concat_tables([t, extra]), train)

    v = ok_json(cli("data", "verify", train, "--home", home, "--json"), code=1)
    assert v["ok"] is False
    assert (v["changed"], v["missing"], v["added"]) == ([3], [10], [100])
    assert v["duplicates"] == [] and v["schema"] is None

    rc, out, _ = cli("data", "verify", train, "--home", home)
    assert rc == 1 and "differs from dataset train version 1" in out
    assert "changed (1): 3" in out and "missing (1): 10" in out and "added (1): 100" in out

    # The untouched rows can still be proven; the changed one cannot.
    ok_json(cli("data", "prove", train, "--row", "4", "--home", home, "--json"))
    line = one_line_error(cli("data", "prove", train, "--row", "3", "--home", home))
    assert "row 3 differs from the committed row" in line


def test_csv_id_cell_edited_to_text_is_a_finding_naming_its_row(
    home: Path, tmp_path: Path, cli
) -> None:
    """It was exit 2, "not a readable CSV file", for auditors and operators alike."""
    path = tmp_path / "people.csv"
    path.write_text("id,x\n" + "".join(f"{i},{i * 0.5}\n" for i in range(40)))
    ok_json(cli("data", "commit", path, "--id-column", "id", "--home", home, "--json"))
    path.write_text(path.read_text().replace("\n12,6.0\n", "\n1z,6.0\n"))
    v = ok_json(cli("data", "verify", path, "--home", home, "--json"), code=1)
    assert v["missing"] == [12] and v["unreadable_ids"] == [{"row": 13, "text": "1z"}]
    rc, out, _ = cli("data", "verify", path, "--home", home)
    assert rc == 1 and "missing (1): 12" in out
    assert "file rows whose id is not an int (1): 13 ('1z')" in out
    line = one_line_error(cli("data", "prove", path, "--row", "12", "--home", home))
    assert line.endswith("no row with id 12; file row 13 has an id that is no int: '1z'")
    ok_json(cli("data", "prove", path, "--row", "13", "--home", home, "--json"))
    a = ok_json(cli("audit", "--home", home, "--data", path, "--json"), code=1)
    assert {"kind": "data", "where": "dataset people v1, file row 13",
            "detail": f"its id '1z' is not an int ({path})"} in a["findings"]  # fmt: skip


@pytest.mark.parametrize(
    "edit, expected",
    [
        ("value", {"changed": [5]}),
        ("delete", {"missing": [0, 39]}),
        ("add", {"added": [-1]}),
        ("duplicate", {"changed": [8], "duplicates": [8]}),
    ],
)
def test_each_tamper_alone(home: Path, train: Path, cli, edit: str, expected: dict) -> None:
    ok_json(cli("data", "commit", train, "--id-column", "id", "--home", home, "--json"))
    t = table()
    if edit == "value":
        s = t.column("s").to_pylist()
        s[5] = "customer-5 "
        t = t.set_column(2, "s", pa.array(s))
    elif edit == "delete":
        t = t.slice(1, N - 2)
    elif edit == "add":
        t = pa.concat_tables([pa.table({"id": [-1], "x": [0.0], "s": ["x"]}).cast(t.schema), t])
    else:
        t = pa.concat_tables([t, t.slice(8, 1)])
    pq.write_table(t, train)
    v = ok_json(cli("data", "verify", train, "--home", home, "--json"), code=1)
    for key in ("changed", "missing", "added", "duplicates"):
        assert v[key] == expected.get(key, []), key


def test_reordered_rows_and_columns_same_root(home: Path, train: Path, tmp_path: Path, cli):
    c = ok_json(cli("data", "commit", train, "--id-column", "id", "--home", home, "--json"))
    t = table()
    order = np.random.default_rng(0).permutation(N)
    shuffled = t.take(pa.array(order)).select(["s", "x", "id"])
    path = tmp_path / "shuffled.parquet"
    pq.write_table(shuffled, path)
    v = ok_json(cli("data", "verify", path, "--name", "train", "--home", home, "--json"))
    assert v["ok"] is True
    s = ok_json(cli("data", "commit", path, "--id-column", "id", "--home", home, "--json"))
    assert s["name"] == "shuffled" and s["version"] == 1 and s["root"] == c["root"]


# -- versions ----------------------------------------------------------------------------------


def test_second_commit_is_a_new_version(home: Path, train: Path, cli) -> None:
    v1 = ok_json(cli("data", "commit", train, "--id-column", "id", "--home", home, "--json"))
    pq.write_table(table(N + 5), train)
    v2 = ok_json(cli("data", "commit", train, "--id-column", "id", "--home", home, "--json"))
    assert (v1["version"], v2["version"]) == (1, 2) and v2["rows"] == N + 5
    assert v1["root"] != v2["root"] and v1["name"] == v2["name"] == "train"

    listed = ok_json(cli("data", "list", "--home", home, "--json"))
    assert [(d["name"], d["version"], d["root"]) for d in listed] == [
        ("train", 1, v1["root"]),
        ("train", 2, v2["root"]),
    ]
    # verify and prove use the latest version
    v = ok_json(cli("data", "verify", train, "--home", home, "--json"))
    assert v["ok"] and (v["version"], v["root"]) == (2, v2["root"])
    p = ok_json(cli("data", "prove", train, "--row", str(N + 2), "--home", home, "--json"))
    assert (p["size"], p["root"]) == (N + 5, v2["root"])

    # another name is its own series
    c = ok_json(cli("data", "commit", train, "--id-column", "id", "--name", "holdout",
                    "--home", home, "--json"))  # fmt: skip
    assert (c["name"], c["version"]) == ("holdout", 1)
    assert ok_json(cli("data", "verify", train, "--name", "holdout", "--home", home, "--json"))[
        "ok"
    ]


# -- bad input ---------------------------------------------------------------------------------


def test_missing_file_and_missing_id_column(home: Path, train: Path, tmp_path: Path, cli):
    gone = tmp_path / "gone.parquet"
    line = one_line_error(cli("data", "commit", gone, "--id-column", "id", "--home", home))
    assert str(gone) in line and "no such file" in line
    line = one_line_error(cli("data", "commit", train, "--id-column", "cust", "--home", home))
    assert "'cust'" in line
    assert ok_json(cli("data", "list", "--home", home, "--json")) == []
    rc, out, _ = cli("data", "list", "--home", home)
    assert rc == 0 and "no datasets committed" in out

    ok_json(cli("data", "commit", train, "--id-column", "id", "--home", home, "--json"))
    one_line_error(cli("data", "verify", gone, "--name", "train", "--home", home))
    line = one_line_error(cli("data", "verify", train, "--name", "nope", "--home", home))
    assert "no dataset 'nope' is committed; committed: train" in line
    line = one_line_error(cli("data", "prove", train, "--row", "999", "--home", home))
    assert "999" in line and "not in the committed dataset" in line
    line = one_line_error(cli("data", "prove", train, "--row", "abc", "--home", home))
    assert "'abc'" in line
    one_line_error(cli("data", "list", "--home", tmp_path / "no-home"))


def test_schema_change_names_the_columns(home: Path, train: Path, cli) -> None:
    ok_json(cli("data", "commit", train, "--id-column", "id", "--home", home, "--json"))
    t = table().drop_columns(["s"]).append_column("region", pa.array(["eu"] * N))
    pq.write_table(t, train)
    v = ok_json(cli("data", "verify", train, "--home", home, "--json"), code=1)
    assert v["schema"]["missing_columns"] == ["s"]
    assert v["schema"]["added_columns"] == ["region"]
    assert v["changed"] == list(range(N))  # a dropped column changes every row
    rc, out, _ = cli("data", "verify", train, "--home", home)
    assert rc == 1 and "schema differs: missing columns s; added columns region" in out


def test_empty_datasets(home: Path, tmp_path: Path, cli) -> None:
    header_only = tmp_path / "empty.csv"
    header_only.write_text("id,x\n")
    c = ok_json(cli("data", "commit", header_only, "--id-column", "id", "--home", home, "--json"))
    assert (c["rows"], c["root"], c["version"]) == (0, EMPTY_ROOT, 1)
    assert ok_json(cli("data", "verify", header_only, "--home", home, "--json"))["ok"]
    one_line_error(cli("data", "prove", header_only, "--row", "1", "--home", home))

    no_rows = tmp_path / "none.parquet"
    pq.write_table(table().slice(0, 0), no_rows)
    c = ok_json(cli("data", "commit", no_rows, "--id-column", "id", "--home", home, "--json"))
    assert (c["rows"], c["root"]) == (0, EMPTY_ROOT)

    zero = tmp_path / "zero.csv"
    zero.write_bytes(b"")
    line = one_line_error(cli("data", "commit", zero, "--id-column", "id", "--home", home))
    assert "empty file" in line
    rc, _, _ = cli("verify", "--home", home)
    assert rc == 0


# -- progress and the Python API ---------------------------------------------------------------


def test_progress_only_on_a_terminal(home: Path, train: Path, cli, monkeypatch) -> None:
    rc, out, err = cli("data", "commit", train, "--id-column", "id", "--home", home)
    assert rc == 0 and err == "" and out.startswith("committed dataset train version 1\n")
    assert data_cmds.progress_console(True) is None

    screen = io.StringIO()
    fake = Console(file=screen, force_terminal=True, width=100)
    monkeypatch.setattr(data_cmds, "progress_console", lambda json_: None if json_ else fake)
    rc, out, _ = cli("data", "commit", train, "--id-column", "id", "--home", home)
    assert rc == 0 and "version 2" in out
    drawn = screen.getvalue()
    assert "reading ids" in drawn and "hashing rows" in drawn and f"{N} rows" in drawn
    screen.truncate(0)
    ok_json(cli("data", "commit", train, "--id-column", "id", "--home", home, "--json"))
    assert screen.getvalue() == ""


def test_piped_console_script_is_quiet(home: Path, train: Path) -> None:
    r = run_cli_process("data", "commit", train, "--id-column", "id", "--home", home)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and r.stdout.startswith("committed dataset train version 1\n")


def test_python_api(home: Path, train: Path) -> None:
    df = table().to_pandas().sample(frac=1, random_state=1)
    with Ledger.open(home) as led:
        mem = commit_dataset(led, df, "id", name="frame")
        disk = commit_dataset(led, train, "id")
        again = commit_dataset(led, str(train), "id")
        assert "source" not in mem and disk["source"] == os.path.abspath(train)
        assert mem["root"] == disk["root"] and again["version"] == 2
        entry, body = find_commitment(led, "train")
        assert entry.id == again["id"] and body["version"] == 2
        with pytest.raises(UsageError, match="committed: frame, train"):
            find_commitment(led, "test")
        assert [(d["name"], d["version"]) for d in datasets(led)] == [
            ("frame", 1), ("train", 1), ("train", 2)
        ]  # fmt: skip


def test_versions_count_commits_recorded_without_one(home: Path, train: Path) -> None:
    """A data.commit appended directly (no "version" field) still counts as version 1."""
    from bubblechain.data import commit

    with Ledger.open(home) as led:
        body = commit(train, id_column="id", store=led.artifacts)
        led.append("data.commit", body, outputs=[body["partitions"]])
        led.flush()
        assert commit_dataset(led, train, "id")["version"] == 2
        assert [d["version"] for d in datasets(led)] == [1, 2]
        assert all(isinstance(d["time"], int) for d in datasets(led))


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "dataset name '' is empty"),
        ("two\nlines", "dataset name 'two\\nlines' holds a control character or line break ("),
        ("tab\there", "dataset name 'tab\\there' holds a control character or line break ("),
        ("para\u2029graph", "dataset name 'para\\u2029graph' holds a control character or line"),
        (" churn", "dataset name ' churn' starts or ends with a space ("),
        ("churn ", "dataset name 'churn ' starts or ends with a space ("),
        ("a/b", "dataset name 'a/b' holds a '/' ("),
        ("a\\b", "dataset name 'a\\\\b' holds a '\\' ("),
        ("-churn", "dataset name '-churn' starts with '-' ("),
        (".churn", "dataset name '.churn' starts with '.' ("),
        ("x" * 201, "dataset name '" + "x" * 60 + "'… is 201 characters long (at most 200)"),
    ],
)
def test_commit_refuses_a_name_that_would_garble_tables(home, train, cli, name, problem):
    """Names are shown in tables and messages, pasted into commands and looked up by
    --name and --data: one that holds a newline or a space, reads as a path or an option,
    or is empty is refused before anything is read or recorded."""
    before = tree_digest(home)
    line = one_line_error(
        cli("data", "commit", train, "--id-column", "id", "--name", name, "--home", home)
    )
    assert line.startswith(f"error: {problem}")
    assert tree_digest(home) == before


def test_commit_refuses_a_file_name_unfit_as_dataset_name(home, tmp_path, cli):
    odd = tmp_path / "we\tird.parquet"
    pq.write_table(table(10), odd)
    line = one_line_error(cli("data", "commit", odd, "--id-column", "id", "--home", home))
    assert line == (
        f"error: dataset name 'we\\tird' (the file's name) holds a control character or line "
        f"break {RULE}: give a --name"
    )
    ok = ok_json(
        cli("data", "commit", odd, "--id-column", "id", "--name", "weird", "--home", home, "--json")
    )
    assert ok["name"] == "weird"


RULE = (
    "(a dataset name holds no control character, line break, '/' or '\\', has no space at "
    "either end, and does not start with '-' or '.')"
)


def test_commit_refuses_a_name_with_a_slash_or_leading_dash(home, train, tmp_path, cli):
    """'bad name/' was committed: a name that reads as a path or as an option is
    refused, and nothing is recorded."""
    before = tree_digest(home)
    code, out, err = cli(
        "data", "commit", train, "--id-column", "id", "--name", "bad name/", "--home", home
    )
    assert (code, out) == (2, "")
    assert err == f"error: dataset name 'bad name/' holds a '/' {RULE}\n"
    code, out, err = cli("data", "commit", train, "--id-column", "id", "--name=-x", "--home", home)
    assert (code, out, err) == (2, "", f"error: dataset name '-x' starts with '-' {RULE}\n")
    dashed = tmp_path / "-train.parquet"
    pq.write_table(table(10), dashed)
    code, out, err = cli("data", "commit", "--id-column", "id", "--home", home, "--", dashed)
    assert (code, out) == (2, "")
    assert err == (
        f"error: dataset name '-train' (the file's name) starts with '-' {RULE}: give a --name\n"
    )
    assert tree_digest(home) == before
    assert cli("log", "--home", home, "--kind", "data.commit", "--json")[1] == "[]\n"


def test_verify_and_prove_an_older_version(home: Path, train: Path, tmp_path: Path, cli) -> None:
    """A job trained on version 1: its file still checks against version 1 after a version 2
    is committed, and against the latest it is named as different."""
    v1 = ok_json(cli("data", "commit", train, "--id-column", "id", "--home", home, "--json"))
    newer = tmp_path / "newer.parquet"
    t = table()
    pq.write_table(t.set_column(1, t.column_names[1], pa.array([0.0] * N)), newer)
    v2 = ok_json(
        cli(
            "data",
            "commit",
            newer,
            "--id-column",
            "id",
            "--name",
            "train",
            "--home",
            home,
            "--json",
        )
    )
    assert (v1["version"], v2["version"]) == (1, 2)
    rc, out, _ = cli("data", "verify", train, "--home", home)
    assert rc == 1 and "differs from dataset train version 2" in out
    rc, out, _ = cli("data", "verify", train, "--version", "1", "--home", home)
    assert rc == 0 and f"is exactly dataset train version 1 (root {v1['root']})" in out
    p = ok_json(
        cli("data", "prove", train, "--row", "3", "--version", "1", "--home", home, "--json")
    )
    assert (p["version"], p["root"], p["id"]) == (1, v1["root"], v1["id"])
    rc, out, _ = cli("data", "prove", train, "--row", "3", "--version", "1", "--home", home)
    assert rc == 0 and out.startswith(f"row 3 is leaf 3 of {N} in dataset train version 1")
    line = one_line_error(cli("data", "prove", train, "--row", "3", "--home", home))
    assert line.endswith("row 3 differs from the committed row (dataset 'train' version 2)")
    line = one_line_error(cli("data", "verify", train, "--version", "3", "--home", home))
    assert line == "error: dataset 'train' has no version 3; its versions: 1, 2"


@pytest.mark.parametrize(
    "name",
    [
        "データ\u3000セット",
        "nb\u00a0sp",
        "می\u200cخواهم",
        "👨\u200d👩\u200d👧",
        "churn v2",
        "churn.v2",
        "[red]x",
    ],
)
def test_commit_takes_names_in_any_script(home, train, cli, name):
    """Any script, spaces inside a name, zero-width joiners, inner dots and markup-like
    text are fine."""
    c = ok_json(
        cli("data", "commit", train, "--id-column", "id", "--name", name, "--home", home, "--json")
    )
    assert c["name"] == name
    rc, out, _ = cli("data", "verify", train, "--name", name, "--home", home)
    assert rc == 0 and f"is exactly dataset {name} version 1" in out


def test_a_name_is_found_however_its_accents_are_encoded(home, train, cli):
    """'café' typed with a combining accent (NFD) or precomposed (NFC) is one name."""
    decomposed, composed = "cafe\u0301", "caf\u00e9"
    first = ok_json(cli("data", "commit", train, "--id-column", "id", "--name", decomposed,
                        "--home", home, "--json"))  # fmt: skip
    assert first["name"] == composed
    again = ok_json(cli("data", "commit", train, "--id-column", "id", "--name", composed,
                        "--home", home, "--json"))  # fmt: skip
    assert again["version"] == 2
    v = ok_json(cli("data", "verify", train, "--name", decomposed, "--version", "1",
                    "--home", home, "--json"))  # fmt: skip
    assert v["ok"] and v["id"] == first["id"]


def test_a_bad_name_is_refused_without_waiting_for_a_busy_ledger(home, train, cli):
    import time

    with Ledger.open(home):  # another writer holds the home
        t = time.monotonic()
        args = ["data", "commit", train, "--id-column", "id", "--name", " bad", "--home", home]
        line = one_line_error(cli(*args, env={"BUBBLECHAIN_LOCK_WAIT": "20"}))
        assert time.monotonic() - t < 5
    assert line.startswith("error: dataset name ' bad' starts or ends with a space (")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="walks /proc (Linux)")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: commits hash in process")
def test_ctrl_c_during_a_commit_ends_it_in_one_line_with_no_worker_left(tmp_path):
    """Ctrl-C reaches the whole process group: the hashing workers raised too, printing
    multiprocessing tracebacks, and now and then the command hung at exit."""
    import signal
    import subprocess
    import sys
    import time

    from test_training import _alive, _descendants

    from bubblechain.ledger.verify import verify_home

    rows = 300_000
    rng = np.random.default_rng(0)
    data = tmp_path / "big.parquet"
    pq.write_table(pa.table({"id": np.arange(rows), **{f"c{i}": rng.normal(size=rows)
                                                        for i in range(8)}}), data)  # fmt: skip
    home = tmp_path / "home"
    Ledger.init(home).close()
    env = {k: v for k, v in os.environ.items() if k != "BUBBLECHAIN_HOME"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bubblechain", "data", "commit", str(data), "--id-column", "id",
         "--home", str(home)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    kids: set[int] = set()
    while time.monotonic() < deadline and proc.poll() is None:
        kids = _descendants(proc.pid)
        if len(kids) >= 2:  # the hashing pool is up
            break
        time.sleep(0.02)
    assert kids, "the hashing pool never started"
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C does
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (130, "error: interrupted\n")
    deadline = time.monotonic() + 15
    while any(_alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [k for k in kids if _alive(k)]
    assert verify_home(home).ok


def test_a_partition_index_without_a_leaves_address_is_said_in_words(home, train, cli):
    """A data.commit (signed with the committer's key) names an index artifact whose
    first partition has no leaves address: verify said "KeyError: 'leaves'", data verify
    "malformed: 'leaves'"."""
    from bubblechain.crypto import canonical

    with Ledger.open(home) as led:
        body = commit_dataset(led, train, "id", name="train")
        doc = json.loads(led.artifacts.get(body["partitions"]))
        del doc["partitions"][0]["leaves"]
        index = led.artifacts.put(canonical.dumps(doc))
        keep = ("id", "index")
        forged = {k: v for k, v in body.items() if k not in keep} | {"partitions": index}
        forged["version"] = 2
        at = led.append("data.commit", forged, outputs=[index]).index
        led.flush()
    code, out, _ = cli("verify", "--home", home)
    assert code == 1
    assert out.splitlines()[0] == (
        f"✗ message {at} (data.commit train v2): partition index {index} is malformed: "
        "partition 0 has no leaves address (a SHA-256 hex digest)"
    )
    line = one_line_error(cli("data", "verify", train, "--name", "train", "--home", home))
    assert line == f"error: partition index {index}: malformed: no field 'leaves'"
