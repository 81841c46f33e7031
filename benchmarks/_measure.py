"""Measuring helpers shared by the benchmark scripts: wall time and peak memory of a process tree.

``PeakMemory`` samples the RSS summed over a process and all its descendants (every 0.1 s) and,
given a limit, kills the whole tree once the sum exceeds it. ``run_measured`` runs a command
under it, optionally with a wall-clock limit (the whole tree is killed, including descendants
that started sessions of their own, such as Jupyter kernels), and also reports the CPU time the
tree used (user + system seconds of the command and every descendant reaped under it: on a
machine with C cores, no schedule of that work takes less than ``cpu_s / C`` of wall time);
``measure`` is the strict form that raises on failure.
"""

from __future__ import annotations

import platform
import resource
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants (a few rounds, for ones forked meanwhile)."""
    for _ in range(3):
        try:
            processes = _tree(pid)
        except psutil.Error:
            return
        for process in processes:  # the root first: it cannot react to its children dying
            try:
                process.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(processes[1:], timeout=2)  # the root is its parent's to reap (Popen)


class PeakMemory:
    """Peak RSS summed over a process and all its descendants, sampled in a thread.

    With ``limit_bytes``, the tree is killed as soon as a sample exceeds it (``exceeded`` is then
    True): a guard for commands that have no memory limit of their own.
    """

    def __init__(self, pid: int, limit_bytes: int | None = None) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self.limit_bytes, self.exceeded = limit_bytes, False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                total = 0
                for process in _tree(self.pid):
                    try:
                        total += process.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
                if self.limit_bytes and total > self.limit_bytes and not self.exceeded:
                    self.exceeded = True
                    kill_tree(self.pid)
            except psutil.Error:
                pass
            time.sleep(0.1)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_measured(command: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
                 timeout: float | None = None, memory_limit_bytes: int | None = None) -> dict[str, Any]:
    """Run a command; return ``seconds``, ``peak_mib`` (its process tree), ``returncode``,
    ``killed`` (None, ``"timeout"`` or ``"memory"``), ``cpu_s`` (CPU seconds of the tree) and
    the tail of its output. Not thread-safe: ``cpu_s`` counts every child this process reaps
    while the command runs."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, errors="replace")
    killed = None
    with PeakMemory(process.pid, memory_limit_bytes) as memory:
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            killed = "timeout"
            kill_tree(process.pid)
            output, _ = process.communicate()
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if memory.exceeded and killed is None:
        killed = "memory"
    return {"seconds": round(seconds, 1), "peak_mib": round(memory.peak / 2**20), "cpu_s": round(cpu, 1),
            "returncode": process.returncode, "killed": killed, "output": output[-3000:]}


def measure(command: list[str], cwd: Path | None = None) -> dict[str, float]:
    """Run a command; return its wall time, the peak memory and the CPU time of its process tree."""
    result = run_measured(command, cwd=cwd)
    if result["returncode"] != 0:
        raise RuntimeError(f"{command} failed:\n{result['output']}")
    return {"seconds": result["seconds"], "peak_mib": result["peak_mib"], "cpu_s": result["cpu_s"]}


def machine() -> str:
    """Processor, cores and memory of this machine, in words."""
    return (f"{platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, "
            f"{round(psutil.virtual_memory().total / 2**30)} GiB")


def solution_phase1(root: Path, lab: str, dest: Path) -> tuple[Any, float, Any]:
    """The lab's reference solution zip (from its scenario corpus) run through the notebook phase
    of ``convlab grade``: (the execution with its export, seconds it took, the settings used).
    The scoring benchmarks start from its export."""
    from convlab import corpus
    from convlab.grading import execute, grade, score

    fixtures = root / "tests" / "fixtures" / lab
    tests_source = root / "autograder" / lab
    scenario = next(s for s in corpus.load(fixtures / "scenarios.yml") if s.name == "solution")
    submission = corpus.make_submission(scenario, root=root, lab=lab, fixtures=fixtures,
                                        dest=dest / "submission")
    tests = score.load_tests(tests_source)
    settings = grade.with_otter_seed(execute.Settings(wall_seconds=1200, memory_bytes=8 << 30,
                                                      cell_timeout=600), tests_source)
    start = time.monotonic()
    execution = execute.execute(submission, lab, score.needed_names(tests), settings)
    seconds = time.monotonic() - start
    assert execution.status == "ok", execution.message
    return execution, seconds, settings
