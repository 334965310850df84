"""`bubblechain audit` and `bubblechain verify` as a user drives them: bad paths, labels,
dataset names, and what each copy of the ledger reports."""

from __future__ import annotations

import json

from bubblechain.cli import audit_cmds

# -- --report: refused before the audit, and a late failure is one line -----------------------


def test_report_that_is_a_directory_is_refused_before_the_audit(home, cli, tmp_path):
    rd = tmp_path / "rd"
    rd.mkdir()
    code, out, err = cli("audit", "--home", home, "--replay", "none", "--report", rd)
    assert code == 2
    assert err == f"error: --report {rd} is a directory, not a file name\n"
    assert out == ""  # refused before the audit ran


def test_report_under_a_file_is_refused_before_the_audit(home, cli, tmp_path):
    f = tmp_path / "plain"
    f.write_text("x")
    code, out, err = cli("audit", "--home", home, "--replay", "none", "--report", f / "r.html")
    assert code == 2
    assert err == f"error: --report {f / 'r.html'}: {f} is not a directory\n"
    assert out == ""


def test_report_in_missing_directories_creates_them(home, cli, tmp_path):
    report = tmp_path / "new" / "dir" / "r.html"
    code, out, err = cli("audit", "--home", home, "--replay", "none", "--report", report)
    assert (code, err) == (0, "")
    assert "No findings" in report.read_text()
    assert out.splitlines()[-1] == f"report: {report}"


def _report_path_taken_during_the_audit(monkeypatch, report):
    """The report's path becomes a directory while the audit runs: the write must fail."""
    real = audit_cmds.run_audit

    def run(*a, **kw):
        rep = real(*a, **kw)
        report.mkdir()
        return rep

    monkeypatch.setattr(audit_cmds, "run_audit", run)


def test_report_write_failing_at_the_end_keeps_the_result(home, cli, tmp_path, monkeypatch):
    report = tmp_path / "r.html"
    _report_path_taken_during_the_audit(monkeypatch, report)
    code, out, err = cli("audit", "--home", home, "--replay", "none", "--report", report)
    assert code == 2
    assert err == f"error: --report {report}: cannot write the report: Is a directory\n"
    assert "✓ no findings" in out  # the audit's result is still printed
    assert list(tmp_path.glob(".r.html.*")) == []  # no temporary file left behind


def test_report_write_failing_at_the_end_keeps_the_json(home, cli, tmp_path, monkeypatch):
    report = tmp_path / "r.html"
    _report_path_taken_during_the_audit(monkeypatch, report)
    code, out, err = cli("audit", "--home", home, "--replay", "none", "--report", report, "--json")
    assert code == 2
    assert err == f"error: --report {report}: cannot write the report: Is a directory\n"
    assert json.loads(out)["ok"] is True


def test_report_write_failing_keeps_the_exit_code_of_findings(home, cli, tmp_path, monkeypatch):
    report = tmp_path / "r.html"
    _report_path_taken_during_the_audit(monkeypatch, report)
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"not a model")
    args = ("audit", "--home", home, "--replay", "none", "--model", junk, "--report", report)
    code, out, err = cli(*args)
    assert code == 1 and "cannot write the report: Is a directory" in err
    assert "1 finding(s)" in out


# -- finding labels: each says what and where once ---------------------------------------------

JOB = "job-20250101-000000-abcdef"


def _malformed_job(home) -> None:
    """A job.start the ledger accepts (its shape is valid) whose hyperparameters are no
    mapping."""
    from bubblechain.crypto.keys import Identity
    from bubblechain.ledger import Ledger

    coord = Identity.generate("coord")
    body = {
        "algorithm": "logistic",
        "hyper": 3,
        "dataset": {"commit": "00" * 32, "name": "d"},
        "partitions": 1,
        "plan": [[0, 10]],
        "features": ["x"],
        "target": "y",
        "seed": 0,
    }
    with Ledger.open(home) as led:
        led.register_node("coord", coord.public_key, "coordinator")
        led.append(
            "job.start",
            body,
            signer=coord,
            bubble="b1",
            state="aa" * 32,
            code="cc" * 32,
            job=JOB,
        )
        led.flush()


