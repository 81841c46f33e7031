"""Single build steps and the scenario corpus, on small inputs (no otter run, no training)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from convlab import build, corpus

ROOT = Path(__file__).resolve().parents[1]


def test_repack_zip_is_byte_identical_and_sorted(tmp_path: Path) -> None:
    """Do two repacks of zips written at different times give identical bytes?"""
    outputs = []
    for index in range(2):
        source = tmp_path / f"otter{index}.zip"
        with zipfile.ZipFile(source, "w") as zf:
            zf.writestr(zipfile.ZipInfo("tests/q2.py", date_time=(2026, 1, 1, index, 0, 0)), "b")
            zf.writestr("run_autograder", "#!/bin/sh")
            zf.writestr("tests/q1.py", "a")
        target = tmp_path / f"repacked{index}.zip"
        build.repack_zip(source, target)
        outputs.append(target.read_bytes())
    assert outputs[0] == outputs[1]
    with zipfile.ZipFile(tmp_path / "repacked0.zip") as zf:
        assert zf.namelist() == ["run_autograder", "tests/q1.py", "tests/q2.py"]
        assert {i.date_time for i in zf.infolist()} == {build.ZIP_DATE}
        assert zf.getinfo("run_autograder").external_attr >> 16 == 0o755


def test_normalize_notebook_is_stable(tmp_path: Path) -> None:
    """Does normalization give sequential ids, drop timestamps and translate otter's text?"""
    nb = new_notebook(cells=[
        new_markdown_cell("_Type your answer here, replacing this text._"),
        new_code_cell("x = 1", metadata={"execution": {"iopub.execute_input": "2026-11-25"}},
                      outputs=[new_output("stream", name="stdout", text="1")]),
    ])
    nb.metadata["widgets"] = {"state": {}}
    path = tmp_path / "lab.ipynb"
    nbformat.write(nb, path)
    build.normalize_notebook(path, keep_outputs=False, source_name="assignments/lab/lab.ipynb")
    first = path.read_bytes()
    build.normalize_notebook(path, keep_outputs=False, source_name="assignments/lab/lab.ipynb")
    assert path.read_bytes() == first
    result = nbformat.read(path, as_version=4)
    assert [c.id for c in result.cells] == ["cell-000", "cell-001"]
    assert result.cells[0].source == "_Впишите ответ здесь вместо этого текста._"
    assert result.cells[1].outputs == [] and "execution" not in result.cells[1].metadata
    assert "widgets" not in result.metadata
    assert result.metadata["convlab"]["generated_from"] == "assignments/lab/lab.ipynb"


def test_tree_diff_reports_changed_missing_and_extra(tmp_path: Path) -> None:
    """Does the drift check name changed, missing and no-longer-generated files?"""
    fresh, repo = tmp_path / "fresh", tmp_path / "repo"
    for folder in (fresh, repo):
        folder.mkdir()
        (folder / "same.txt").write_text("same")
    (fresh / "changed.txt").write_text("new")
    (repo / "changed.txt").write_text("old")
    (fresh / "added.txt").write_text("x")
    (repo / "stale.txt").write_text("x")
    assert build._tree_diff(fresh, repo) == [
        "missing in repo: added.txt", "changed: changed.txt", "not generated any more: stale.txt"]


def test_discover_finds_the_labs() -> None:
    """Are the labs the assignments/<lab>/<lab>.ipynb masters?"""
    assert "lab5_cnn" in build.discover(ROOT)


def test_scenario_edits_must_match_exactly_once() -> None:
    """Does an edit that matches no cell, or text that is not there, fail loudly?"""
    nb = new_notebook(cells=[new_code_cell("a = 1\nb = 2")])
    with pytest.raises(ValueError, match="matches 0 cells"):
        corpus.apply_edits(nb, (corpus.Edit(cell="zzz", old="a", new="c"),))
    with pytest.raises(ValueError, match="occurs 0 times"):
        corpus.apply_edits(nb, (corpus.Edit(cell="a = 1", old="q = 3", new="c"),))
    corpus.apply_edits(nb, (corpus.Edit(cell="a = 1", old="b = 2", new="b = 3"),))
    assert nb.cells[0].source == "a = 1\nb = 3"


