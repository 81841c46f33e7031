"""Public checks: the only checks that ship in the student kit.

Format and type checks only: no thresholds, no reference computations, no answers derived from
a dataset. Public test cells (``hidden: false``) use ``from convlab import public as checks``
and nothing else. The hidden vocabulary (``convlab.checks``) re-exports these functions.

This module imports nothing from ``convlab.checks``, ``convlab.grading``, ``convlab.build`` or
``convlab.calibration``: the student wheel does not contain them.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

__all__ = [
    "CheckFailed",
    "fail",
    "figure_shows_matrix",
    "image_count",
    "image_format",
    "image_grid",
    "is_fraction",
    "is_integer",
    "is_integer_list",
    "is_label_vector",
    "is_shape",
    "is_string_list",
    "is_trained",
    "mismatch",
    "output_layer",
    "require",
    "show",
    "trained_steps",
]


class CheckFailed(AssertionError):
    """A check did not pass; the message (Russian) says what was expected and what was found."""


def mismatch(what: Any, expected: Any, found: Any) -> str:
    """The one template of every check message: ``<what>: ожидается: <expected>; получено: <found>.``

    The colons make ``expected`` and ``found`` stand alone, so the sentence reads as correct
    Russian whatever their gender and number (a past-tense verb had to agree with them, and did not).
    """
    return f"{what}: ожидается: {expected}; получено: {found}."


def fail(what: str, expected: Any, found: Any) -> CheckFailed:
    """A :class:`CheckFailed` with the standard message (:func:`mismatch`)."""
    return CheckFailed(mismatch(what, expected, found))


def require(condition: bool, what: str, expected: Any, found: Any) -> None:
    """Raise :func:`fail` unless ``condition``."""
    if not condition:
        raise fail(what, expected, found)


def show(value: Any) -> str:
    """A short human-readable rendering of a value for messages."""
    if isinstance(value, np.ndarray):
        return f"массив {value.dtype} формы {tuple(value.shape)}"
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return f"{number:.1f}" if number.is_integer() else f"{number:.4g}"
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(sorted(map(repr, value))) + "}"
    if value is None:
        return "None (переменная не задана)"
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


# --- answer variables -------------------------------------------------------------------------

def _is_int(value: Any) -> bool:
    """A whole number however it is written: ``int``, a numpy integer, a finite float without a
    fractional part (``54890.0`` from ``np.prod``) or a 0-d array of one; not a bool."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    return isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer()


def _items(value: Any) -> list[Any] | None:
    """The elements of a list, a tuple or a one-dimensional array; ``None`` for anything else."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, np.ndarray) and value.ndim == 1:
        return list(value)
    return None


def is_integer(value: Any, name: str) -> None:
    """``value`` is a whole number (:func:`_is_int`)."""
    require(_is_int(value), f"{name}: тип ответа", "целое число", show(value))


def is_fraction(value: Any, name: str) -> None:
    """``value`` is a number in [0, 1] (an accuracy as a fraction, not percent); a 0-d array of
    one counts."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 <= float(value) <= 1
    require(ok, f"{name}: ответ", "число от 0 до 1 (доля, не проценты)", show(value))


def is_integer_list(value: Any, name: str) -> None:
    """``value`` is a non-empty list, tuple or one-dimensional array of whole numbers."""
    items = _items(value)
    ok = bool(items) and all(_is_int(v) for v in items or ())
    require(ok, f"{name}: тип ответа", "непустой список целых чисел", show(value))


def is_string_list(value: Any, name: str) -> None:
    """``value`` is a non-empty list, tuple or set of strings."""
    ok = (isinstance(value, (list, tuple, set, frozenset)) and len(value) > 0
          and all(isinstance(v, str) for v in value))
    require(ok, f"{name}: тип ответа", "непустой список (или множество) строк", show(value))


def is_shape(value: Any, name: str) -> None:
    """``value`` is a tuple, list or one-dimensional array of positive whole numbers."""
    items = _items(value)
    ok = bool(items) and all(_is_int(v) and v > 0 for v in items or ())
    require(ok, f"{name}: тип ответа", "кортеж положительных целых чисел", show(value))


def is_label_vector(value: Any, name: str) -> None:
    """``value`` is a one-dimensional integer array of class numbers."""
    array = np.asarray(value) if value is not None else None
    ok = array is not None and array.ndim == 1 and np.issubdtype(array.dtype, np.integer)
    require(ok, f"{name}: тип ответа", "одномерный массив целых номеров классов",
            show(array if array is not None else None))


# --- data and figures -------------------------------------------------------------------------

def image_format(x: Any, name: str, image_shape: tuple[int, ...]) -> None:
    """``x`` is a float32 array of images of ``image_shape`` with values in [0, 1]."""
    require(isinstance(x, np.ndarray), f"{name}: тип", "numpy.ndarray", type(x).__name__)
    require(x.dtype == np.float32, f"{name}: тип элементов", "float32", x.dtype)
    require(x.ndim == len(image_shape) + 1 and tuple(x.shape[1:]) == tuple(image_shape),
            f"{name}: размерность", f"(N, {', '.join(map(str, image_shape))})", tuple(x.shape))
    low, high = float(x.min()), float(x.max())
    require(low >= 0 and high <= 1, f"{name}: диапазон значений", "отрезок [0, 1]",
            f"[{low:.4g}, {high:.4g}]")


