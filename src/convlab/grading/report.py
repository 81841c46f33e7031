"""The class report of a graded folder, and the escaping of student text for every output.

:func:`write_report` turns the result dicts of :func:`convlab.grading.batch.run_batch` (see
:func:`convlab.grading.score.score` for their layout) into ``report.json`` (the numbers, for
scripts), ``report.md`` and a standalone ``report.html`` (pictures embedded as base64 PNG):

* summary: submissions, mean / median / min / max total, submissions per status;
* histogram of the totals;
* pass rate of every check (question / test case), hardest first, with its most common failure
  message;
* the slowest submissions (grading time, execution time, peak memory);
* the sandbox protections in force (``execution.protections``) and the results' warnings;
* integrity: submissions whose trained weights, predictions or answer cells are identical or
  near-identical (:func:`convlab.grading.integrity.integrity`). A flag is a reason to look, not a proof.

The integrity fingerprints and their comparison are :mod:`convlab.grading.integrity`'s.
"""

from __future__ import annotations

import functools
import html
import math
import os
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from convlab.grading import figures, files, integrity
from convlab.grading.results import Result

SLOWEST = 10
MESSAGE_CHARS = 300




# ------------------------------------------------------------------------------ fingerprints


# ------------------------------------------------------------------------ prediction signatures


























# --------------------------------------------------------------------------------- integrity






# ------------------------------------------------------------------------------------ numbers
def _total(result: Result) -> float:
    total = result.get("total")
    if isinstance(total, int | float) and not isinstance(total, bool):
        return float(total)
    scores = result.get("scores") or {}
    return float(sum(v for v in scores.values() if isinstance(v, int | float)))


def histogram_bins(max_total: float) -> list[float]:
    """Bin edges: one bin per point up to 50 points (a score s falls in [s, s+1)), else 20 bins."""
    top = max(1.0, float(max_total))
    if top <= 50:
        return [float(e) for e in range(math.ceil(top) + 2)]
    return [top * i / 20 for i in range(21)]


def _short(text: Any) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS - 1] + "…"


def build(results: Sequence[Result],
          settings: integrity.Settings = integrity.Settings()) -> dict[str, Any]:
    """Every number of the report (what ``report.json`` holds)."""
    import numpy as np

    totals = [_total(r) for r in results]
    maxima = Counter(float(r["max_total"]) for r in results if isinstance(r.get("max_total"), int | float))
    max_total = maxima.most_common(1)[0][0] if maxima else max(totals, default=0.0)
    summary = {"submissions": len(results), "max_total": max_total,
               "mean": round(statistics.fmean(totals), 3) if totals else None,
               "median": statistics.median(totals) if totals else None,
               "min": min(totals, default=None), "max": max(totals, default=None),
               "statuses": dict(sorted(Counter(str(r.get("status", "")) for r in results).items(),
                                       key=lambda kv: (-kv[1], kv[0])))}
    edges = histogram_bins(max_total)
    counts, _ = np.histogram(np.clip(totals, edges[0], edges[-1]), bins=edges)
    hist = {"edges": edges, "counts": [int(c) for c in counts]}

    checks: dict[tuple[str, str], dict[str, Any]] = {}
    failures: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for result in results:
        for question, value in (result.get("questions") or {}).items():
            for case in value.get("cases") or []:
                key = (str(question), str(case.get("name", "")))
                entry = checks.setdefault(key, {"question": key[0], "case": key[1],
                                                "hidden": bool(case.get("hidden")),
                                                "points": case.get("points"), "graded": 0, "passed": 0})
                entry["graded"] += 1
                if case.get("passed"):
                    entry["passed"] += 1
                else:
                    failures[key][_short(case.get("message") or "")] += 1
    rows = []
    for key, entry in checks.items():
        common = failures[key].most_common(1)
        rows.append({**entry, "pass_rate": round(entry["passed"] / entry["graded"], 4),
                     "common_failure": common[0][0] if common else None,
                     "common_failure_count": common[0][1] if common else 0})
    rows.sort(key=lambda r: (r["pass_rate"], r["question"], r["case"]))

    def seconds(r: Result) -> float:
        return float(r.get("duration_s") or 0.0)

    def execution(r: Result) -> Mapping[str, Any]:
        return r.get("execution") or {}

    slowest = [{"student_id": r.get("student_id"), "status": r.get("status"), "duration_s": seconds(r),
                "execution_s": execution(r).get("seconds"), "peak_rss_mb": execution(r).get("peak_rss_mb")}
               for r in sorted(results, key=lambda r: (-seconds(r), str(r.get("student_id"))))[:SLOWEST]]

    ran = [r for r in results if execution(r).get("protections")]
    names = sorted({k for r in ran for k in r["execution"]["protections"]})
    protections = {k: {"on": sum(bool(r["execution"]["protections"].get(k)) for r in ran), "of": len(ran)}
                   for k in names}
    warnings: dict[str, list[str]] = defaultdict(list)
    for r in results:
        for warning in r.get("warnings") or []:
            warnings[str(warning)].append(str(r.get("student_id")))
    return {"summary": summary, "histogram": hist, "checks": rows, "slowest": slowest,
            "protections": protections, "not_executed": len(results) - len(ran),
            "warnings": [{"warning": w, "students": s} for w, s in warnings.items()],
            "integrity": integrity.integrity(results, settings)}


