"""Integrity: fingerprints of each submission's models and answers, and the pairs that match.

:func:`integrity` finds the submissions of a batch whose trained weights, predictions or answer
cells are identical or near-identical (the class report's integrity section,
:mod:`convlab.grading.report`). A flag is a reason to look, not a proof.

The fingerprints are made while scoring (:class:`Collector`, the observer of
:func:`convlab.grading.score.score`, the only place that sees the loaded models; and
:func:`answers_fingerprint` on the submitted notebook) and stored in ``result["integrity"]``:

* ``models[var]`` (:func:`weights_fingerprint`): ``digest`` of every weight (shapes, dtypes and
  bytes; :func:`convlab.artifacts.arrays_digest`, the package's one weights digest), ``arch``
  (hash of the weight shapes), ``params`` and ``sketch``, a fixed-seed Gaussian random projection
  of the flattened weights to :data:`SKETCH_SIZE` floats. Two models of the same variable and
  architecture are *exact* copies with equal ``digest`` and *near* copies with sketch cosine
  similarity ≥ ``Settings.weights_cosine`` (a projection keeps the angle between two weight
  vectors up to ~1/sqrt(32) relative error: 0.995 flags weights a few degrees apart, such as a
  copy trained one more epoch or with noise of 0.1 × each kernel's spread added, not independently
  trained models, which reach at most 0.964 on the committed models).
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
import json
import keyword
import math
import re
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convlab import artifacts
from convlab.grading import execute, figures
from convlab.grading.results import Result

SKETCH_SIZE = 32


SKETCH_SEED = 20240917


MINHASH_SIZE = 64


MINHASH_SEED = 1729


SHINGLE = 5


PROBE_SIZE = 256  #: fixed test images each model predicts for its prediction signature
#: probe images per call of the model: the whole probe at once (one call keeps the cores busy;
#: eager calls of 64 images spent most of their time outside the arithmetic)
PROBE_BATCH = 1000


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


def weights_fingerprint(weights: Sequence[Any], cache: dict[str, dict[str, Any]] | None = None,
                        *, digest: str | None = None) -> dict[str, Any]:
    """``digest``, ``arch``, ``params`` and ``sketch`` of a model's weights (numpy arrays, in order);
    ``cache`` (digest -> fingerprint) skips the projection of weights already seen; ``digest``:
    their :func:`convlab.artifacts.arrays_digest` where the caller has it already."""
    import numpy as np

    arrays = [np.ascontiguousarray(np.asarray(w)) for w in weights]
    key = digest if digest is not None else artifacts.arrays_digest(arrays)
    if cache is not None and key in cache:
        return dict(cache[key])
    sketch = np.zeros(SKETCH_SIZE)
    rng = np.random.default_rng(SKETCH_SEED)
    for array in arrays:
        flat = np.nan_to_num(array.astype(np.float64).ravel(), nan=0.0, posinf=0.0, neginf=0.0)
        for start in range(0, flat.size, 1 << 16):  # the same matrix for the same shapes
            part = flat[start:start + (1 << 16)]
            sketch += rng.standard_normal((SKETCH_SIZE, part.size), dtype=np.float32) @ part
    arch = hashlib.sha256(json.dumps([list(a.shape) for a in arrays]).encode()).hexdigest()[:16]
    fingerprint = {"digest": key, "arch": arch, "params": int(sum(a.size for a in arrays)),
                   "sketch": [round(float(v), 6) for v in sketch]}
    if cache is not None:
        cache[key] = fingerprint
    return dict(fingerprint)


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
        outputs = np.concatenate([np.asarray(model(images[i:i + PROBE_BATCH], training=False))
                                  for i in range(0, len(images), PROBE_BATCH)])
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
    """Cosine similarity of two sketches (0 when one is zero, or is not a list of finite numbers:
    a result file is data from a sandbox, and one bad sketch must not stop the class report)."""
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
               for x in (*a, *b)):
        return 0.0
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
    if not na or not nb or len(a) != len(b):
        return 0.0
    return sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb)


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


def integrity(results: Iterable[Result], settings: Settings = Settings()) -> dict[str, Any]:
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
            if isinstance(fp, dict) and fp.get("digest"):
                models[(str(var), str(fp.get("arch")))].append((sid, fp))
            if isinstance(fp, dict) and isinstance(fp.get("predictions"), dict):
                signatures[str(var)].append((sid, fp["predictions"]))
        answer = data.get("answers")
        tokens = int(answer.get("tokens") or 0) if isinstance(answer, dict) else 0
        if isinstance(answer, dict) and tokens >= settings.min_answer_tokens and answer.get("sha256"):
            answers.append((sid, answer))

    weight_clusters = []
    for (var, arch), entries in sorted(models.items()):
        pairs = []
        for i, (a, fa) in enumerate(entries):
            for b, fb in entries[i + 1:]:
                if a == b:
                    continue
                exact = fa["digest"] == fb["digest"]
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


# ------------------------------------------------------------------------------ collection
class Collector:
    """``score.score``'s observer: fingerprints, prediction signatures and histories of the loaded
    models, and the values to draw in the feedback. A value seen in several questions keeps its
    last snapshot. Whatever runs the scoring (this process, or a confined scorer process) calls
    :func:`weights_fingerprint` and :func:`prediction_signature` on each model it
    loaded; both return plain JSON data. The model's digest is settled here
    (:func:`convlab.artifacts.settle_weights_digest`): the checks' prediction cache reuses it, so
    a grading digests each model once."""

    def __init__(self, wanted: Mapping[str, str]) -> None:
        self.wanted = dict(wanted)
        self.models: dict[str, Any] = {}
        self.histories: dict[str, Any] = {}
        self.figures: dict[str, Any] = {}
        self._seen: dict[str, dict[str, Any]] = {}  # digest -> fingerprint (a model in several questions)
        self._predictions: dict[str, dict[str, Any] | None] = {}  # digest -> prediction signature

    def __call__(self, question: str, name: str, value: Any) -> None:
        keras = sys.modules.get("keras")
        if keras is not None and isinstance(value, keras.Model):
            digest = artifacts.settle_weights_digest(value)
            fingerprint = (dict(self._seen[digest]) if digest in self._seen
                           else weights_fingerprint(value.get_weights(), self._seen, digest=digest))
            if digest not in self._predictions:
                self._predictions[digest] = prediction_signature(value)
            if self._predictions[digest] is not None:
                fingerprint["predictions"] = self._predictions[digest]
            self.models[name] = fingerprint
            history = figures.plain_history(getattr(getattr(value, "history", None), "history", None))
            if history:
                self.histories[name] = history
        if self.wanted.get(name) == "confusion" and (matrix := figures.plain_matrix(value)) is not None:
            self.figures[name] = {"kind": "confusion", "matrix": matrix}


def code_cells(nb: Any) -> list[str]:
    """The sources of a notebook's code cells."""
    return [c.get("source") or "" for c in nb.get("cells") or [] if c.get("cell_type") == "code"
            and isinstance(c.get("source"), str)]


@functools.cache
def _template_cells(template: Path | None) -> tuple[str, ...]:
    if template is None or not Path(template).is_file():
        return ()
    try:
        return tuple(code_cells(execute.submitted_notebook(Path(template))))
    except execute.SubmissionError:
        return ()


def answers_fingerprint(submission: Path, template: Path | None = None) -> dict[str, Any] | None:
    """The integrity fingerprint of a submission's answer cells (None when unreadable)."""
    try:
        nb = execute.submitted_notebook(submission)
    except execute.SubmissionError:
        return None
    return answer_fingerprint(code_cells(nb), _template_cells(template))
