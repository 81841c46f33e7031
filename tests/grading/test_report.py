"""The class report, the integrity fingerprints and the pictures of the feedback.

The report is built from synthetic result dicts (the layout of ``score.score``); one end-to-end
test grades tiny notebooks in real kernels (the tiny lab of ``test_two_phase.py``).
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_two_phase import HONEST, SETUP, autograder, config, notebook  # noqa: F401 (fixture)

from convlab.grading import feedback, grade, integrity, report

IMG = '<img alt="'
DATA = 'src="data:image/png;base64,'


def case(name: str, passed: bool, message: str = "", hidden: bool = False) -> dict[str, Any]:
    return {"name": name, "points": 1.0, "hidden": hidden, "passed": passed,
            "message": "" if passed else message}


def result(sid: str, total: float, *, status: str = "ok", q1: tuple[bool, bool] = (True, True),
           q2: bool = True, duration: float = 1.0, rss: int = 100, message: str = "x != 42",
           **extra: Any) -> dict[str, Any]:
    questions = {
        "q1": {"score": 0.0, "possible": 2.0, "cases": [case("test_public", q1[0], message),
                                                          case("test_hidden", q1[1], "len(lst)", True)]},
        "q2": {"score": 0.0, "possible": 1.0, "cases": [case("test_y", q2, "y: ожидается: 'конец'")]},
    }
    for value in questions.values():
        value["output"] = value["public_output"] = ""
    protections = {"network_namespace": True, "unprivileged_user": status != "memory", "process_group": True}
    return {"student_id": sid, "file": f"{sid}.ipynb", "status": status, "total": total, "max_total": 3.0,
            "scores": {}, "questions": questions, "duration_s": duration,
            "execution": {"seconds": duration - 0.5, "peak_rss_mb": rss, "protections": protections},
            **extra}


def synthetic() -> list[dict[str, Any]]:
    return [
        result("a", 3.0, duration=5.0, rss=300),
        result("b", 2.0, q2=False, duration=50.0, rss=900),
        result("c", 0.0, status="timeout", q1=(False, False), q2=False, duration=20.0, message="x: 0"),
        result("d", 1.0, status="memory", q1=(False, True), q2=False, duration=2.0,
               warnings=["the notebook ran without the unprivileged sandbox user"]),
        result("e", 2.0, q1=(False, True), duration=9.0),
        {"student_id": "f", "file": "f.ipynb", "status": "invalid-notebook", "total": 0.0, "max_total": 3.0,
         "questions": {}, "duration_s": 0.1,
         "execution": {"seconds": 0.0, "peak_rss_mb": 0, "protections": {}}},
    ]


# ------------------------------------------------------------------------------------ numbers
def test_report_numbers() -> None:
    """Are the summary, the histogram counts, the pass rates (hardest first, with the most common
    failure message), the slowest order and the protection counts those of the results?"""
    data = report.build(synthetic())
    s = data["summary"]
    assert (s["submissions"], s["max_total"], s["mean"], s["median"], s["min"], s["max"]) == (
        6, 3.0, round(8 / 6, 3), 1.5, 0.0, 3.0)
    assert s["statuses"] == {"ok": 3, "invalid-notebook": 1, "memory": 1, "timeout": 1}
    assert data["histogram"]["edges"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert data["histogram"]["counts"] == [2, 1, 2, 1]  # totals 0, 0 | 1 | 2, 2 | 3
    rates = [(c["question"], c["case"], c["passed"], c["graded"]) for c in data["checks"]]
    assert rates == [("q1", "test_public", 2, 5), ("q2", "test_y", 2, 5), ("q1", "test_hidden", 4, 5)]
    public = data["checks"][0]
    assert (public["common_failure"], public["common_failure_count"]) == ("x != 42", 2)
    assert public["hidden"] is False
    assert data["checks"][2]["hidden"] is True
    assert [r["student_id"] for r in data["slowest"]] == ["b", "c", "e", "a", "d", "f"]
    assert data["slowest"][0]["peak_rss_mb"] == 900
    assert data["protections"]["network_namespace"] == {"on": 5, "of": 5}
    assert data["protections"]["unprivileged_user"] == {"on": 4, "of": 5}
    assert data["not_executed"] == 1
    assert data["warnings"] == [{"warning": "the notebook ran without the unprivileged sandbox user",
                                 "students": ["d"]}]


def test_report_files_escape_and_embed(tmp_path: Path) -> None:
    """Does write_report write the three files with the same numbers, the histogram embedded in
    the HTML as a PNG and linked from the Markdown, and a student's message escaped?"""
    results = synthetic()
    for failing in results[2:5]:  # the most common failure of test_public
        failing["questions"]["q1"]["cases"][0]["message"] = "<script>alert(1)</script> | x ![t](http://e/p.png)"
    data = report.write_report(results, tmp_path)
    assert json.loads((tmp_path / "report.json").read_text()) == json.loads(json.dumps(data))
    page = (tmp_path / "report.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    uri = re.search(r'src="data:image/png;base64,([^"]+)"', page)
    assert uri and base64.b64decode(uri.group(1)).startswith(b"\x89PNG")
    md = (tmp_path / "report.md").read_text()
    assert "![histogram of totals](report_histogram.png)" in md
    assert (tmp_path / "report_histogram.png").read_bytes().startswith(b"\x89PNG")
    # one table cell: no raw HTML, no image or link
    assert r"&lt;script&gt;alert\(1\)&lt;/script&gt; \| x \!\[t\]\(http\://e/p\.png\)" in md
    assert "<script>" not in md and "](http" not in md
    assert "network namespace | 5/5" in md and "not proof" in md


# ---------------------------------------------------------------------------------- integrity
def weights(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(3, 3, 1, 8)).astype(np.float32), np.zeros(8, np.float32),
            rng.normal(size=(72, 10)).astype(np.float32)]


def with_models(sid: str, **models: list[np.ndarray]) -> dict[str, Any]:
    return {"student_id": sid, "integrity": {
        "models": {var: integrity.weights_fingerprint(w) for var, w in models.items()}, "answers": None}}


def test_weights_flagged_exact_near_not_unrelated() -> None:
    """Are two students with the same weights flagged identical, one whose weights differ by
    tiny noise near-identical, an independently trained one not, and a model of another
    architecture or variable never compared?"""
    base = weights(0)
    noisy = [w + np.float32(1e-2) * np.random.default_rng(9).normal(size=w.shape).astype(np.float32)
             for w in base]
    wider = [*base[:2], np.zeros((72, 11), np.float32)]
    results = [with_models("ann", model1=base), with_models("ben", model1=base),
               with_models("cid", model1=noisy), with_models("dan", model1=weights(1)),
               with_models("eva", model1=wider, model2=base)]
    flags = integrity.integrity(results)["weights"]
    assert len(flags) == 1, flags
    cluster = flags[0]
    assert (cluster["variable"], cluster["students"]) == ("model1", ["ann", "ben", "cid"])
    assert cluster["exact"] is False
    pairs = {(p["a"], p["b"]): (p["exact"], p["similarity"]) for p in cluster["pairs"]}
    assert pairs[("ann", "ben")] == (True, 1.0)
    assert not pairs[("ann", "cid")][0] and 0.995 <= pairs[("ann", "cid")][1] < 1.0
    independent = integrity.cosine(results[0]["integrity"]["models"]["model1"]["sketch"],
                                results[3]["integrity"]["models"]["model1"]["sketch"])
    assert independent < 0.9
    cache: dict[str, Any] = {}
    first = integrity.weights_fingerprint(base, cache)
    assert integrity.weights_fingerprint(base, cache) == first == results[0]["integrity"]["models"]["model1"]
    assert list(cache) == [first["digest"]]


ANSWER = '''model = keras.Sequential([
    layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),  # first block
    layers.MaxPooling2D((2, 2)),
    layers.Flatten(),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x_train, y_train, epochs=5, validation_split=0.1)
total_params_1 = model.count_params()
'''
TEMPLATE = ["import numpy as np\nimport keras\nfrom keras import layers", "grader.check('q1')",
            "total_params_1 = ???"]


def with_answers(sid: str, *cells: str) -> dict[str, Any]:
    fp = integrity.answer_fingerprint([*TEMPLATE[:2], *cells], TEMPLATE)
    return {"student_id": sid, "integrity": {"models": {}, "answers": fp}}


def test_answers_flagged_identical_renamed_not_unrelated_not_blank() -> None:
    """Are a copy differing only in comments and spacing flagged identical, a copy with renamed
    variables near-identical, an unrelated answer not flagged, and blank submissions (only the
    template's cells) never flagged as a cluster?"""
    respaced = re.sub(r"  # first block", "", ANSWER).replace(", ", ",  ").replace("\n", "\n\n# note\n")
    renamed = ANSWER.replace("model", "net").replace("history", "hist")
    unrelated = ("import matplotlib.pyplot as plt\nfig, axes = plt.subplots(2, 5)\nfor i, ax in enumerate("
                 "axes.flat):\n    ax.imshow(x_test[i], cmap='gray')\n    ax.set_title(str(y_test[i]))\n")
    results = [with_answers("ann", ANSWER), with_answers("ben", respaced), with_answers("cid", renamed),
               with_answers("dan", unrelated), with_answers("blank1"), with_answers("blank2"),
               with_answers("blank3", TEMPLATE[2])]
    assert results[4]["integrity"]["answers"]["sha256"] is None
    assert results[6]["integrity"]["answers"] == results[4]["integrity"]["answers"]
    data = integrity.integrity(results)
    assert data["answers_compared"] == 4
    assert [c["students"] for c in data["answers"]] == [["ann", "ben", "cid"]]
    pairs = {(p["a"], p["b"]): (p["exact"], p["similarity"]) for p in data["answers"][0]["pairs"]}
    assert pairs[("ann", "ben")] == (True, 1.0)
    assert pairs[("ann", "cid")][0] is False and pairs[("ann", "cid")][1] >= 0.9
    changed = ANSWER.replace("32", "64").replace("(3, 3)", "(5, 5)").replace("adam", "sgd").replace(
        '"relu"', '"tanh"')
    assert integrity.jaccard(results[0]["integrity"]["answers"]["minhash"],
                          with_answers("x", changed)["integrity"]["answers"]["minhash"]) < 0.9


# ------------------------------------------------------------------------------------ feedback
HISTORY = {"loss": [1.2, 0.8, 0.5], "accuracy": [0.6, 0.75, 0.9], "val_loss": [1.0, 0.9, 0.7],
           "val_accuracy": [0.65, 0.7, 0.8]}


def test_feedback_pictures_and_escaping(tmp_path: Path) -> None:
    """Does the feedback HTML embed a PNG for a result with a fit history (and a confusion
    matrix), none without, write the PNG files the Markdown links, and escape a student string?"""
    plain = result("plain", 1.0, q2=False)
    plain["questions"]["q2"]["cases"][0]["message"] = "<script>alert('x')</script>"
    assert DATA not in feedback.feedback_html(plain)
    page = feedback.feedback_html(plain)
    assert "<script>" not in page and "&lt;script&gt;" in page
    pictured = result("pictured", 3.0, histories={"model1": HISTORY, "bad name<": HISTORY},
                      figures={"confusion": {"kind": "confusion", "matrix": [[5, 1], [0, 4]]}})
    page = feedback.feedback_html(pictured)
    assert page.count(DATA) == 2 and page.count(IMG) == 2 and "bad name" not in page
    feedback.write_reports([plain, pictured], tmp_path)
    assert not (tmp_path / "feedback" / "plain").exists()
    assert sorted(p.name for p in (tmp_path / "feedback" / "pictured").iterdir()) == [
        "confusion_confusion.png", "curves_model1.png"]
    md = (tmp_path / "feedback" / "pictured.md").read_text()
    assert "(pictured/curves_model1.png)" in md and "(pictured/confusion_confusion.png)" in md
    assert (tmp_path / "feedback" / "pictured.html").read_text().count(DATA) == 2


def test_feedback_pictures_drawn_by_the_worker_are_copied_not_redrawn(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Are the pictures the grading worker drew into ``out/work/<id>`` (draw_figures) copied into
    the feedback by write_reports without drawing them again in the main process, the same
    files as drawn there; and drawn afresh when the worker's ones show another result?"""
    from convlab.grading import figures

    pictured = result("pictured", 3.0, histories={"model1": HISTORY},
                      figures={"confusion": {"kind": "confusion", "matrix": [[5, 1], [0, 4]]}})
    feedback.draw_figures(pictured, tmp_path / "work" / "pictured")
    expected = {stem: picture for stem, _, picture in feedback.feedback_figures(pictured)}

    def no_drawing(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("drawn again in the main process")

    monkeypatch.setattr(figures, "learning_curves", no_drawing)
    monkeypatch.setattr(figures, "confusion_matrix", no_drawing)
    feedback.write_reports([pictured], tmp_path)
    written = {p.stem: p.read_bytes() for p in (tmp_path / "feedback" / "pictured").iterdir()}
    assert written == expected and len(written) == 2
    assert (tmp_path / "feedback" / "pictured.html").read_text().count(DATA) == 2
    monkeypatch.undo()
    other = result("pictured", 3.0, histories={"model2": HISTORY})  # not what the worker drew
    assert feedback.drawn_figures(other, tmp_path / "work" / "pictured") is None
    feedback.write_reports([other], tmp_path)
    assert sorted(p.name for p in (tmp_path / "feedback" / "pictured").iterdir()) == ["curves_model2.png"]


def test_collector_reads_models_histories_and_matrices() -> None:
    """Does grade_one's observer fingerprint a loaded Keras model, keep its re-attached fit
    history as bounded plain lists (odd metric names dropped), and keep a wanted square integer
    matrix while refusing a non-square one?"""
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    record = keras.callbacks.History()
    record.history = {"loss": [float(v) for v in range(1500)], "val_loss": [float("nan"), 1.0],
                      "<b>": [1.0]}
    model.history = record
    collector = integrity.Collector({"cm": "confusion", "bad": "confusion"})
    collector("q1", "model1", model)
    collector("q2", "cm", np.array([[3, 1], [2, 4]], dtype=np.int32))
    collector("q2", "bad", np.zeros((2, 3), dtype=int))
    fp = collector.models["model1"]
    assert fp == integrity.weights_fingerprint(model.get_weights()) and fp["params"] == 8
    assert set(collector.histories["model1"]) == {"loss", "val_loss"}
    assert len(collector.histories["model1"]["loss"]) == 1000
    assert collector.histories["model1"]["val_loss"] == [None, 1.0]
    assert collector.figures == {"cm": {"kind": "confusion", "matrix": [[3, 1], [2, 4]]}}


# ---------------------------------------------------------------------------------- end to end
def test_grade_folder_writes_report_and_flags_copies(autograder: Path, tmp_path: Path) -> None:  # noqa: F811
    """Through grade_folder on real kernels: are report.html / .md / .json written, two copies
    of one notebook under two names flagged identical answers, and neither an unrelated notebook
    nor two untouched templates flagged?"""
    import dataclasses

    subs = tmp_path / "subs"
    template = notebook(tmp_path / "template", "tiny.ipynb", SETUP, "x = ...", "grader.check('q1')")
    notebook(subs, "alice.ipynb", SETUP, *HONEST)
    notebook(subs, "bob_copy.ipynb", SETUP, *HONEST)
    notebook(subs, "carol.ipynb", SETUP, "x = 6 * 7\nlst = list(range(1, 4))\ny = 'кон' + 'ец'",
             "grader.check('q1')", "grader.check('q2')")
    notebook(subs, "blank1.ipynb", SETUP, "x = ...", "grader.check('q1')")
    notebook(subs, "blank2.ipynb", SETUP, "x = ...", "grader.check('q1')")
    out = tmp_path / "out"
    cfg = dataclasses.replace(config(autograder), template=template)
    results = {r["student_id"]: r for r in grade.grade_folder(cfg, subs, out, workers=1, progress=False)}
    assert {k: r["total"] for k, r in results.items()} == {"alice": 4.0, "bob_copy": 4.0, "carol": 4.0,
                                                          "blank1": 0.0, "blank2": 0.0}
    assert results["blank1"]["integrity"]["answers"]["sha256"] is None
    data = json.loads((out / "report.json").read_text())
    assert data["summary"]["submissions"] == 5 and data["summary"]["statuses"] == {"ok": 5}
    flags = [(c["students"], c["exact"]) for c in data["integrity"]["answers"]]
    assert flags == [(["alice", "bob_copy"], True)]
    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and DATA in page and "alice ~ bob_copy: identical" in page
    assert r"alice \~ bob\_copy\: identical" in (out / "report.md").read_text()


# --------------------------------------------------------------------- prediction signatures
FIXTURES = Path(__file__).resolve().parents[2]


def _committed(lab: str, where: str, variable: str) -> list[Any]:
    keras = pytest.importorskip("keras")
    folder = FIXTURES / where / lab / "artifacts"
    manifest = json.loads((folder / "manifest.json").read_text())
    return [keras.saving.load_model(folder / e["file"], compile=False, safe_mode=True)
            for e in manifest.values() if variable in e["variables"] and (folder / e["file"]).exists()]


def _permuted(model: Any, seed: int = 0) -> Any:
    """The same function with other weights: the output channels of every Conv2D/Dense (and of
    the BatchNormalization after it) and the input channels of the next weighted layer permuted."""
    keras = pytest.importorskip("keras")
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    rng = np.random.default_rng(seed)

    def leaves(model: Any) -> list[Any]:  # NiN blocks are nested Sequentials
        return [leaf for layer in model.layers
                for leaf in (leaves(layer) if hasattr(layer, "layers") else [layer])]

    layers = [layer for layer in leaves(clone) if layer.weights]
    permuted = 0
    for i, layer in enumerate(layers):
        after = i + 1
        while after < len(layers) and type(layers[after]).__name__ == "BatchNormalization":
            after += 1
        if type(layer).__name__ not in ("Conv2D", "Dense") or after >= len(layers):
            continue
        w, nxt = layer.get_weights(), layers[after].get_weights()
        if type(layers[after]).__name__ not in ("Conv2D", "Dense") or nxt[0].shape[-2] != w[0].shape[-1]:
            continue  # a Flatten between: the next layer's inputs are not the channels
        p = rng.permutation(w[0].shape[-1])
        layer.set_weights([w[0][..., p], *(b[p] for b in w[1:])])
        for bn in layers[i + 1:after]:
            bn.set_weights([v[p] for v in bn.get_weights()])
        layers[after].set_weights([nxt[0][..., p, :], *nxt[1:]])
        permuted += 1
    assert permuted, "nothing to permute"
    return clone


def _noisy(model: Any, sigma: float = 0.1, seed: int = 1) -> Any:
    """Gaussian noise of sigma × (each weight matrix's std) on every kernel."""
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(seed)
    clone = keras.models.clone_model(model)
    clone.set_weights([w + rng.normal(0, sigma * w.std(), w.shape).astype(w.dtype) if w.ndim > 1 else w
                       for w in model.get_weights()])
    return clone


@pytest.mark.parametrize(("lab", "variable"), [("lab5_cnn", "model2"), ("lab5_cnn", "model4"),
                                               ("lab6_nin", "nin")])
def test_prediction_signatures_flag_permuted_and_noisy_copies_not_honest_pairs(
        lab: str, variable: str) -> None:
    """On the committed models (the reference and the independently trained fixtures of other
    scenarios): is a copy with permuted channels (weights fingerprint defeated) flagged by its
    predictions, a copy with noise on its weights by its predictions or its weights, and are the
    honest pairs flagged by neither?"""
    pytest.importorskip("convlab.datasets").datasets_root() or pytest.skip("needs CONVLAB_DATASETS")
    reference = _committed(lab, "solutions", variable)[0]
    honest = _committed(lab, "tests/fixtures", variable)
    assert honest, "no independently trained model of this variable"
    permuted, noisy = _permuted(reference), _noisy(reference)
    models = {"ref": reference, "perm": permuted, "noisy": noisy,
              **{f"honest{i}": m for i, m in enumerate(honest)}}
    results = [{"student_id": sid, "integrity": {"models": {variable: {
        **integrity.weights_fingerprint(m.get_weights()), "predictions": integrity.prediction_signature(m)}}}}
        for sid, m in models.items()]
    data = integrity.integrity(results)
    by_weights = {(p["a"], p["b"]) for c in data["weights"] for p in c["pairs"]}
    flagged = {(p["a"], p["b"]) for c in data["predictions"] for p in c["pairs"]}
    assert ("ref", "perm") in flagged and ("ref", "perm") not in by_weights  # the dodge of the weights
    assert ("ref", "noisy") in flagged | by_weights
    assert not any(a.startswith("honest") or b.startswith("honest") for a, b in flagged | by_weights)
    spread = data["predictions_spread"][variable]
    assert 3 <= spread["pairs"] <= len(models) * (len(models) - 1) // 2 and spread["max"] == 1.0
    sig = integrity.prediction_signature(reference)
    assert sig == integrity.prediction_signature(reference)  # deterministic
    assert sig["probe"].endswith("-test+blends") and len(sig["labels"]) == integrity.PROBE_SIZE
    json.dumps(sig)  # plain data


def test_prediction_signature_predicts_the_probe_in_one_call() -> None:
    """Does the integrity signature predict its whole probe in one call of the model (not in
    eager batches of 64, where the calls' overhead outweighed the arithmetic)?"""
    from types import SimpleNamespace

    sizes: list[int] = []

    class Model:
        def __init__(self) -> None:
            self.inputs = [SimpleNamespace(shape=(None, 28, 28, 1))]

        def __call__(self, images: Any, training: bool = False) -> Any:
            sizes.append(len(images))
            return np.tile(np.eye(10, dtype=np.float32)[:1], (len(images), 1)) + 0.01

    signature = integrity.prediction_signature(Model())
    assert signature is not None and sizes == [integrity.PROBE_SIZE]


INJECT = "<script>alert(1)</script> [клик](http://evil.example/x) ![i](http://evil.example/t.png) =1+1"


def test_grade_folder_outputs_are_safe_to_open(autograder: Path, tmp_path: Path) -> None:  # noqa: F811
    """Through grade_folder on real kernels, a notebook whose answer and printed output carry
    HTML, Markdown links and images and a secret-looking key, under a non-UTF-8 formula-like file
    name: is the text escaped in feedback .md/.html, Gradescope output plain text, the gradebook
    cell neutralized, the feedback notebook the student's own cells (no grader cells, no HTML
    output), the key redacted; and does the honest student beside it grade normally?"""
    import csv
    import os

    subs = tmp_path / "subs"
    notebook(subs, "honest.ipynb", SETUP, *HONEST)
    evil = notebook(subs, "evil.ipynb", SETUP,
                    f"x = {INJECT!r}\nlst = [1, 2, 3]\nprint(x)\n"
                    "print('-----BEGIN RSA PRIVATE KEY-----\\nMIIE\\n-----END RSA PRIVATE KEY-----')\n"
                    "from IPython.display import HTML, display\n"
                    "display(HTML('<img src=x onerror=alert(2)>'))",
                    "grader.check('q1')")
    os.rename(evil, os.path.join(os.fsencode(subs), "=Иванов".encode("cp1251") + b".ipynb"))
    long = notebook(subs, "long.ipynb", SETUP, *HONEST)
    os.rename(long, subs / ("-" + "я" * 120 + ".ipynb"))  # 247 bytes, a leading dash
    out = tmp_path / "out"
    graded = grade.grade_folder(config(autograder), subs, out, progress=False)
    results = {r["student_id"]: r for r in graded}
    assert results["honest"]["total"] == 4.0
    (long_id,) = [k for k in results if k.startswith("я")]
    assert results[long_id]["total"] == 4.0 and (out / "feedback" / f"{long_id}.html").is_file()
    (sid,) = [k for k in results if k not in ("honest", long_id)]
    assert results[sid]["status"] == "ok" and results[sid]["file"] == r"=\xc8\xe2\xe0\xed\xee\xe2.ipynb"
    md = (out / "feedback" / f"{sid}.md").read_text()
    assert "<script>" not in md and "](http" not in md and "&lt;script&gt;" in md
    page = (out / "feedback" / f"{sid}.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    gradescope = json.loads((out / "gradescope" / sid / "results.json").read_text())
    assert gradescope["output_format"] == "text"
    assert all(t["output_format"] == "text" for t in gradescope["tests"])
    with (out / "gradebook.csv").open(newline="", encoding="utf-8") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    assert rows[sid]["file"].startswith("'=")
    nb = json.loads((out / "feedback" / f"{sid}.ipynb").read_text())
    sources = [c["source"] for c in nb["cells"]]
    assert sources[0] == SETUP and not any("_convlab" in s for s in sources)
    text = json.dumps([c.get("outputs") for c in nb["cells"]], ensure_ascii=False)
    assert "PRIVATE KEY" not in text and "text/html" not in text and "onerror" not in text
    assert "[скрыто]" in text and "evil.example" in text  # the student's own print, as plain text
    readable = [p for p in out.rglob("*") if p.stat().st_mode & 0o077]
    assert readable == [], f"written readable by other users: {readable[:5]}"
    again = grade.grade_folder(config(autograder), subs, out, progress=False)  # resumes: nothing graded
    assert [r["duration_s"] for r in again] == [r["duration_s"] for r in graded]


def test_feedback_notebook_is_the_students_own_with_capped_plain_outputs() -> None:
    """Is the feedback notebook made of the submitted cells (not the sandbox's copy of them, no
    grader cells, no otter_ignore cells), with outputs reduced to text, errors and real PNGs (no
    HTML, JavaScript or SVG), a huge print cut with a note while the cell's error is kept?"""
    import nbformat

    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
    submitted = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("print('a')"), nbformat.v4.new_markdown_cell("# текст"),
        nbformat.v4.new_code_cell("secret()", metadata={"tags": ["otter_ignore"]}),
        nbformat.v4.new_code_cell("print('b' * 10**6)\nraise RuntimeError")])
    shown = [
        {"cell_type": "code", "source": "SEED = 42\nprint('a')", "execution_count": 2, "outputs": [
            {"output_type": "stream", "name": "stdout", "text": "a\n"},
            {"output_type": "display_data", "metadata": {}, "data": {
                "text/html": "<script>x</script>", "application/javascript": "x()",
                "image/svg+xml": "<svg onload=x>", "text/plain": "<HTML>", "image/png": png}},
            {"output_type": "display_data", "metadata": {}, "data": {"image/png": "bm90IGEgcG5n"}}]},
        {"cell_type": "markdown", "source": "# поддельный текст"},
        {"cell_type": "code", "source": "SEED = 42\nprint('b')", "execution_count": 3, "outputs": [
            {"output_type": "stream", "name": "stdout", "text": "b" * 10**6},
            {"output_type": "stream", "name": "stdout", "text": "more"},
            {"output_type": "error", "ename": "RuntimeError", "evalue": "", "traceback": ["RuntimeError"]}]}]
    grader_cell = {"cell_type": "code", "source": "import convlab.grading.exporter", "outputs": []}
    executed = {"cells": [grader_cell, *shown, grader_cell]}
    nb = feedback.feedback_notebook(submitted, json.dumps(executed).encode())
    assert [c["source"] for c in nb["cells"]] == [
        "print('a')", "# текст", "print('b' * 10**6)\nraise RuntimeError"]
    first, _, last = nb["cells"]
    assert [o["output_type"] for o in first["outputs"]] == ["stream", "display_data"]
    assert first["outputs"][1]["data"] == {"text/plain": "<HTML>", "image/png": png}
    assert [o.get("name", o["output_type"]) for o in last["outputs"]] == ["stdout", "stderr", "error"]
    assert len(last["outputs"][0]["text"]) == feedback.FEEDBACK_CELL_OUTPUT
    assert "обрезан" in last["outputs"][1]["text"]
    nbformat.validate(nbformat.from_dict(nb))
    assert feedback.feedback_notebook(submitted, b"not json")["cells"][0]["outputs"] == []


def test_protection_warnings_name_what_the_notebook_could_reach() -> None:
    """Does the operator learn when a notebook ran as root (the --allow-root opt-in) or with reads or
    writes unconfined, and hear nothing when every protection held?"""
    confined = {"unprivileged_user": True, "filesystem_read_confined": True,
                "filesystem_write_confined": True}
    assert grade.protection_warnings(confined) == []
    as_root = grade.protection_warnings({**confined, "unprivileged_user": False})
    assert len(as_root) == 1 and "AS ROOT" in as_root[0]
    open_reads = grade.protection_warnings({**confined, "filesystem_read_confined": False})
    assert len(open_reads) == 1 and "could read the grader's files" in open_reads[0]
    nothing = grade.protection_warnings({"unprivileged_user": False})
    assert len(nothing) == 3 and "could write the grader's files" in nothing[2]


def test_a_grading_digests_each_model_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Does the scorer digest a loaded model's weights once, however many questions observe it
    and however often the checks' prediction cache asks for its digest, and is that the one
    digest of the package (``artifacts.arrays_digest``)?"""
    keras = pytest.importorskip("keras")
    from convlab import artifacts
    from convlab.checks import performance

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    calls: list[int] = []
    digest = artifacts.arrays_digest

    def counting(arrays: Any) -> str:
        calls.append(1)
        return digest(arrays)

    monkeypatch.setattr(artifacts, "arrays_digest", counting)
    collector = integrity.Collector({})
    collector("q1", "model", model)
    collector("q2", "model", model)
    performance.predictions(model, "mnist")
    performance.test_accuracy(model, "mnist")
    assert len(calls) == 1
    assert collector.models["model"]["digest"] == digest(model.get_weights())


def test_a_malformed_sketch_does_not_stop_the_report() -> None:
    """A weight sketch with nulls, strings or NaN (a tampered result file) compares as
    dissimilar instead of raising while the class report is built."""
    from convlab.grading import integrity

    good = [0.1, 0.2, 0.3]
    for bad in ([None, 0.2, 0.3], ["x", 1.0, 2.0], [float("nan"), 1.0, 2.0], [True, 1.0, 2.0]):
        assert integrity.cosine(good, bad) == 0.0 and integrity.cosine(bad, good) == 0.0
    assert integrity.cosine(good, good) > 0.999