# ---------------------------------------------------------------------------------- rendering
#: ASCII punctuation that Markdown (CommonMark/GFM, Python-Markdown, Jupyter) may give a meaning:
#: links, images, emphasis, headings, lists, tables, code, math, autolinks. Escaped with "\\"
#: (``&``, ``<``, ``>`` as entities), so that student text renders as the same characters.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:=$])")
_SECRET_ENV = re.compile(r"TOKEN|SECRET|PASSW|PASSWD|KEY|CREDENTIAL|AUTH|COOKIE|SESSION", re.I)
_SECRET_TEXT = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)"
    r"|\$(?:1|2[abxy]?|5|6|7|y|gy|sha1|md5)\$[./A-Za-z0-9$=,]{8,}")  # crypt(3) hashes: /etc/shadow
REDACTED = "[скрыто]"


def md_escape(text: Any) -> str:
    """Student-controlled text as Markdown that renders as that text: HTML escaped, every
    Markdown-significant ASCII character backslash-escaped (no link, image, heading, table cell
    or raw HTML can be injected), lone surrogates written as ``\\udcXX``."""
    text = str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


@functools.cache
def _env_secrets() -> tuple[str, ...]:
    return tuple(sorted({v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 8},
                        key=len, reverse=True))


def redact(text: Any) -> str:
    """Text from the sandbox with what it must never carry out replaced by :data:`REDACTED`:
    private keys, crypt(3) password hashes and the values of the grader's own secret-looking
    environment variables (``*TOKEN*``, ``*KEY*``, ...), which the notebook's environment never
    holds but an unconfined sandbox could read from ``/proc``."""
    text = _SECRET_TEXT.sub(REDACTED, str(text))
    for secret in _env_secrets():
        text = text.replace(secret, REDACTED)
    return text


_PROTECTION_NAMES = {"process_group": "process group", "pid_namespace": "PID namespace",
                     "memory_watchdog": "memory watchdog", "rlimit_memory": "memory rlimit",
                     "network_namespace": "network namespace", "unprivileged_user": "unprivileged user",
                     "private_workdir": "private working directory",
                     "filesystem_write_confined": "writes confined (Landlock)",
                     "filesystem_read_confined": "reads confined (mount namespace)",
                     "process_limit": "process limit", "disk_quota": "disk quota",
                     "private_shm": "private /dev/shm and /tmp"}
DISCLAIMER = ("A flag is a reason to look at the submissions, not proof of copying: the reference "
              "solution's committed models, a shared tutorial or a very short answer can match by design.")


def _num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def _pairs(pairs: list[dict[str, Any]], near: str) -> str:
    return "; ".join(f"{p['a']} ~ {p['b']}: " + ("identical" if p["exact"] else near.format(p["similarity"]))
                     for p in pairs)


