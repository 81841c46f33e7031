"""Pictures of the grading outputs, drawn with matplotlib's object API (no pyplot, Agg canvas).

Every function takes plain data (lists of numbers from a result dict, never a student object)
and returns PNG bytes; :func:`data_uri` embeds them in a standalone HTML page. Labels that come
from a submission (metric names) are restricted to ``[A-Za-z0-9_]`` before they get here (see
:func:`plain_history`), and mathtext is off for every text drawn.
"""

from __future__ import annotations

import base64
import io
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

MAX_EPOCHS = 1000  #: epochs kept per metric of a fit history
MAX_METRICS = 16  #: metrics kept per fit history
MAX_MATRIX = 100  #: rows (= columns) of a confusion matrix drawn


def _figure(width: float, height: float,
            layout: Literal["constrained", "compressed", "tight"] | None = "constrained") -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def png(fig: Any) -> bytes:
    """The figure as PNG bytes (fixed metadata, so the same data gives the same bytes)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def data_uri(data: bytes) -> str:
    """``data:image/png;base64,...`` for an ``<img src>``."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _finite(values: Sequence[Any]) -> list[float]:
    out = []
    for value in values:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        out.append(float(value) if ok else math.nan)
    return out


def learning_curves(history: Mapping[str, Sequence[Any]], title: str = "") -> bytes | None:
    """One panel per metric (``loss``, ``accuracy``, ...): the training curve and, when present,
    the validation one (``val_<metric>``) per epoch. None when the history has no numbers."""
    bases = [k for k in history if not k.startswith("val_")]
    bases += [k[4:] for k in history if k.startswith("val_") and k[4:] not in history]
    bases = sorted(dict.fromkeys(bases), key=lambda k: (k != "loss", k))[:4]
    series = {k: _finite(history.get(k) or []) for k in (*bases, *(f"val_{b}" for b in bases))}
    if not any(any(not math.isnan(v) for v in s) for s in series.values()):
        return None
    # fixed margins, not the constrained layout: drawn for every model of every student, and
    # the layout engine's extra pass doubled the time of each picture (the panels are alike)
    width = 4.2 * len(bases)
    fig = _figure(width, 3.2, layout=None)
    fig.subplots_adjust(left=0.9 / width, right=0.98, bottom=0.16, top=0.82 if title else 0.9, wspace=0.28)
    axes = fig.subplots(1, len(bases), squeeze=False)[0]
    for ax, base in zip(axes, bases, strict=True):
        for key, label in ((base, "обучение"), (f"val_{base}", "валидация")):
            values = series.get(key) or []
            if values:
                ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=label)
        ax.set_title(base, usetex=False, parse_math=False)
        ax.set_xlabel("эпоха")
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title, usetex=False, parse_math=False)
    return png(fig)


def confusion_matrix(matrix: Sequence[Sequence[int]], title: str = "") -> bytes:
    """A confusion-matrix heatmap: rows the true classes, columns the predicted ones."""
    import numpy as np

    data = np.asarray(matrix, dtype=np.int64)
    size = data.shape[0]
    fig = _figure(min(2.5 + 0.45 * size, 12), min(2.2 + 0.45 * size, 12))
    ax = fig.subplots()
    image = ax.imshow(data, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ax.set_xlabel("предсказанный класс")
    ax.set_ylabel("истинный класс")
    if size <= 20:
        ax.set_xticks(range(size))
        ax.set_yticks(range(size))
        high = data.max() if data.size else 0
        for i in range(size):
            for j in range(size):
                ax.text(j, i, str(data[i, j]), ha="center", va="center", fontsize=8, parse_math=False,
                        color="white" if high and data[i, j] > high / 2 else "black")
    if title:
        ax.set_title(title, parse_math=False)
    return png(fig)


def histogram(edges: Sequence[float], counts: Sequence[int], title: str = "") -> bytes:
    """A histogram from precomputed bin edges and counts."""
    fig = _figure(6.4, 3.2)
    ax = fig.subplots()
    widths = [b - a for a, b in itertools.pairwise(edges)]
    ax.bar(edges[:-1], counts, width=widths, align="edge", edgecolor="black", linewidth=0.5)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("total score")
    ax.set_ylabel("submissions")
    ax.yaxis.get_major_locator().set_params(integer=True)
    if title:
        ax.set_title(title, parse_math=False)
    return png(fig)


# ------------------------------------------------------- plain data from a submission's values
_METRIC = re.compile(r"[A-Za-z0-9_]{1,64}")


def plain_history(history: Any) -> dict[str, list[float | None]]:
    """A fit history as plain bounded lists: metric names of ``[A-Za-z0-9_]``, at most
    :data:`MAX_METRICS` metrics of :data:`MAX_EPOCHS` epochs, non-finite -> None."""
    out: dict[str, list[float | None]] = {}
    if not isinstance(history, Mapping):
        return out
    for key, values in history.items():
        if len(out) >= MAX_METRICS:
            break
        if not isinstance(key, str) or not _METRIC.fullmatch(key) or not isinstance(values, list | tuple):
            continue
        numbers: list[float | None] = []
        for value in list(values)[:MAX_EPOCHS]:
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            numbers.append(float(f"{number:.6g}") if math.isfinite(number) else None)
        out[key] = numbers
    return out


def plain_matrix(value: Any) -> list[list[int]] | None:
    """A square integer matrix (at most :data:`MAX_MATRIX` rows) as lists, else None."""
    import numpy as np

    try:
        array = np.asarray(value)
    except Exception:
        return None
    if array.ndim != 2 or array.shape[0] != array.shape[1] or not 0 < array.shape[0] <= MAX_MATRIX:
        return None
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu":
        return None
    return array.astype(np.int64).tolist()
