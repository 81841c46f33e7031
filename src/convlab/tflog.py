"""TensorFlow's native log output, kept away from students and from the operator's terminal.

TensorFlow 2.21 writes C++ (absl) log lines to file descriptor 2 of every process that imports
it. ``TF_CPP_MIN_LOG_LEVEL`` silences most of them, but not the two written before absl reads it
("WARNING: All log messages before absl::InitializeLog() ..." and "oneDNN custom operations are
on ..."; measured: they appear with levels 2 and 3 alike). Only ``TF_ENABLE_ONEDNN_OPTS=0`` stops
those, and it changes the numerics, so this package never sets it. Hence two tools: :data:`ENV`
for every kernel and process the build and the grader start (whatever the caller's shell says),
and :func:`filtered_stderr`, which drops the remaining lines on their way to the terminal.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: set in the environment of every kernel and subprocess the build and ``convlab grade`` start
ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}

#: TensorFlow's C++ (absl) log lines, written to stderr before TF_CPP_MIN_LOG_LEVEL is read
#: ("I0000 00:00:1796096763.756804   13156 port.cc:153] oneDNN custom operations are on ...")
NATIVE_LOG_LINE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
                             r"|[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.]+:\d+\] )")


def quiet_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's environment) with :data:`ENV` forced."""
    return {**(os.environ if env is None else env), **ENV}


@contextmanager
def filtered_stderr() -> Iterator[None]:
    """Route file descriptor 2 of this process, and of every process started meanwhile (they
    inherit it), through a pipe that drops :data:`NATIVE_LOG_LINE` lines."""
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "rb") as source, os.fdopen(os.dup(saved), "wb", buffering=0) as sink:
            for line in source:
                if not NATIVE_LOG_LINE.match(line.decode("utf-8", "replace")):
                    sink.write(line)

    thread = threading.Thread(target=pump, name="convlab-stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes this process's write end of the pipe
        os.close(saved)
        # a process started meanwhile may still hold a write end (multiprocessing's resource
        # tracker lives until this process exits), so the pump may never see the pipe's end: wait
        # until it has read what is written so far, not for the end
        _drained(read_end, thread)


def _drained(read_end: int, thread: threading.Thread, quiet: float = 0.05, limit: float = 5.0) -> None:
    """Return once the pump ``thread`` ended, or the pipe ``read_end`` stayed empty for ``quiet``
    seconds (or after ``limit`` seconds)."""
    import fcntl
    import struct
    import termios
    import time

    deadline = time.monotonic() + limit
    empty_since = None
    while thread.is_alive() and time.monotonic() < deadline:
        try:
            waiting = struct.unpack("i", fcntl.ioctl(read_end, termios.FIONREAD, b"\0\0\0\0"))[0]
        except OSError:  # the pump closed it: it saw the end
            waiting = 0
        now = time.monotonic()
        if waiting:
            empty_since = None
        elif empty_since is None:
            empty_since = now
        elif now - empty_since >= quiet:
            return
        thread.join(timeout=0.01)