def image_axes(fig: Any, name: str) -> list[Any]:
    """The axes of a matplotlib figure that show an image (fails unless ``fig`` is a figure)."""
    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        raise fail(name, "фигура matplotlib (fig, axes = plt.subplots(...))",
                   show(fig) if fig is None else type(fig).__name__)
    return [ax for ax in fig.axes if ax.images]


def image_count(fig: Any, count: int, name: str = "fig") -> None:
    """The figure shows exactly ``count`` images, in any layout."""
    panels = image_axes(fig, name)
    require(len(panels) == count, f"{name}: число панелей с изображениями", count, len(panels))


def image_grid(fig: Any, rows: int, cols: int, name: str = "fig") -> None:
    """The figure is a ``rows`` x ``cols`` grid with an image in every panel."""
    panels = image_axes(fig, name)
    require(len(panels) == rows * cols, f"{name}: число панелей с изображениями", rows * cols,
            len(panels))
    spec = panels[0].get_subplotspec()
    geometry = spec.get_geometry()[:2] if spec is not None else None
    require(geometry == (rows, cols), f"{name}: сетка панелей", f"{rows}×{cols}",
            "×".join(map(str, geometry)) if geometry else "панели вне сетки")


# --- models (weak, public versions; the hidden tests check more) ------------------------------

def _need_model(model: Any, name: str) -> None:
    import keras

    if not isinstance(model, keras.Model):
        raise fail(f"{name}", "модель Keras (keras.Model)", show(model) if model is None
                   else type(model).__name__)


def is_trained(model: Any, name: str) -> None:
    """The model went through ``fit`` (its optimizer made steps, or it has a fit history)."""
    _need_model(model, name)
    history = getattr(model, "history", None)
    epochs = len(getattr(history, "epoch", []) or [])
    optimizer = getattr(model, "optimizer", None)
    # a Keras Variable cannot be used as a boolean: convert it, never `or` it
    counter = getattr(optimizer, "iterations", None) if optimizer is not None else None
    iterations = int(np.asarray(counter)) if counter is not None else 0
    require(epochs > 0 or iterations > 0, f"{name}: обучение",
            f"обученная модель (вызов {name}.fit(...))", "модель не обучалась")


def output_layer(model: Any, classes: int, activation: str = "softmax", *,
                 name: str = "модель") -> None:
    """The model outputs ``classes`` numbers per image; with ``activation="softmax"`` they are
    probabilities (non-negative, summing to 1) — however the softmax is written."""
    _need_model(model, name)
    shape = tuple(getattr(model, "output_shape", ()) or ())
    require(len(shape) == 2 and shape[-1] == classes, f"{name}: размерность выхода",
            f"(None, {classes})", shape)
    if activation != "softmax":
        return
    input_shape = tuple(model.input_shape[1:])
    if any(dim is None for dim in input_shape):
        return
    rng = np.random.default_rng(0)
    probe = rng.random((2, *input_shape), dtype=np.float32)
    out = np.asarray(model(probe, training=False), dtype=np.float64)
    ok = bool(np.all(out >= -1e-6) and np.allclose(out.sum(axis=1), 1.0, atol=1e-3))
    require(ok, f"{name}: выход сети", "вероятности классов (softmax: неотрицательные, сумма 1)",
            f"строки с суммами {np.round(out.sum(axis=1), 3).tolist()}")


# --- Lab 6 (format checks on the student's own values; nothing graded is computed here) -------

def figure_shows_matrix(fig: Any, cm: Any, name: str = "fig_cm") -> None:
    """The figure draws the matrix ``cm`` as an image (``ConfusionMatrixDisplay.plot`` or
    ``imshow``)."""
    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        raise fail(name, "фигура matplotlib с матрицей ошибок",
                   show(fig) if fig is None else type(fig).__name__)
    try:
        target = np.asarray(cm, dtype=np.float64) if cm is not None else None
    except (TypeError, ValueError):
        target = None
    for ax in fig.axes:
        for image in ax.images:
            drawn = np.asarray(image.get_array(), dtype=np.float64)
            if target is not None and drawn.shape == target.shape and np.allclose(drawn, target):
                return
    raise fail(f"{name}: изображение", "матрица ошибок confusion (imshow / ConfusionMatrixDisplay)",
               "на фигуре её нет")


def trained_steps(model: Any, epochs: Any, batch_size: Any, train_count: Any, name: str) -> None:
    """The model's optimizer made ``epochs × ceil(train_count / batch_size)`` steps: it was
    trained by ``fit`` on ``train_count`` images for ``epochs`` epochs (a history is not enough)."""
    import math

    _need_model(model, name)
    optimizer = getattr(model, "optimizer", None)
    # an optimizer that made steps has built its state; a counter set by hand on an unbuilt one
    # is not training (and does not survive saving the model)
    built = optimizer is not None and bool(getattr(optimizer, "built", False))
    counter = getattr(optimizer, "iterations", None) if built else None
    found = int(np.asarray(counter)) if counter is not None else 0
    steps = math.ceil(int(train_count) / int(batch_size))
    expected = int(epochs) * steps
    require(found == expected, f"{name}: шагов оптимизатора (обучение через fit)",
            f"{expected} = {int(epochs)} эпох × {steps} пакетов",
            f"{found}" + (" (модель не обучалась: нет файла весов в artifacts/ или он не "
                          "соответствует блокноту)" if found == 0 else ""))