def _tables(data: dict[str, Any]) -> list[tuple[str, str, list[str], list[list[str]], str]]:
    """The report as (section id, heading, header, rows, note) tables, shared by Markdown and HTML."""
    s = data["summary"]
    sections = [("summary", "Summary", ["", ""], [
        ["submissions", str(s["submissions"])], ["max total", _num(s["max_total"])],
        ["mean total", _num(s["mean"])], ["median total", _num(s["median"])],
        ["min total", _num(s["min"])], ["max total reached", _num(s["max"])],
        *[[f"status {k}", str(v)] for k, v in s["statuses"].items()]], "")]
    sections.append(("checks", "Checks, hardest first", ["question", "check", "kind", "points", "passed",
                                                          "pass rate", "most common failure"],
                     [[c["question"], c["case"], "hidden" if c["hidden"] else "public", _num(c["points"]),
                       f"{c['passed']}/{c['graded']}", f"{100 * c['pass_rate']:.0f}%",
                       f"{c['common_failure']} (×{c['common_failure_count']})" if c["common_failure"]
                       is not None else ""] for c in data["checks"]], ""))
    sections.append(("slowest", f"Slowest submissions (top {SLOWEST})",
                     ["student", "status", "grading, s", "notebook run, s", "peak memory, MB"],
                     [[str(r["student_id"]), str(r["status"]), f"{r['duration_s']:.1f}",
                       _num(r["execution_s"]), _num(r["peak_rss_mb"])] for r in data["slowest"]], ""))
    note = (f"{data['not_executed']} submission(s) did not run (invalid or wrong notebook)."
            if data["not_executed"] else "")
    rows = [[_PROTECTION_NAMES.get(k, k), f"{v['on']}/{v['of']}"] for k, v in data["protections"].items()]
    rows += [[f"warning: {w['warning']}", ", ".join(w["students"])] for w in data["warnings"]]
    sections.append(("protections", "Sandbox protections in force", ["protection", "submissions"],
                     rows, note))
    integ = data["integrity"]
    cfg = integ["settings"]
    weight_rows = [[c["variable"], ", ".join(c["students"]), _pairs(c["pairs"], "cosine {:.4f}")]
                   for c in integ["weights"]]
    sections.append(("weights", "Integrity: trained weights", ["model", "students", "pairs"], weight_rows,
                     f"{DISCLAIMER} Identical: same digest of all weights; near-identical: cosine similarity "
                     f"of the weight sketches ≥ {cfg['weights_cosine']} (same variable and architecture). "
                     f"{integ['models_compared']} model(s) compared."
                     + ("" if weight_rows else " Nothing flagged.")))
    prediction_rows = [[c["variable"], ", ".join(c["students"]), _pairs(c["pairs"], "agreement {:.3f}")]
                       for c in integ["predictions"]]
    prediction_rows += [[var, f"all {v['pairs']} pair(s)", f"median agreement {v['median']:.3f}, "
                         f"max {v['max']:.3f}"] for var, v in integ["predictions_spread"].items()]
    limits = ", ".join(f"{probe} {value}" for probe, value in cfg["predictions_agreement"])
    sections.append(("predictions", "Integrity: what the models compute", ["model", "students", "pairs"],
                     prediction_rows,
                     f"{DISCLAIMER} Each loaded model predicts the grader's fixed probe images (test images "
                     f"and blends of two); flagged: the same predicted class on at least this share of them "
                     f"({limits}) and correlation of the log-probabilities "
                     f"≥ {cfg['predictions_correlation']}. Permuted hidden units leave the predictions "
                     "unchanged, and small noise on the weights changes few of them. "
                     "Independently trained models of the course's recipes agree on at most 0.92 (MNIST) "
                     "and 0.72 (CIFAR-10) of the probe (docs/maintainers.md); the last rows give this "
                     f"class's spread. {integ['predictions_compared']} model(s) compared."))
    answer_rows = [[", ".join(c["students"]), _pairs(c["pairs"], "Jaccard ≈ {:.2f}")]
                   for c in integ["answers"]]
    sections.append(("answers", "Integrity: answer cells", ["students", "pairs"], answer_rows,
                     f"{DISCLAIMER} Identical: the same code once comments, blank lines and spacing are "
                     f"removed; near-identical: estimated Jaccard similarity of {integrity.SHINGLE}-token "
                     "shingles "
                     f"≥ {cfg['answers_jaccard']}, own names (variables) ignored, so renamed copies match. "
                     f"Cells equal to the student template are left out; {integ['answers_compared']} "
                     f"non-blank answer(s) compared." + ("" if answer_rows else " Nothing flagged.")))
    return sections


def _md_cell(text: str) -> str:
    return md_escape(" ".join(str(text).split()))


def render_markdown(data: dict[str, Any], histogram_file: str | None = "report_histogram.png") -> str:
    """The report as Markdown (the histogram as a linked PNG)."""
    out = ["# Class report", ""]
    for key, heading, header, rows, note in _tables(data):
        out += [f"## {heading}", ""]
        if key == "summary" and histogram_file:
            out += [f"![histogram of totals]({histogram_file})", ""]
        if rows:
            out += ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + " --- |" * len(header)]
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows] + [""]
        if note:
            out += [note, ""]
    return "\n".join(out)


def render_html(data: dict[str, Any], histogram_png: bytes | None = None) -> str:
    """The report as a standalone HTML page (every string escaped, the histogram embedded)."""
    esc = html.escape
    body = ["<h1>Class report</h1>"]
    for key, heading, header, rows, note in _tables(data):
        body.append(f'<h2 id="{key}">{esc(heading)}</h2>')
        if key == "summary" and histogram_png:
            body.append(f'<p><img alt="histogram of totals" src="{figures.data_uri(histogram_png)}"></p>')
        if rows:
            head = "".join(f"<th>{esc(h)}</th>" for h in header)
            lines = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
            body.append(f"<table><tr>{head}</tr>{lines}</table>")
        if note:
            body.append(f"<p>{esc(note)}</p>")
    style = ("body{font-family:sans-serif;max-width:70em;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:2px 6px;text-align:left;vertical-align:top}")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Class report</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(results: Sequence[Result], out: Path,
                 settings: integrity.Settings = integrity.Settings()) -> dict[str, Any]:
    """Write ``report.json``, ``report.md`` (+ ``report_histogram.png``) and ``report.html`` to ``out``."""
    out = Path(out)
    data = build(results, settings)
    picture = figures.histogram(data["histogram"]["edges"], data["histogram"]["counts"], "Totals")
    files.write_bytes(out / "report_histogram.png", picture)
    files.write_json(out / "report.json", data)
    files.write_text(out / "report.md", render_markdown(data))
    files.write_text(out / "report.html", render_html(data, picture))
    return data