def test_every_scenario_applies_to_the_solution() -> None:
    """Does each scenario of the Lab 5 corpus apply cleanly to the committed solution?"""
    solution = nbformat.read(ROOT / "solutions" / "lab5_cnn" / "lab5_cnn.ipynb", as_version=4)
    scenarios = corpus.load(ROOT / "tests" / "fixtures" / "lab5_cnn" / "scenarios.yml")
    required = {"unscaled_pixels", "float64", "missing_channel_axis", "wrong_filter_count",
                "missing_batchnorm", "missing_dropout", "no_softmax", "wrong_loss",
                "untrained_model", "renamed_notebook", "blank_template", "solution"}
    assert required <= {s.name for s in scenarios}
    for scenario in scenarios:
        if scenario.base == "solution":
            corpus.apply_edits(nbformat.from_dict(solution), scenario.edits)


def test_submission_zip_carries_models_and_drops_listed(tmp_path: Path) -> None:
    """Does a scenario zip hold the notebook and the models, minus those it drops?"""
    scenario = corpus.Scenario(name="x", about="", drop_models=("model1",))
    fixtures = ROOT / "tests" / "fixtures" / "lab5_cnn"
    path = corpus.make_submission(scenario, root=ROOT, lab="lab5_cnn", fixtures=fixtures,
                                  dest=tmp_path)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        manifest = zf.read("artifacts/manifest.json").decode()
    assert "lab5_cnn.ipynb" in names and any(n.endswith(".keras") for n in names)
    assert '"model1"' not in manifest and '"model4"' in manifest


# ------------------------------------------------------------------------ the student kit
#: names whose presence in the student kit would give away a graded answer or a threshold
GIVEAWAYS = ("thresholds.json", "threshold(", "reference_params", "reference_mults", "reference_memory",
             "def cosine(", "nin_block_probed", "counter_probed", "accuracy_step", "ACCURACY_FLOORS",
             "from convlab.checks", "import convlab.checks", "from convlab.grading", "import convlab.grading",
             "from convlab import checks", "from convlab import grading", "parameterless_layer_types",
             "trainable_split",
             "batchnorm_param_counts", "pristine(", "BLOCKS", "NETWORKS", "SCHEDULE")


def test_student_wheel_holds_only_what_the_notebook_runs(tmp_path: Path) -> None:
    wheel = build.build_student_wheel(tmp_path / "dist", tmp_path / "work")
    assert wheel.name == build.STUDENT_WHEEL != build.WHEEL
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        package = sorted(n.removeprefix("convlab/") for n in names if n.startswith("convlab/"))
        assert package == sorted(build.STUDENT_MODULES)
        assert all(n.startswith(("convlab/", "convlab-")) for n in names), names
        for name in names:
            text = archive.read(name).decode("utf-8", errors="replace")
            found = [g for g in GIVEAWAYS if g in text]
            assert not found, (name, found)


def test_student_wheel_imports_alone(tmp_path: Path) -> None:
    """The kit's package imports and sets up without the hidden modules (none are there)."""
    import subprocess
    import sys

    wheel = build.build_student_wheel(tmp_path / "dist", tmp_path / "work")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path / "site")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import convlab, convlab.public, convlab.artifacts, "
            "convlab.datasets; assert convlab.__file__.startswith(sys.argv[1]); "
            "import importlib.util as u; assert u.find_spec('convlab.checks') is None; "
            "assert u.find_spec('convlab.grading') is None; print('ok')")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "site")], capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.stdout.strip() == "ok", result.stderr


@pytest.mark.parametrize("lab", build.discover(ROOT))
def test_student_tests_are_public_and_use_only_the_kit(lab: str) -> None:
    """``otter assign`` left no hidden test in student/<lab>/tests, and the public ones import
    only ``convlab.public`` (the kit has no other checks)."""
    folder = ROOT / "student" / lab / "tests"
    files = sorted(folder.glob("*.py"))
    assert files
    for path in files:
        text = path.read_text()
        assert "hidden=True" not in text, path.name
        assert "from convlab import checks" not in text and "convlab.checks" not in text, path.name


