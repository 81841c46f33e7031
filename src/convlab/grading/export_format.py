"""The export format of two-phase grading, defined once: what phase 1 writes, what phase 2 reads.

The kernel's exporter (:mod:`convlab.grading.exporter`) writes an export within these names and
limits; the scorer (:mod:`convlab.grading.score`, and :mod:`convlab.grading.score_process`, which
copies an export into the scoring sandbox) refuses anything outside them. Both sides import them
from here, so they cannot drift apart (``tests/grading/test_export_format.py`` checks that each
side uses them and that a value at a limit passes both while one beyond it fails both).

The exporter runs in the student's kernel, which sees only ``execute.KERNEL_MODULES``: this module
is one of them and imports nothing but the standard library.
"""

from __future__ import annotations

import re

FORMAT = 1  #: the manifest's ``format``
MANIFEST = "manifest.json"  #: the export's one JSON file: each question's snapshot of values
#: every other file of an export: ``a_<digest>.npy`` (arrays) and ``m_<key>.keras`` (models)
FILE_NAME = re.compile(r"^[A-Za-z0-9_]{1,80}\.(npy|keras)$")
MAX_DEPTH = 20  #: nesting of a value's tagged-JSON nodes (a deeper value is not exportable)
MAX_ITEMS = 100_000  #: items of one container (a longer list is not exportable)
MAX_AXES = 400  #: axes of one matplotlib figure
MAX_JSON = 64 << 20  #: bytes of the manifest
MAX_ARRAY = 3 << 29  #: 1.5 GiB: one array, by its header (CIFAR-10 train set as float64 fits)
MAX_MODEL = 1 << 30  #: bytes of one ``.keras`` file