def test_job_findings_name_the_job_once(home, cli, tmp_path):
    _malformed_job(home)
    report = tmp_path / "r.html"
    code, out, err = cli("audit", "--home", home, "--replay", "none", "--report", report)
    assert (code, err) == (1, "")
    lines = out.splitlines()
    assert f"✗ job {JOB}: its record is malformed: TypeError: 'int' object is not iterable" in lines
    assert f"✗ data {JOB}: job.start names a data.commit that is not on the ledger" in lines
    assert any(line.startswith(f"✗ code {JOB}: job.start declares code cc") for line in lines)
    assert f"job {JOB}" not in out.replace(f"✗ job {JOB}", "")  # no "job job-…" elsewhere
    page = report.read_text()
    assert f"<h2><code>{JOB}</code></h2>" in page and "job job" not in page.lower()

    code, out, _ = cli("audit", "--home", home, "--replay", "none", "--json")
    wheres = {(f["kind"], f["where"]) for f in json.loads(out)["findings"]}
    assert {("job", JOB), ("data", JOB), ("code", JOB)} <= wheres


def test_witness_findings_name_the_witness_once(home, cli, tmp_path):
    import shutil

    early = tmp_path / "early.db"
    shutil.copy(home / "ledger.db", early)
    assert cli("note", "after the copy", "--home", home)[0] == 0
    shutil.copy(early, home / "ledger.db")  # a valid ledger, but not what the witnesses saw
    code, out, _ = cli("audit", "--home", home, "--replay", "none")
    assert code == 1
    lines = out.splitlines()
    for w in ("w1", "w2", "w3"):
        assert f"✗ witness {w}: cosigned a log of 2 entries; this ledger has only 1" in lines
    assert "witness witness" not in out


# -- --data with --name ------------------------------------------------------------------------


def _committed(home, cli, tmp_path):
    """A small file committed as dataset 'churn' (not its stem), and a copy elsewhere."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "data.parquet"
    pq.write_table(pa.table({"id": list(range(50)), "x": [float(i) for i in range(50)]}), src)
    code, _, err = cli(
        "data", "commit", src, "--id-column", "id", "--name", "churn", "--home", home
    )
    assert code == 0, err
    copy = tmp_path / "dt.parquet"
    shutil.copy(src, copy)
    return src, copy


def test_data_name_guessed_from_a_file_name_that_is_not_committed(home, cli, tmp_path):
    src, copy = _committed(home, cli, tmp_path)
    code, out, _ = cli("audit", "--home", home, "--replay", "none", "--data", src)
    assert code == 0 and "✓ no findings" in out  # the committed path still finds its dataset
    (tmp_path / "sub").mkdir()
    link = tmp_path / "link.parquet"
    link.symlink_to(src)
    for spelled in (tmp_path / "sub" / ".." / src.name, link):  # the same file, spelled otherwise
        code, out, err = cli("audit", "--home", home, "--replay", "none", "--data", spelled)
        assert code == 0 and "✓ no findings" in out, err
    code, out, err = cli("audit", "--home", home, "--replay", "none", "--data", copy)
    assert code == 2
    assert err == (
        f"error: --data {copy}: no dataset 'dt' (its file name) is committed "
        "(committed: churn); pass --name NAME to say which\n"
    )
    assert out == ""  # refused before the audit ran


def test_data_name_given(home, cli, tmp_path):
    _src, copy = _committed(home, cli, tmp_path)
    code, out, err = cli(
        "audit", "--home", home, "--replay", "none", "--data", copy, "--name", "churn"
    )
    assert (code, err) == (0, "") and "✓ no findings" in out
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"id": list(range(50)), "x": [0.5] + [float(i) for i in range(1, 50)]}), copy
    )
    code, out, _ = cli(
        "audit", "--home", home, "--replay", "none", "--data", copy, "--name", "churn"
    )
    assert code == 1
    assert (
        f"✗ data dataset churn v1, row 0: changed since the commitment ({copy})" in out.splitlines()
    )


def test_data_schema_change_is_one_finding_in_words(home, cli, tmp_path):
    """The id column rewritten as text: said as `data verify` says it, not as a dict."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src, _copy = _committed(home, cli, tmp_path)
    ids = [str(i) for i in range(50)]
    pq.write_table(pa.table({"id": ids, "x": [float(i) for i in range(50)]}), src)
    code, out, _ = cli("audit", "--home", home, "--replay", "none", "--data", src)
    assert code == 1
    assert (
        "✗ data dataset churn v1: schema differs from the commitment: column id is string, "
        f"committed int ({src})"
    ) in out.splitlines()
    code, out, _ = cli("audit", "--home", home, "--replay", "none", "--data", src, "--json")
    (finding,) = [f for f in json.loads(out)["findings"] if f["kind"] == "data"]
    assert finding["detail"].startswith("schema differs from the commitment: column id is string")