@pytest.mark.parametrize("lab", build.discover(ROOT))
def test_master_public_tests_use_only_the_kit(lab: str) -> None:
    """In the master, every public test imports the public checks only; the template code
    imports nothing hidden."""
    nb = nbformat.read(ROOT / "assignments" / lab / f"{lab}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if "# BEGIN TEST CONFIG" in cell.source:
            if "hidden: false" in cell.source:
                assert "convlab.checks" not in cell.source and "from convlab import checks" not in cell.source
        else:
            hidden = ("convlab.checks", "convlab.grading")
            assert not any(h in cell.source for h in hidden), cell.source[:80]


def test_every_lab6_scenario_applies_to_the_master() -> None:
    """Does each Lab 6 scenario apply cleanly to the master, with both sections present?"""
    master = nbformat.read(ROOT / "assignments" / "lab6_nin" / "lab6_nin.ipynb", as_version=4)
    scenarios = corpus.load(ROOT / "tests" / "fixtures" / "lab6_nin" / "scenarios.yml")
    names = {s.name for s in scenarios}
    right = {"block_comprehension", "cosine_numpy", "counters_differently", "confusion_float_counts",
             "confusion_by_hand", "confusion_tf", "shapes_as_lists", "cosine_with_defaults"}
    wrong = {"block_ignores_strides", "cosine_uses_globals", "forged_history", "ablation_untrained",
             "ablation_unchanged", "mults_input_size", "memory_counts_input", "params_all_weights"}
    assert right | wrong <= names
    for scenario in scenarios:
        if scenario.name in right:
            assert not scenario.expected and not scenario.env, scenario.name
        if scenario.base == "solution":
            corpus.apply_edits(nbformat.from_dict(master), scenario.edits)


def test_native_log_lines_are_dropped_from_outputs() -> None:
    """Are TensorFlow's absl log lines (timestamps, pids) removed from stderr outputs, while the
    notebook's own stderr text and other outputs stay?"""
    outputs = [
        {"output_type": "stream", "name": "stderr", "text":
            "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            "I0000 00:00:1796096763.756804   13156 port.cc:153] oneDNN custom operations are on.\n"},
        {"output_type": "stream", "name": "stderr", "text":
            "E0000 00:00:1796096763.7 13156 cuda.cc:12] no GPU\nUserWarning: своё предупреждение\n"},
        {"output_type": "stream", "name": "stdout",
         "text": "I0000 00:00:1.0 1 a.cc:1] printed by the student\n"},
    ]
    kept = build.without_native_logs(outputs)
    assert [o["text"] for o in kept] == ["UserWarning: своё предупреждение\n",
                                         "I0000 00:00:1.0 1 a.cc:1] printed by the student\n"]


def test_requirements_take_their_pins_from_pyproject(tmp_path: Path) -> None:
    """Are the generated requirements' versions pyproject.toml's (read, not retyped: build.py holds
    no pinned version of a dependency), and are the committed requirements files in step?"""
    import tomllib

    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    source = (ROOT / "src/convlab/build.py").read_text()
    assert not [d for d in dependencies if "==" in d and d.split("==")[1] in source]
    kernel = build.pinned(build.GRADING_PACKAGES)
    assert sorted(kernel) == sorted(d for d in dependencies
                                    if d.split("=")[0].split(">")[0] in build.GRADING_PACKAGES)
    for lab in ("lab5_cnn", "lab6_nin"):
        assert (ROOT / "autograder" / lab / "requirements.txt").read_text().splitlines()[:-1] == kernel
        student = (ROOT / "student" / lab / "requirements.txt").read_text().splitlines()
        assert student[0] == build.pinned(["otter-grader"])[0] and student[2:-1] == kernel
    other = tmp_path / "pyproject.toml"
    other.write_text('[project]\ndependencies = ["Keras==9.9", "numpy>=1"]\n')
    assert build.pinned(["keras", "numpy"], other) == ["Keras==9.9", "numpy>=1"]
    with pytest.raises(build.BuildError, match="tensorflow-cpu"):
        build.pinned(["tensorflow-cpu"], other)
