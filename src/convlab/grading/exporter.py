"""Kernel side of the two-phase grader: dump the values the tests need as plain data.

This module runs *inside the student's kernel* (phase 1, in the sandbox); nothing here is
trusted by the scorer, which re-validates every file it reads (:mod:`convlab.grading.score`).

:func:`install` (the cell prepended by :mod:`convlab.grading.execute`) replaces the ``otter``
module of the kernel by a stand-in whose ``Notebook(...).check(question)`` takes a *snapshot*
of the notebook globals that the question's tests read, at that moment, as otter does: a
question is scored against the namespace of its ``grader.check`` cell (the last one wins), and
a question never checked against the final namespace (:func:`finish`, the appended cell).
``export``, ``check_all``, ``to_pdf`` and any other method are no-ops, so student cells that
call them run without error and without otter.

The export folder is flat; ``manifest.json`` maps each question to ``{name: node}`` where a node
is JSON with type tags (see :func:`encode`). Arrays are ``.npy`` files (``allow_pickle=False``
on both sides), content-addressed so that one array shared by several questions is written
once; Keras models are ``.keras`` files plus their fit history; matplotlib figures are the
grid geometry of their axes and each axes' image arrays.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sys
import types
from collections.abc import Callable
from typing import Any

from convlab.grading import probes as _probes
from convlab.grading.export_format import FORMAT, MANIFEST, MAX_AXES, MAX_DEPTH, MAX_ITEMS

_state: dict[str, Any] = {"needed": {}, "dir": None, "snapshots": {}, "checked": [], "memo": {}}


class NotExportable(Exception):
    """A value that has no plain-data form; the message is its type name."""


class Refused(NotExportable):
    """A model the scorer would not accept (the message says why, in Russian)."""


#: Keras activation name -> the dotted names of functions that compute exactly the same thing
#: with their default arguments (``tests/grading/test_model_policy.py`` checks each numerically).
#: A layer's activation that is one of them is saved under the Keras name; any other function is
#: refused (:class:`Refused`), so the scorer only ever sees names of its allow-list.
EQUIVALENT_ACTIVATIONS: dict[str, tuple[str, ...]] = {
    "relu": ("keras.ops.relu", "keras.ops.nn.relu", "tensorflow.nn.relu"),
    "softmax": ("keras.ops.softmax", "keras.ops.nn.softmax", "tensorflow.nn.softmax",
                "tensorflow.math.softmax"),
    "sigmoid": ("keras.ops.sigmoid", "tensorflow.nn.sigmoid", "tensorflow.math.sigmoid",
                "tensorflow.sigmoid"),
    "tanh": ("keras.ops.tanh", "tensorflow.nn.tanh", "tensorflow.math.tanh", "tensorflow.tanh"),
    "elu": ("keras.ops.elu", "tensorflow.nn.elu"),
    "selu": ("keras.ops.selu", "tensorflow.nn.selu"),
    "softplus": ("keras.ops.softplus", "tensorflow.nn.softplus", "tensorflow.math.softplus"),
    "softsign": ("keras.ops.softsign", "tensorflow.nn.softsign"),
    "relu6": ("keras.ops.relu6", "tensorflow.nn.relu6"),
    "silu": ("keras.ops.silu", "keras.ops.swish", "tensorflow.nn.silu", "tensorflow.nn.swish"),
    "log_softmax": ("keras.ops.log_softmax", "tensorflow.nn.log_softmax"),
    "leaky_relu": ("keras.ops.leaky_relu", "tensorflow.nn.leaky_relu"),
    "gelu": ("tensorflow.nn.gelu",),
    "exponential": ("keras.ops.exp", "tensorflow.exp", "tensorflow.math.exp"),
}


# ---------------------------------------------------------------------------------- encoding
def _type_name(value: Any) -> str:
    kind = type(value)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _write_array(array: Any, directory: str) -> str:
    import numpy as np

    from convlab import artifacts

    array = np.ascontiguousarray(np.ma.getdata(array))
    if array.dtype.hasobject or array.dtype.fields is not None:
        raise NotExportable(f"numpy.ndarray[{array.dtype}]")
    name = f"a_{artifacts.arrays_digest([array])}.npy"
    path = os.path.join(directory, name)
    if not os.path.exists(path):
        tmp = path + ".tmp"
        with open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
        os.replace(tmp, path)
    return name


def _model_key(model: Any) -> str:
    from convlab import artifacts

    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(id(model)).encode())
    with contextlib.suppress(Exception):
        digest.update(json.dumps(model.get_config(), sort_keys=True, default=repr).encode())
    # the weights' digest read now, never a settled one: the notebook's fits change its models
    digest.update(artifacts.arrays_digest(model.get_weights()).encode())
    history = getattr(model, "history", None)
    digest.update(repr(len(getattr(history, "epoch", []) or [])).encode())
    digest.update(repr(_iterations(model)).encode())
    return digest.hexdigest()


def _iterations(model: Any) -> int:
    import numpy as np

    optimizer = getattr(model, "optimizer", None)
    counter = getattr(optimizer, "iterations", None) if optimizer is not None else None
    try:
        return int(np.asarray(counter)) if counter is not None else 0
    except Exception:
        return 0


def _jsonable(value: Any) -> Any:
    from convlab import artifacts

    return artifacts.jsonable(value)


def _resolve(dotted: str) -> Any:
    module, _, attr = dotted.rpartition(".")
    loaded = sys.modules.get(module)
    if loaded is None and module.split(".")[0] in sys.modules:  # only what the notebook imported
        with contextlib.suppress(Exception):
            import importlib

            loaded = importlib.import_module(module)
    return getattr(loaded, attr, None) if loaded is not None else None


def activation_names() -> dict[int, tuple[Any, str]]:
    """id(function) -> (function, Keras name) for every allow-listed activation and each function
    of :data:`EQUIVALENT_ACTIVATIONS` importable here."""
    import keras

    from convlab.grading.model_policy import ACTIVATIONS

    table: dict[int, tuple[Any, str]] = {}
    for name in sorted(ACTIVATIONS):
        with contextlib.suppress(Exception):
            function = keras.activations.get(name)
            table.setdefault(id(function), (function, name))
    for name, dotted in EQUIVALENT_ACTIVATIONS.items():
        for path in dotted:
            function = _resolve(path)
            if callable(function):
                table.setdefault(id(function), (function, name))
    return table


def _layers(model: Any) -> list[Any]:
    try:
        return list(model._flatten_layers(include_self=False, recursive=True))
    except Exception:
        return list(getattr(model, "layers", []))


@contextlib.contextmanager
def canonical_activations(model: Any) -> Any:
    """While saving: each layer's activation that is a known equivalent of a Keras activation
    (``tf.nn.softmax``, ``keras.ops.relu``...) is replaced by the Keras function, so the saved
    configuration names it; the layers get their own functions back afterwards. A function that
    is not one of them raises :class:`Refused` with a Russian message."""
    import keras

    table = activation_names()
    swapped: list[tuple[Any, Any]] = []
    try:
        for layer in _layers(model):
            function = getattr(layer, "activation", None)
            if function is None or not callable(function) or isinstance(function, keras.layers.Layer):
                continue
            known = table.get(id(function))
            if known is None:
                label = getattr(function, "__qualname__", None) or type(function).__name__
                module = getattr(function, "__module__", "") or ""
                raise Refused(f"функция активации {module + '.' if module else ''}{label} слоя "
                              f"{layer.name} не из допустимых: укажите её именем Keras, например "
                              f"activation='relu' или activation='softmax'")
            canonical = keras.activations.get(known[1])
            if canonical is not function:
                swapped.append((layer, function))
                layer.activation = canonical
        yield
    finally:
        for layer, function in swapped:
            layer.activation = function


def _check_saved(path: str) -> None:
    """Raise :class:`Refused` where the scorer's policy would refuse the saved archive (the same
    check the scorer makes again; here it only gives the student a clear reason early)."""
    from convlab.grading import model_policy

    try:
        model_policy.check_keras_archive(path)  # type: ignore[arg-type]
    except model_policy.PolicyError as error:
        raise Refused(str(error)) from error


def _encode_model(model: Any, directory: str) -> dict:
    key = _model_key(model)
    name = f"m_{key}.keras"
    path = os.path.join(directory, name)
    if not os.path.exists(path):
        tmp = os.path.join(directory, f"tmp_{key}.keras")
        try:
            with canonical_activations(model):
                model.save(tmp)
            _check_saved(tmp)
        except Exception as error:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(error, Refused):
                raise
            raise NotExportable(f"{_type_name(model)} (не сохраняется: {error})") from error
        os.replace(tmp, path)
    history = getattr(model, "history", None)
    epochs = list(getattr(history, "epoch", []) or [])
    return {"$t": "model", "file": name, "epoch": _jsonable(epochs),
            "history": _jsonable(getattr(history, "history", None) or {}) if history is not None else None,
            "iterations": _iterations(model), "trained": bool(epochs) or _iterations(model) > 0}


def _encode_figure(fig: Any, directory: str) -> dict:
    import numpy as np

    axes = []
    for ax in fig.axes[:MAX_AXES]:
        spec = None
        with contextlib.suppress(Exception):
            spec = ax.get_subplotspec()
        geometry = [int(v) for v in spec.get_geometry()] if spec is not None else None
        images = [_write_array(np.asarray(np.ma.getdata(im.get_array())), directory)
                  for im in ax.images if im.get_array() is not None]
        axes.append({"geometry": geometry, "position": [float(v) for v in ax.get_position().bounds],
                     "images": images})
    return {"$t": "figure", "size": [float(v) for v in fig.get_size_inches()], "axes": axes}


def encode(value: Any, directory: str, depth: int = 0) -> Any:
    """The tagged-JSON node of ``value``, writing arrays, models and figure images to ``directory``.

    Plain JSON scalars stay as they are; a JSON list is a Python list; every other node is an
    object with a ``"$t"`` tag: ``tuple``, ``set``, ``frozenset``, ``dict`` (``items`` as
    pairs), ``float`` (non-finite), ``np`` (a numpy scalar), ``ndarray``, ``model``, ``figure``.
    Raises :class:`NotExportable` for anything else (functions, modules, unknown objects).
    """
    if depth > MAX_DEPTH:
        raise NotExportable("слишком глубокая вложенность")
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.generic):  # before float: np.float64 is a float
        if isinstance(value, np.object_ | np.void | np.complexfloating) or value.dtype.kind not in "biuf":
            raise NotExportable(_type_name(value))
        if isinstance(value, np.floating) and not math.isfinite(float(value)):
            scalar: Any = repr(float(value))
        else:
            scalar = value.item()
        return {"$t": "np", "dtype": value.dtype.str, "v": scalar}
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else {"$t": "int", "v": str(value)}
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$t": "float", "v": repr(value)}
    if isinstance(value, list | tuple | set | frozenset | dict):
        if len(value) > MAX_ITEMS:
            raise NotExportable(f"{_type_name(value)} из {len(value)} элементов")
        if isinstance(value, dict):
            return {"$t": "dict", "items": [[encode(k, directory, depth + 1), encode(v, directory, depth + 1)]
                                            for k, v in value.items()]}
        if type(value) not in (list, tuple, set, frozenset):  # namedtuple, subclasses
            raise NotExportable(_type_name(value))
        items = [encode(v, directory, depth + 1) for v in value]
        return items if type(value) is list else {"$t": type(value).__name__, "items": items}

    if np is not None and isinstance(value, np.ndarray):
        return {"$t": "ndarray", "file": _write_array(value, directory)}
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(value, keras.Model):
        return _encode_model(value, directory)
    figure = sys.modules.get("matplotlib.figure")
    if figure is not None and isinstance(value, figure.Figure):
        return _encode_figure(value, directory)
    tf = sys.modules.get("tensorflow")
    if tf is not None and np is not None and isinstance(value, tf.Tensor | tf.Variable):
        with contextlib.suppress(Exception):
            return {"$t": "ndarray", "file": _write_array(np.asarray(value), directory),
                    "from": _type_name(value)}
    raise NotExportable(_type_name(value))


# --------------------------------------------------------------------------------- snapshots
def snapshot(question: str, namespace: dict[str, Any], *, at: str = "check") -> None:
    """Export the names ``question``'s tests read from ``namespace`` (replacing an earlier one)."""
    directory = _state["dir"]
    if directory is None or question not in _state["needed"]:
        return
    values: dict[str, Any] = {}
    for name in _state["needed"][question]:
        if name not in namespace:
            values[name] = {"kind": "missing"}
            continue
        try:
            if _probes.is_probed(name, namespace[name]):  # the grader's probes, answered here
                values[name] = {"kind": "probed",
                                "value": encode(_probes.record(name, namespace[name]), directory)}
                continue
            values[name] = {"kind": "value", "value": encode(namespace[name], directory)}
        except Refused as error:
            values[name] = {"kind": "unexportable", "type": _type_name(namespace[name]), "why": str(error)}
        except NotExportable as error:
            values[name] = {"kind": "unexportable", "type": str(error)}
        except Exception as error:  # a broken object: its export failed
            values[name] = {"kind": "unexportable",
                            "type": f"{_type_name(namespace[name])} ({type(error).__name__})"}
    _state["snapshots"][question] = {"at": at, "values": values}
    if question not in _state["checked"]:
        _state["checked"].append(question)
    _write_manifest()