def test_data_rows_past_the_first_twenty_are_counted_in_one_finding(home, cli, tmp_path):
    """A dropped column changes every row: audit gave one finding per row (a million for
    a million rows); it names the first 20 and counts the rest, saying how to list them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src, _copy = _committed(home, cli, tmp_path)
    pq.write_table(pa.table({"id": list(range(50))}), src)  # column x dropped
    code, out, _ = cli("audit", "--home", home, "--replay", "none", "--data", src, "--json")
    assert code == 1
    found = [(f["where"], f["detail"]) for f in json.loads(out)["findings"]]
    assert found[:20] == [
        (f"dataset churn v1, row {i}", f"changed since the commitment ({src})") for i in range(20)
    ]
    assert found[20:] == [
        (
            "dataset churn v1",
            f"30 more rows changed since the commitment ({src}); `bubblechain data verify "
            f"{src} --name churn --version 1 --home {home} --json` lists every row",
        ),
        ("dataset churn v1", f"schema differs from the commitment: missing columns x ({src})"),
    ]
    code, out, err = cli(
        "data", "verify", src, "--name", "churn", "--version", "1", "--json", "--home", home
    )
    assert code == 1 and json.loads(out)["changed"] == list(range(50)), err


def test_data_file_not_readable_names_its_path_once(home, cli, tmp_path):
    """It said the path twice: `✗ data p.parquet: p.parquet: not a readable Parquet file`."""
    _committed(home, cli, tmp_path)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not Parquet")
    code, out, err = cli(
        "audit", "--home", home, "--replay", "none", "--data", bad, "--name", "churn"
    )
    assert (code, err) == (1, "")
    assert out.splitlines()[0] == (
        f"✗ data {bad}: not a readable Parquet file: Parquet magic bytes not found in footer. "
        "Either the file is corrupted or this is not a parquet file."
    )
    code, out, _ = cli(
        "audit", "--home", home, "--replay", "none", "--data", bad, "--name", "churn", "--json"
    )
    d = json.loads(out)
    assert [(f["where"], f["detail"]) for f in d["findings"]] == [(str(bad), d["data"][0]["error"])]
    assert d["data"][0]["error"].startswith("not a readable Parquet file: ")


def test_data_name_not_committed(home, cli, tmp_path):
    _src, copy = _committed(home, cli, tmp_path)
    code, out, err = cli(
        "audit", "--home", home, "--replay", "none", "--data", copy, "--name", "nope"
    )
    assert (code, out) == (2, "")
    assert err == (
        f"error: --data {copy} --name nope: no dataset 'nope' is committed (committed: churn)\n"
    )


def test_data_names_must_pair_with_data_files(home, cli, tmp_path):
    src, copy = _committed(home, cli, tmp_path)
    code, out, err = cli(
        "audit",
        "--home",
        home,
        "--replay",
        "none",
        "--data",
        src,
        "--data",
        copy,
        "--name",
        "churn",
    )
    assert (code, out) == (2, "")
    assert err == (
        "error: --name is given 1 time(s) for 2 --data file(s): give one --name per --data, "
        "in the same order, or none\n"
    )
    code, out, err = cli(
        "audit", "--home", home, "--replay", "none", "--data", src, "--data", copy,
        "--name", "churn", "--name", "churn",
    )  # fmt: skip
    assert (code, err) == (0, "") and "✓ no findings" in out


# -- verify --json: each copy's final height -----------------------------------------------------


def test_verify_json_reports_each_witness_final_height(home, cli):
    assert cli("note", "approved", "--home", home)[0] == 0
    code, out, err = cli("verify", "--home", home, "--json")
    assert (code, err) == (0, "")
    copies = json.loads(out)["copies"]
    assert set(copies) == {"ledger", "w1", "w2", "w3"}
    for label, c in copies.items():  # every key kept; a healthy ledger is final everywhere
        assert (c["height"], c["size"], c["final_height"], c["pending"]) == (1, 2, 1, []), label


def test_verify_json_a_block_without_quorum_is_pending_in_every_copy(home, cli):
    import sqlite3

    assert cli("note", "approved", "--home", home)[0] == 0
    for db in ("ledger.db", "witnesses/w1/replica.db", "witnesses/w2/replica.db"):
        con = sqlite3.connect(home / db, isolation_level=None)
        con.execute("DELETE FROM cosignatures WHERE height=1")
        con.close()
    code, out, _ = cli("verify", "--home", home, "--json")
    assert code == 1  # the replicas lost their own cosignatures: findings
    copies = json.loads(out)["copies"]
    for label, c in copies.items():  # only w3's cosignature of block 1 is left anywhere
        assert (c["height"], c["final_height"], c["pending"]) == (1, 0, [1]), label


# -- --genesis: a malformed pinned genesis says which field, in words ---------------------------


def _genesis_edits():
    """(edit of the genesis document, the words that say what is wrong with it)."""

    def witness(g, **changes):  # the first witness changed; a field None is removed
        first = {**g["witnesses"][0], **changes}
        first = {k: v for k, v in first.items() if v is not None}
        return {**g, "witnesses": [first, *g["witnesses"][1:]]}

    return [
        (
            lambda g: {k: v for k, v in g.items() if k != "quorum"},
            "the genesis has no field 'quorum'",
        ),
        (lambda g: {**g, "quorum": "two"}, "genesis field 'quorum' is not a whole number: \"two\""),
        (lambda g: witness(g, key=None), "witness w1 has no field 'key'"),
        (lambda g: witness(g, name=None), "witness 1 of 3 has no field 'name'"),
        (lambda g: witness(g, name=7), "the name of witness 1 of 3 is not text: 7"),
        (lambda g: witness(g, key="AAAA"), "the key of witness w1 is not a 32-byte Ed25519 key"),
        (
            lambda g: {**g, "admin": {**g["admin"], "key": "!!"}},
            "the key of the admin is not base64",
        ),
        (
            lambda g: {**g, "witnesses": {"w1": 1}},
            "genesis field 'witnesses' is not a list: {\"w1\": 1}",
        ),
        (
            lambda g: witness(g, name="w2"),
            "node names in the genesis must be distinct: w2 names more than one node",
        ),
        (lambda g: [g], "the genesis is not a JSON object"),
    ]


def test_a_malformed_genesis_names_its_field_in_words(home, cli, tmp_path):
    """It said "genesis is missing or has a malformed field: 'quorum'" (a KeyError's
    text), "invalid literal for int() with base 10: 'two'", or base64's "Only base64
    data is allowed", naming no field."""
    from bubblechain.crypto import canonical

    g = json.loads((home / "genesis.json").read_text())
    for i, (edit, says) in enumerate(_genesis_edits()):
        pinned = tmp_path / f"g{i}.json"
        pinned.write_bytes(canonical.dumps(edit(g)))
        code, out, err = cli("audit", "--home", home, "--genesis", pinned, "--replay", "none")
        assert (code, out) == (2, "")
        assert err == f"error: --genesis {pinned} is not a genesis file: {says}\n"


def test_a_home_whose_genesis_lacks_a_field_says_which(home, cli):
    from bubblechain.crypto import canonical

    g = json.loads((home / "genesis.json").read_text())
    del g["quorum"]
    (home / "genesis.json").write_bytes(canonical.dumps(g))
    code, out, err = cli("status", "--home", home)
    assert (code, out) == (2, "")
    assert err == (
        f"error: genesis file {home / 'genesis.json'} is malformed: "
        "the genesis has no field 'quorum'\n"
    )
