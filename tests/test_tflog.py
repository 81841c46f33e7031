"""TensorFlow's log level reaches every kernel and process the build and the grader start,
whatever the caller's shell says, and the native lines it cannot stop never reach the terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_notebook

from convlab import build, cli, tflog

NATIVE = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
          "I0000 00:00:1796105542.262164   17571 port.cc:153] oneDNN custom operations are on.\n")


@pytest.fixture
def bare_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)


def test_otter_run_and_assign_get_the_log_level(bare_shell: None, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Do the subprocesses of ``verify`` (otter run) and ``assign`` get TF_CPP_MIN_LOG_LEVEL=2
    when the caller's shell has none?"""
    seen: list[dict[str, str]] = []

    def fake_run(*args: Any, env: dict[str, str] | None = None, **kwargs: Any) -> Any:
        seen.append(dict(env or {}))
        return subprocess.CompletedProcess(args, 1, "", "stop here")

    monkeypatch.setattr(build.subprocess, "run", fake_run)
    with pytest.raises(build.BuildError):
        build.otter_run(tmp_path / "s.zip", tmp_path / "a.zip", tmp_path / "out", env={"X": "1"})
    master = tmp_path / "work" / "assignments" / "lab" / "lab.ipynb"
    master.parent.mkdir(parents=True)
    with pytest.raises(build.BuildError):
        build.assign("lab", build.Context(root=tmp_path, out=tmp_path, work=tmp_path / "work"))
    assert [env.get("TF_CPP_MIN_LOG_LEVEL") for env in seen] == ["2", "2"]
    assert seen[0]["X"] == "1"


def test_solution_kernel_gets_the_log_level(bare_shell: None, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Is TF_CPP_MIN_LOG_LEVEL=2 in the environment the solution's kernel starts with (nbclient
    starts it from this process's environment), and is the caller's environment restored?"""
    import nbclient

    seen: dict[str, str] = {}

    class FakeClient:
        def __init__(self, nb: Any, **kwargs: Any) -> None:
            pass

        def execute(self) -> None:
            seen.update(os.environ)

    monkeypatch.setattr(nbclient, "NotebookClient", FakeClient)
    notebook = tmp_path / "lab.ipynb"
    nbformat.write(new_notebook(), notebook)
    build._execute(notebook, tmp_path, {"CONVLAB_ARTIFACTS_LOG": "used.log"})
    assert seen["TF_CPP_MIN_LOG_LEVEL"] == "2" and seen["CONVLAB_ARTIFACTS_LOG"] == "used.log"
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ


def _stderr_of(code: str) -> str:
    """stderr of a fresh Python running ``code`` (so fd 2 can be redirected freely)."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_filtered_stderr_drops_native_lines_of_children() -> None:
    """Does a child started inside filtered_stderr lose TensorFlow's native lines on its fd 2 and
    keep everything else, in order?"""
    written = "keep 1\n" + NATIVE + "keep 2\n"
    child = f"import sys; sys.stderr.write({written!r})"
    code = ("import subprocess, sys\nfrom convlab import tflog\nwith tflog.filtered_stderr():\n"
            f"    subprocess.run([sys.executable, '-c', {child!r}], check=True)\n"
            "    print('own line', file=sys.stderr)\nprint('after', file=sys.stderr)\n")
    assert _stderr_of(code) == "keep 1\nkeep 2\nown line\nafter\n"


def test_filtered_stderr_ends_while_a_child_still_holds_the_pipe() -> None:
    """Does leaving filtered_stderr take well under its 5 s limit when a process started inside
    it outlives it (as multiprocessing's resource tracker does), with every line written before
    delivered and the native ones dropped?"""
    written = "keep 1\n" + NATIVE + "keep 2\n"
    child = f"import sys, time; sys.stderr.write({written!r}); sys.stderr.flush(); time.sleep(30)"
    code = ("import subprocess, sys, time\nfrom convlab import tflog\nwith tflog.filtered_stderr():\n"
            f"    lingering = subprocess.Popen([sys.executable, '-c', {child!r}])\n"
            "    time.sleep(1.5)\n    started = time.monotonic()\n"
            "print('after', file=sys.stderr)\nprint(round(time.monotonic() - started, 2))\n"
            "lingering.kill()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "keep 1\nkeep 2\nafter\n"
    assert float(result.stdout) < 4.0  # the limit is 5 s


def test_cli_sets_the_log_level_for_what_it_starts(bare_shell: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Does ``convlab`` set TF_CPP_MIN_LOG_LEVEL=2 before running a command (the grader's
    workers and kernels inherit it)?"""
    seen: dict[str, str] = {}
    monkeypatch.setattr(cli, "cmd_data", lambda args: seen.update(os.environ) or 0)
    assert cli.main(["data"]) == 0
    assert seen["TF_CPP_MIN_LOG_LEVEL"] == tflog.ENV["TF_CPP_MIN_LOG_LEVEL"] == "2"
