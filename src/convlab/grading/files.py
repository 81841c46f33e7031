"""The grader's one atomic file writer: a reader (and a resumed batch) sees all of a file or nothing.

Every output of ``convlab grade`` and of the manual-grading tools (results, gradebook, feedback,
reports, grade files), the calibration's runs and thresholds, and the build's and the corpus's
committed outputs go through :func:`write_text`, :func:`write_bytes` or :func:`write_json`:
the data goes to a temporary file beside the target (``.<name>.<random>.tmp``), is flushed to
disk, then renamed over the target, and the folder is synced. A writer killed half-way leaves only
such a temporary file, which :func:`remove_stale_temps` removes before the next run.

Writers of their own remain only where this module cannot be imported: the student kit's
:mod:`convlab.artifacts` (the student wheel holds no ``grading`` module; it writes through a path
because ``model.save`` needs one) and the grading kernel's :mod:`convlab.grading.exporter` (the
kernel sees only ``execute.KERNEL_MODULES``), and the job file that
:mod:`convlab.grading.score_process` hands to a pre-started scorer (given to the sandbox user
before it appears; its rename is the go signal). The scorer's ``result.json`` comes through here.
Scratch files of a build (staged sources, a submission being assembled) are written plainly:
nothing reads them half-written.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".tmp"
_NAME_CHARS = 64  #: characters of the target's name kept in its temporary file's name


def _umask() -> int:
    """The process's umask, read without changing it (``os.umask`` would set it for every thread
    for a moment: a file another thread creates then could be readable by all); 0o077 where it
    cannot be read."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o077


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring), with the permissions a
    plain ``open(path, "w")`` would create it with (0o666 less the umask: the grader's outputs,
    written under umask 0o077, stay private; ``thresholds.json`` stays readable by the sandbox's
    user)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:_NAME_CHARS]}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dirfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically, newlines as given. Characters UTF-8 cannot
    store (lone surrogates of undecodable file names) are written escaped."""
    write_bytes(path, text.encode("utf-8", errors="backslashreplace"))


def write_json(path: Path, value: Any, *, indent: int | None = 1) -> None:
    """Write ``value`` as JSON (non-ASCII kept as UTF-8, a final newline) to ``path`` atomically."""
    write_text(path, json.dumps(value, indent=indent, ensure_ascii=False) + "\n")


def remove_stale_temps(folder: Path) -> None:
    """Remove the temporary files that a killed writer left in ``folder``."""
    for stale in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            stale.unlink()
