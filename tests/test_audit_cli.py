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
