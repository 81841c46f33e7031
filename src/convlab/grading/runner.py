"""The sandboxed runner of phase 1: execute one notebook with nbclient, outputs bounded.

Run by path inside the sandbox (``python -P runner.py SOURCE TARGET CELL_TIMEOUT CELL_BUDGET
TOTAL_BUDGET NOTE GRACE``, :func:`convlab.grading.execute.execute`; ``-P`` keeps the submission's
working directory off ``sys.path``). It imports only nbformat and nbclient: the kernel's sandbox
hides the rest of this package (:data:`convlab.grading.execute.KERNEL_MODULES` lists this file).

Past a cell's or the notebook's budget, outputs are dropped as they arrive (one note says so; a
cell's error is kept, its traceback trimmed), so that a cell printing gigabytes or printing
forever (until the cell timeout) costs neither the runner's memory nor a giant executed notebook.
A cell that ignores the interrupt at its time limit has its kernel killed ``GRACE`` seconds later
and the runner exits with :data:`KERNEL_KILLED`. The executed notebook is written to ``TARGET``
whatever happens.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import nbformat
from nbclient import NotebookClient

KERNEL_KILLED = 3  #: exit code when a kernel that ignored the interrupt was killed
TRACEBACK_LINES = 30  #: last lines of an error's traceback kept
ERROR_CHARS = 2000  #: characters kept of each traceback line and of the error's value


class KernelKilled(Exception):
    """The running cell ignored the interrupt past the grace period: its kernel was killed."""


def size(out: Any) -> int:
    """Characters of one output (its text, traceback or data)."""
    if out.get("output_type") == "stream":
        return len(out.get("text", ""))
    if out.get("output_type") == "error":
        return sum(len(line) for line in out.get("traceback", [])) + len(str(out.get("evalue", "")))
    return sum(len(v) if isinstance(v, str) else len(str(v)) for v in (out.get("data") or {}).values())


class BoundedClient(NotebookClient):
    """nbclient with bounded outputs and a kernel kill for a cell that ignores the interrupt."""

    cell_budget = 0  #: characters of outputs per cell
    total_budget = 0  #: characters of outputs in the whole notebook
    note = ""  #: the output that replaces what was cut
    grace = 0.0  #: seconds an interrupted cell has to stop
    used: dict[int, int] = {}  # noqa: RUF012 -- one notebook per process
    total = 0
    interrupted: float | None = None  # when the running cell was interrupted at its time limit

    async def _async_handle_timeout(self, timeout: int, cell: Any = None) -> None:
        # nbclient interrupts (SIGINT) and waits on; a cell that ignores SIGINT would then hold
        # the notebook until the sandbox's wall-clock limit: past a grace period, kill its kernel
        now = time.monotonic()
        if self.interrupted is None:
            self.interrupted = now
        elif now - self.interrupted > self.grace:
            if self.km is not None:  # nbclient's AsyncKernelManager: its shutdown_kernel is this coroutine
                await self.km._async_shutdown_kernel(now=True)
            raise KernelKilled(cell)
        await asyncio.sleep(0.2)
        await super()._async_handle_timeout(timeout, cell)

    async def async_execute_cell(self, cell: Any, cell_index: int, *args: Any, **kwargs: Any) -> Any:
        self.interrupted = None
        return await super().async_execute_cell(cell, cell_index, *args, **kwargs)

    def output(self, outs: list[Any], msg: dict[str, Any], display_id: str | None,
               cell_index: int) -> Any:
        out = super().output(outs, msg, display_id, cell_index)
        if out is None or not outs or outs[-1] is not out:
            return out
        if out.get("output_type") == "error":  # one per cell at most: kept, trimmed
            trace = out.get("traceback", [])[-TRACEBACK_LINES:]
            out["traceback"] = [str(line)[:ERROR_CHARS] for line in trace]
            out["evalue"] = str(out.get("evalue", ""))[:ERROR_CHARS]
            BoundedClient.total += size(out)
            return out
        n = size(out)
        used = self.used.get(cell_index, 0)
        if used < 0:  # this cell is already cut
            outs.pop()
            return None
        if used + n > self.cell_budget or BoundedClient.total + n > self.total_budget:
            outs.pop()
            self.used[cell_index] = -1
            outs.append(nbformat.v4.new_output("stream", name="stderr", text=self.note))
            return None
        self.used[cell_index] = used + n
        BoundedClient.total += n
        return out


def main(argv: list[str]) -> int:
    """Execute ``argv[0]`` into ``argv[1]`` (see the module docstring for the arguments)."""
    source, target, timeout = argv[0], argv[1], float(argv[2])
    BoundedClient.cell_budget, BoundedClient.total_budget = int(argv[3]), int(argv[4])
    BoundedClient.note, BoundedClient.grace = argv[5], float(argv[6])
    nb = nbformat.read(source, as_version=4)
    # the kernel is killed once the last cell (the export) has replied: a graceful shutdown
    # would wait for TensorFlow's teardown, and nothing the kernel does after its last cell counts
    client = BoundedClient(nb, timeout=timeout, interrupt_on_timeout=True, allow_errors=True,
                           kernel_name="python3", record_timing=False, startup_timeout=120,
                           shutdown_kernel="immediate", resources={"metadata": {"path": "."}})
    try:
        client.execute()
    except KernelKilled:
        print("convlab: a cell ignored the interrupt at the cell time limit; its kernel was killed",
              file=sys.stderr)
        return KERNEL_KILLED
    finally:
        nbformat.write(nb, target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
