"""A self-contained HTML audit report: findings, each job's timeline and loss curve."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;color:#1b1f24}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
.ok{color:#1a7f37}.bad{color:#cf222e}code{font-size:.92em}.muted{color:#57606a}
"""


def _svg_curve(points: list[tuple[int, float]], width: int = 640, height: int = 220) -> str:
    if len(points) < 2:
        return "<p class=muted>no loss curve recorded</p>"
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    pad = 40

    def sx(x: float) -> float:
        return pad + (x - x0) / ((x1 - x0) or 1) * (width - 2 * pad)

    def sy(y: float) -> float:
        return height - pad - (y - y0) / ((y1 - y0) or 1) * (height - 2 * pad)

    path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
    return (
        f'<svg width="{width}" height="{height}" role="img" aria-label="training loss">'
        f'<polyline fill="none" stroke="#0969da" stroke-width="2" points="{path}"/>'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'stroke="#888"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#888"/>'
        f'<text x="{pad}" y="{pad - 8}" font-size="12">loss {y1:.5g}</text>'
        f'<text x="{pad}" y="{height - 8}" font-size="12">round {x0} … {x1}; '
        f"final loss {ys[-1]:.6g}</text></svg>"
    )


def render(report: dict[str, Any], title: str) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(f['kind'])}</td><td>{e(f['where'])}</td><td>{e(f['detail'])}</td></tr>"
        for f in report["findings"]
    )
    verdict = (
        "<p class=ok><b>No findings.</b> Everything checked holds.</p>"
        if report["ok"]
        else f"<p class=bad><b>{len(report['findings'])} finding(s).</b></p>"
    )
    verdict += "".join(
        f"<p class=muted>Not checked: {e(item)}</p>" for item in report.get("unchecked", [])
    )
    parts = [
        f"<!doctype html><html><head><meta charset=utf-8><title>{e(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{e(title)}</h1>",
        verdict,
        f"<p class=muted>{report['stats']['messages']} messages, {report['stats']['jobs']} "
        f"job(s); replay {e(report['sampling']['mode'])}: {report['sampling']['replayed']} of "
        f"{report['sampling']['tasks']} map tasks re-executed. "
        f"{e(report['sampling']['statement'])}{_seed(report['sampling'])}.</p>",
    ]
    if rows:
        parts.append(
            f"<h2>Findings</h2><table><tr><th>kind</th><th>where</th><th>detail</th>"
            f"</tr>{rows}</table>"
        )
    parts += _workers(report["sampling"]) + _data(report.get("data") or [])
    for job in report["jobs"]:
        jid = job["job"]  # "job-…" says it is a job; any other id is introduced as one
        intro = "" if jid.startswith("job-") else "Job "
        parts.append(f"<h2>{intro}<code>{e(jid)}</code></h2>")
        if "algorithm" not in job:
            continue
        parts.append(
            f"<p>{e(job['algorithm'])} on <b>{e(job['dataset'])}</b>: {job['rounds']} rounds, "
            f"{job['results']} task results, {job['retries']} retried attempts; status "
            f"<b>{e(job['status'])}</b>.</p>"
        )
        parts.append(_svg_curve([tuple(p) for p in job["loss"]]))
        tl = "".join(
            f"<tr><td>{m['index']}</td><td>{_t(m['time'])}</td><td>{e(m['kind'])}</td>"
            f"<td>{e(m['sender'])}</td></tr>"
            for m in job["timeline"]
        )
        parts.append(
            "<details><summary>timeline</summary><table><tr><th>index</th><th>time</th>"
            f"<th>kind</th><th>sender</th></tr>{tl}</table></details>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def _seed(sampling: dict[str, Any]) -> str:
    """The seed that reproduces the sample (``--seed``), where a sample was drawn."""
    return f" (seed {sampling['seed']})" if sampling["mode"] == "sample" else ""


def _workers(sampling: dict[str, Any]) -> list[str]:
    workers = sampling.get("workers") or {}
    if not workers:
        return []
    fractions = list(next(iter(workers.values()))["p_catch"])
    head = "".join(f"<th>lied in {float(f):.0%}</th>" for f in fractions)
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{w['tasks']}</td><td>{w['replayed']}</td>"
        + "".join(f"<td>{w['p_catch'][f]:.4g}</td>" for f in fractions)
        + "</tr>"
        for name, w in workers.items()
    )
    return [
        "<h2>Workers</h2><p class=muted>The probability that a worker which lied in that "
        "share of its task results would have been caught by this replay.</p>"
        f"<table><tr><th>worker</th><th>results</th><th>re-executed</th>{head}</tr>"
        f"{rows}</table>"
    ]


def _data(files: list[dict[str, Any]]) -> list[str]:
    if not files:
        return []
    e = html.escape
    rows = []
    for r in files:
        if "error" in r:
            verdict = e(r["error"])
        elif r["matches"]:
            jobs = ", ".join(r.get("jobs") or []) or "no job"
            verdict = f"matches {e(r['name'])} v{r['version']} (trained on by {e(jobs)})"
        else:
            verdict = f"<b>differs</b> from {e(str(r['name']))} v{r['version']}: see the findings"
        rows.append(f"<tr><td>{e(r['path'])}</td><td>{verdict}</td></tr>")
    return [
        f"<h2>Data files</h2><table><tr><th>file</th><th>result</th></tr>{''.join(rows)}</table>"
    ]


def _t(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