def _write_manifest() -> None:
    path = os.path.join(_state["dir"], MANIFEST)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump({"format": FORMAT, "snapshots": _state["snapshots"]}, handle)
    os.replace(tmp, path)


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


class Notebook:
    """Stand-in for ``otter.Notebook`` during grading: ``check`` snapshots, the rest does nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def check(self, question: str, global_env: dict[str, Any] | None = None) -> None:
        namespace = global_env if global_env is not None else sys._getframe(1).f_globals
        snapshot(str(question), namespace)
        print(f"{question}: значения сохранены для оценивания")

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("_"):
            raise AttributeError(name)
        return _noop


def _module_getattr(name: str) -> Callable[..., None]:
    if name.startswith("_"):  # __file__, __path__...: inspect and IPython probe modules
        raise AttributeError(name)
    return _noop


def _fake_otter() -> types.ModuleType:
    module = types.ModuleType("otter", "convlab grading stand-in for otter (no tests run here)")
    module.Notebook = Notebook  # type: ignore[attr-defined]
    module.__getattr__ = _module_getattr  # type: ignore[method-assign]
    return module


def install(needed: dict[str, list[str]], directory: str) -> None:
    """Start exporting: ``needed`` maps each question to the names its tests read."""
    os.makedirs(directory, exist_ok=True)
    _state.update(needed={q: list(names) for q, names in needed.items()},
                  dir=os.path.abspath(directory), snapshots={}, checked=[])
    sys.modules["otter"] = _fake_otter()
    _write_manifest()


def cap_output(per_cell: int, total: int, note: str) -> None:
    """From the next cell on, drop what ``stdout``/``stderr`` receive past ``per_cell``
    characters in one cell or ``total`` in the notebook, with ``note`` once per cut cell.

    The runner bounds what it keeps too, but a cell printing as fast as it can outruns the
    kernel's output buffer and the message queues between kernel and runner, and IPython 9
    keeps every chunk a cell writes in its output history: gigabytes before a byte is dropped.
    Cut at the source, a cell printing forever costs only its time (until the cell timeout).
    IPython swaps ``write`` for its recorder around each cell and puts it back after, so the cap
    wraps whatever ``write`` is in place when a cell starts (``pre_run_cell``), outermost.
    Submission code can undo this; then only its own memory limit suffers.
    """
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return
    state = {"cell": 0, "all": 0, "cut": False}

    def capped(write: Callable[[str], Any]) -> Callable[[str], Any]:
        def write_capped(text: str) -> Any:
            if not isinstance(text, str):
                return write(text)  # the stream's own TypeError
            if state["cut"]:
                return len(text)
            room = min(per_cell - state["cell"], total - state["all"])
            if len(text) > room:
                state["cut"] = True
                write(text[:max(room, 0)] + note)
                return len(text)
            state["cell"] += len(text)
            state["all"] += len(text)
            return write(text)

        write_capped.convlab_cap = True  # type: ignore[attr-defined]
        return write_capped

    def new_cell(*_: Any) -> None:
        state.update(cell=0, cut=False)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(AttributeError, TypeError):
                if not getattr(stream.write, "convlab_cap", False):
                    stream.write = capped(stream.write)  # type: ignore[method-assign]  # the cap itself

    shell.events.register("pre_run_cell", new_cell)


def finish(namespace: dict[str, Any]) -> None:
    """Snapshot the questions never checked, against the final namespace, and rewrite the
    manifest (called by the cell appended after the student's last cell)."""
    for question in _state["needed"]:
        if question not in _state["checked"]:
            snapshot(question, namespace, at="end")
    _write_manifest()
