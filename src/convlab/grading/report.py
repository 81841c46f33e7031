"""The class report of a graded folder, and the integrity fingerprints it compares.

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
  near-identical (:func:`integrity`). A flag is a reason to look, not a proof.

The fingerprints are made by :func:`convlab.grading.grade.grade_one`, the only place that sees
the loaded models and the submitted notebook, and stored in ``result["integrity"]``:

* ``models[var]`` (:func:`weights_fingerprint`): ``sha256`` of every weight (shapes, dtypes and
  bytes), ``arch`` (hash of the weight shapes), ``params`` and ``sketch``, a fixed-seed Gaussian
  random projection of the flattened weights to :data:`SKETCH_SIZE` floats. Two models of the
  same variable and architecture are *exact* copies with equal ``sha256`` and *near* copies with
  sketch cosine similarity ≥ ``Settings.weights_cosine`` (a projection keeps the angle between
  two weight vectors up to ~1/sqrt(32) relative error: 0.995 flags weights a few degrees apart,
  such as a copy trained one more epoch or with noise of 0.1 × each kernel's spread added, not
  independently trained models, which reach at most 0.964 on the committed models).
* ``models[var]["predictions"]`` (:func:`prediction_signature`): what the model computes on the
  grader's fixed probe (:func:`probe_images`: test images and blends of two), as predicted
  classes and centered log-probabilities. Permuting hidden units leaves it unchanged and noise on
  the weights changes few predictions, while independently trained models disagree on many
  blends; two models of one variable are flagged when their predicted classes agree on at least
  ``Settings.predictions_agreement`` (per probe) of the probe and their log-probabilities
  correlate ≥ ``Settings.predictions_correlation``.
* ``answers`` (:func:`answer_fingerprint`): the submitted notebook's code cells, minus the cells
  identical to the student template's, tokenized with comments and whitespace dropped;
  ``sha256`` of that text (exact copies up to comments, blank lines and spacing) and a MinHash
  (:data:`MINHASH_SIZE` hashes of :data:`SHINGLE` -token shingles) of the token stream with the
  user's own names replaced by one placeholder (attributes, keyword arguments, keywords,
  builtins, numbers and strings stay), so a copy with renamed variables or a few changed tokens
  is *near* (estimated Jaccard ≥ ``Settings.answers_jaccard``). Blank or very short answers
  (fewer than ``Settings.min_answer_tokens`` tokens) are never compared.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
import hashlib
import html
import json
import keyword
import math
import os
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convlab.grading import batch, figures

SKETCH_SIZE = 32
SKETCH_SEED = 20240917
MINHASH_SIZE = 64
MINHASH_SEED = 1729
SHINGLE = 5
SLOWEST = 10
MESSAGE_CHARS = 300
PROBE_SIZE = 256  #: fixed test images each model predicts for its prediction signature
PROBE_SEED = 20251201


@dataclass(frozen=True)
class Settings:
    """Thresholds of the integrity section."""

    weights_cosine: float = 0.995  #: sketch cosine similarity from which two models are near-identical
    answers_jaccard: float = 0.9  #: estimated Jaccard similarity from which two answers are near-identical
    min_answer_tokens: int = 10  #: shorter answer texts (blank ones included) are never compared
    #: prediction signatures, per probe: share of the probe images with the same predicted class
    #: from which two models of one variable compute "the same function" (with the correlation
    #: below). Honest pairs measured on the committed models: docs/maintainers.md
    predictions_agreement: tuple[tuple[str, float], ...] = (
        ("mnist-test+blends", 0.94), ("cifar10-test+blends", 0.85), ("noise", 0.94))
    #: ... and the least correlation of their centered log-probabilities (two constant models
    #: agree on every label without computing the same function)
    predictions_correlation: float = 0.95


# ------------------------------------------------------------------------------ fingerprints
def weights_fingerprint(weights: Sequence[Any], cache: dict[str, dict[str, Any]] | None = None
                        ) -> dict[str, Any]:
    """``sha256``, ``arch``, ``params`` and ``sketch`` of a model's weights (numpy arrays, in order);
    ``cache`` (sha256 -> fingerprint) skips the projection of weights already seen."""
    import numpy as np

    arrays = [np.ascontiguousarray(np.asarray(w)) for w in weights]
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(json.dumps([list(array.shape), array.dtype.str]).encode())
        digest.update(array.tobytes())
    sha = digest.hexdigest()
    if cache is not None and sha in cache:
        return dict(cache[sha])
    sketch = np.zeros(SKETCH_SIZE)
    rng = np.random.default_rng(SKETCH_SEED)
    for array in arrays:
        flat = np.nan_to_num(array.astype(np.float64).ravel(), nan=0.0, posinf=0.0, neginf=0.0)
        for start in range(0, flat.size, 1 << 16):  # the same matrix for the same shapes
            part = flat[start:start + (1 << 16)]
            sketch += rng.standard_normal((SKETCH_SIZE, part.size), dtype=np.float32) @ part
    arch = hashlib.sha256(json.dumps([list(a.shape) for a in arrays]).encode()).hexdigest()[:16]
    fingerprint = {"sha256": sha, "arch": arch, "params": int(sum(a.size for a in arrays)),
                   "sketch": [round(float(v), 6) for v in sketch]}
    if cache is not None:
        cache[sha] = fingerprint
    return dict(fingerprint)


# ------------------------------------------------------------------------ prediction signatures
_PROBES: dict[tuple[int, ...], tuple[str, Any]] = {}


def probe_images(shape: Sequence[int | None]) -> tuple[str, Any] | None:
    """The grader's fixed probe set for a model input ``shape`` (without the batch axis):
    :data:`PROBE_SIZE` test images of MNIST (28×28 or 28×28×1) or CIFAR-10 (32×32×3), picked by a
    fixed seed, scaled to [0, 1] as float32, as (name, array); None for any other shape. Without
    the datasets, a fixed-seed uniform noise probe (``"noise"``) of that shape."""
    import numpy as np

    key = tuple(int(d) if d is not None else -1 for d in shape)
    if key in _PROBES:
        return _PROBES[key]
    dataset = {(28, 28): "mnist", (28, 28, 1): "mnist", (32, 32, 3): "cifar10"}.get(key)
    if dataset is None:
        return None
    rng = np.random.default_rng(PROBE_SEED)
    try:
        from convlab import datasets

        _, (x_test, _) = datasets.load(dataset)
        pick = rng.choice(len(x_test), size=PROBE_SIZE * 2, replace=False)
        x = np.asarray(x_test)[pick].astype(np.float32).reshape((PROBE_SIZE * 2, *key)) / 255.0
        half = PROBE_SIZE // 2  # pristine images, then even blends of two others
        images = np.concatenate([x[:half], (x[half:PROBE_SIZE] + x[PROBE_SIZE:PROBE_SIZE + half]) / 2])
        images = np.concatenate([images, x[PROBE_SIZE + half:PROBE_SIZE + half + PROBE_SIZE - len(images)]])
        name = f"{dataset}-test+blends"
    except Exception:  # no datasets here: still deterministic, less telling
        images = rng.random((PROBE_SIZE, *key), dtype=np.float32)
        name = "noise"
    _PROBES[key] = (name, images)
    return _PROBES[key]


def _log_probabilities(outputs: Any) -> Any:
    """Centered log-probabilities of a batch of outputs: softmax outputs (rows of non-negative
    numbers summing to 1) are logged, logits are log-softmaxed; each row then has mean 0."""
    import numpy as np

    out = np.nan_to_num(np.asarray(outputs, dtype=np.float64), nan=0.0, posinf=1e6, neginf=-1e6)
    if out.ndim == 1:
        out = np.stack([-out, out], axis=1) / 2  # one sigmoid/logit unit: two classes
    probabilities = np.all(out >= 0) and np.allclose(out.sum(axis=1), 1.0, atol=1e-3)
    if probabilities:
        out = np.log(np.clip(out, 1e-7, 1.0))
    else:
        out = out - out.max(axis=1, keepdims=True)
        out = out - np.log(np.exp(out).sum(axis=1, keepdims=True))
    return out - out.mean(axis=1, keepdims=True)


def prediction_signature(model: Any) -> dict[str, Any] | None:
    """What a loaded Keras model computes on the grader's probe set (:func:`probe_images`), as
    plain data: ``probe`` (its name), ``classes``, ``labels`` (the predicted class of each probe
    image, a string of base-36 digits) and ``logp`` (the centered log-probabilities, float16,
    base64). Permuted hidden units or noise on the weights do not change it much; independently
    trained models differ on the images they find hard. None when the model's input is not an
    image of the labs or its output is not a class vector (called by the scorer, never with a
    model the scorer did not load itself)."""
    import base64

    import numpy as np

    try:
        shape = tuple(model.inputs[0].shape)[1:]
    except Exception:
        return None
    probe = probe_images(shape)
    if probe is None:
        return None
    name, images = probe
    try:
        outputs = np.concatenate([np.asarray(model(images[i:i + 64], training=False))
                                  for i in range(0, len(images), 64)])
    except Exception:
        return None
    if outputs.ndim == 1 or (outputs.ndim == 2 and outputs.shape[1] == 1):
        outputs = outputs.reshape(len(images))
    elif outputs.ndim != 2 or not 2 <= outputs.shape[1] <= 36:
        return None
    logp = _log_probabilities(outputs)
    labels = logp.argmax(axis=1)
    return {"probe": name, "size": len(images), "classes": int(logp.shape[1]),
            "labels": "".join(np.base_repr(int(v), 36) for v in labels),
            "logp": base64.b64encode(logp.astype("<f2").tobytes()).decode("ascii")}


def prediction_similarity(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, float] | None:
    """(label agreement, correlation of the centered log-probabilities) of two prediction
    signatures on the same probe; None when they are not comparable."""
    import base64

    import numpy as np

    keys = ("probe", "size", "classes")
    if any(a.get(k) != b.get(k) for k in keys) or len(a.get("labels", "")) != len(b.get("labels", "")):
        return None
    try:
        la = np.frombuffer(base64.b64decode(a["logp"]), "<f2").astype(np.float64)
        lb = np.frombuffer(base64.b64decode(b["logp"]), "<f2").astype(np.float64)
    except (ValueError, TypeError, KeyError):
        return None
    if la.size != lb.size or not la.size:
        return None
    agreement = sum(x == y for x, y in zip(a["labels"], b["labels"], strict=True)) / len(a["labels"])
    la, lb = la - la.mean(), lb - lb.mean()
    norm = float(np.linalg.norm(la) * np.linalg.norm(lb))
    return agreement, float(la @ lb / norm) if norm else 0.0


_TOKEN = re.compile(r"""
    (?P<string>[rRbBuUfF]{0,2}(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
  | (?P<comment>\#[^\n]*)
  | (?P<name>[^\W\d]\w*)
  | (?P<number>\d[\w.]*)
  | (?P<op>\*\*=?|//=?|>>=?|<<=?|==|!=|<=|>=|->|:=|[-+*/%&|^@]=|[^\s\w])
""", re.VERBOSE)
_KEEP = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins))
PLACEHOLDER = "·"


def tokens(source: str) -> list[tuple[str, str]]:
    """The (kind, text) tokens of a code cell, comments and whitespace dropped."""
    return [(m.lastgroup or "", m.group()) for m in _TOKEN.finditer(source) if m.lastgroup != "comment"]


def normalized(source: str) -> str:
    """A code cell with comments, blank lines and spacing removed (tokens joined by one space)."""
    return " ".join(text for _, text in tokens(source))


def abstracted(source: str) -> list[str]:
    """The tokens with the user's own names replaced by :data:`PLACEHOLDER`: names that are not
    keywords, builtins, attributes (after ``.``) or keyword arguments (``(name=`` / ``, name=``)."""
    toks = tokens(source)
    out = []
    for i, (kind, text) in enumerate(toks):
        if kind == "name" and text not in _KEEP:
            before = toks[i - 1][1] if i else ""
            after = toks[i + 1][1] if i + 1 < len(toks) else ""
            if before != "." and not (before in ("(", ",") and after == "="):
                text = PLACEHOLDER
        out.append(text)
    return out


def minhash(words: Sequence[str]) -> list[int]:
    """A MinHash of the ``SHINGLE``-word shingles of ``words`` (deterministic); [] when empty."""
    import numpy as np

    if not words:
        return []
    shingles = {" ".join(words[i:i + SHINGLE]) for i in range(max(1, len(words) - SHINGLE + 1))}
    values = np.fromiter((int.from_bytes(hashlib.blake2b(s.encode(), digest_size=4).digest(), "little")
                          for s in sorted(shingles)), dtype=np.uint64, count=len(shingles))
    rng = np.random.default_rng(MINHASH_SEED)  # multiply-add-shift hashes of the 32-bit values
    a = rng.integers(0, 1 << 63, size=(MINHASH_SIZE, 1), dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 1 << 63, size=(MINHASH_SIZE, 1), dtype=np.uint64)
    best = np.full(MINHASH_SIZE, np.iinfo(np.uint64).max, dtype=np.uint64)
    for start in range(0, values.size, 8192):
        chunk = values[start:start + 8192]
        best = np.minimum(best, ((a * chunk + b) >> np.uint64(32)).min(axis=1))  # mod 2**64 wraps
    return [int(v) for v in best]


def answer_fingerprint(cells: Iterable[str], template: Iterable[str] = ()) -> dict[str, Any]:
    """``sha256`` (None when blank), ``tokens``, ``cells`` and ``minhash`` of the answer cells:
    the code cells ``cells`` minus those equal to a ``template`` cell (after :func:`normalized`)."""
    skip = {normalized(c) for c in template}
    kept = [c for c in cells if (n := normalized(c)) and n not in skip]
    text = "\n".join(normalized(c) for c in kept)
    words = [w for c in kept for w in abstracted(c)]
    return {"sha256": hashlib.sha256(text.encode()).hexdigest() if text else None,
            "tokens": len(words), "cells": len(kept), "minhash": minhash(words)}


def jaccard(a: Sequence[int], b: Sequence[int]) -> float:
    """The Jaccard similarity estimated from two MinHashes."""
    if not a or len(a) != len(b):
        return 0.0
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two sketches (0 when one is zero)."""
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
    if not na or not nb or len(a) != len(b):
        return 0.0
    return sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb)


# --------------------------------------------------------------------------------- integrity
def _clusters(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group flagged pairs into connected clusters of students (sorted, most similar first)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for pair in pairs:
        parent[find(pair["a"])] = find(pair["b"])
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for pair in pairs:
        groups[find(pair["a"])].append(pair)
    out = []
    for members in groups.values():
        members.sort(key=lambda p: (-p["similarity"], p["a"], p["b"]))
        students = sorted({s for p in members for s in (p["a"], p["b"])})
        out.append({"students": students, "exact": all(p["exact"] for p in members), "pairs": members})
    return sorted(out, key=lambda c: (-max(p["similarity"] for p in c["pairs"]), c["students"]))


def _prediction_flags(signatures: dict[str, list[tuple[str, dict]]], settings: Settings
                      ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Clusters of models (per variable) whose prediction signatures agree above the thresholds,
    and per variable the agreement of all its pairs (how far apart this class's models are)."""
    thresholds = dict(settings.predictions_agreement)
    clusters, spread = [], {}
    for var, entries in sorted(signatures.items()):
        pairs, agreements = [], []
        for i, (a, sa) in enumerate(entries):
            for b, sb in entries[i + 1:]:
                similarity = prediction_similarity(sa, sb) if a != b else None
                if similarity is None:
                    continue
                agreement, correlation = similarity
                agreements.append(agreement)
                limit = thresholds.get(str(sa.get("probe")), max(thresholds.values(), default=1.0))
                if agreement >= limit and correlation >= settings.predictions_correlation:
                    pairs.append({"a": a, "b": b, "exact": agreement == 1.0 and correlation > 0.99999,
                                  "similarity": round(agreement, 4), "correlation": round(correlation, 4)})
        if agreements:
            spread[var] = {"pairs": len(agreements), "median": round(statistics.median(agreements), 4),
                           "max": round(max(agreements), 4)}
        for cluster in _clusters(pairs):
            clusters.append({"variable": var, **cluster})
    return clusters, spread


def integrity(results: Iterable[dict[str, Any]], settings: Settings = Settings()) -> dict[str, Any]:
    """Pairs and clusters of submissions with (near-)identical weights, predictions and answers."""
    models: dict[tuple[str, str], list[tuple[str, dict]]] = defaultdict(list)
    signatures: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    answers: list[tuple[str, dict]] = []
    for result in results:
        data = result.get("integrity")
        if not isinstance(data, dict):
            continue
        sid = str(result.get("student_id", ""))
        for var, fp in (data.get("models") or {}).items():
            if isinstance(fp, dict) and fp.get("sha256"):
                models[(str(var), str(fp.get("arch")))].append((sid, fp))
            if isinstance(fp, dict) and isinstance(fp.get("predictions"), dict):
                signatures[str(var)].append((sid, fp["predictions"]))
        fp = data.get("answers")
        long_enough = isinstance(fp, dict) and int(fp.get("tokens") or 0) >= settings.min_answer_tokens
        if long_enough and fp.get("sha256"):
            answers.append((sid, fp))

    weight_clusters = []
    for (var, arch), entries in sorted(models.items()):
        pairs = []
        for i, (a, fa) in enumerate(entries):
            for b, fb in entries[i + 1:]:
                if a == b:
                    continue
                exact = fa["sha256"] == fb["sha256"]
                similarity = 1.0 if exact else cosine(fa.get("sketch") or [], fb.get("sketch") or [])
                if exact or similarity >= settings.weights_cosine:
                    pairs.append({"a": a, "b": b, "exact": exact, "similarity": round(similarity, 6)})
        for cluster in _clusters(pairs):
            weight_clusters.append({"variable": var, "arch": arch, **cluster})
    prediction_clusters, spread = _prediction_flags(signatures, settings)

    pairs = []
    for i, (a, fa) in enumerate(answers):
        for b, fb in answers[i + 1:]:
            exact = fa["sha256"] == fb["sha256"]
            similarity = 1.0 if exact else jaccard(fa.get("minhash") or [], fb.get("minhash") or [])
            if a != b and (exact or similarity >= settings.answers_jaccard):
                pairs.append({"a": a, "b": b, "exact": exact, "similarity": round(similarity, 4)})
    return {"settings": dataclasses.asdict(settings), "weights": weight_clusters,
            "predictions": prediction_clusters, "predictions_spread": spread, "answers": _clusters(pairs),
            "models_compared": sum(len(v) for v in models.values()),
            "predictions_compared": sum(len(v) for v in signatures.values()),
            "answers_compared": len(answers)}


# ------------------------------------------------------------------------------------ numbers
def _total(result: dict[str, Any]) -> float:
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


def build(results: Sequence[dict[str, Any]], settings: Settings = Settings()) -> dict[str, Any]:
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

    def seconds(r: dict[str, Any]) -> float:
        return float(r.get("duration_s") or 0.0)

    slowest = [{"student_id": r.get("student_id"), "status": r.get("status"), "duration_s": seconds(r),
                "execution_s": (r.get("execution") or {}).get("seconds"),
                "peak_rss_mb": (r.get("execution") or {}).get("peak_rss_mb")}
               for r in sorted(results, key=lambda r: (-seconds(r), str(r.get("student_id"))))[:SLOWEST]]

    ran = [r for r in results if (r.get("execution") or {}).get("protections")]
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
            "integrity": integrity(results, settings)}


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
                     f"{DISCLAIMER} Identical: same sha256 of all weights; near-identical: cosine similarity "
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
                     f"removed; near-identical: estimated Jaccard similarity of {SHINGLE}-token shingles "
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


def write_report(results: Sequence[dict[str, Any]], out: Path,
                 settings: Settings = Settings()) -> dict[str, Any]:
    """Write ``report.json``, ``report.md`` (+ ``report_histogram.png``) and ``report.html`` to ``out``."""
    out = Path(out)
    data = build(results, settings)
    picture = figures.histogram(data["histogram"]["edges"], data["histogram"]["counts"], "Totals")
    (out / "report_histogram.png").write_bytes(picture)
    batch.write_atomic(out / "report.json", json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    batch.write_atomic(out / "report.md", render_markdown(data))
    batch.write_atomic(out / "report.html", render_html(data, picture))
    return data
