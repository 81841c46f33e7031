"""Checks of the NiN lab (Network in Network on CIFAR-10): blocks, network, training setup,
confusion matrix, counting functions and the submitted weights.

Counting conventions (stated in the lab notebook as well), for a linear stack of layers:

* **trainable parameters** — the sizes of the model's trainable weights (kernels, biases,
  BatchNormalization's gamma and beta);
* **multiplications** for one image — for every ``Conv2D``
  ``k_h·k_w·c_in·c_out·H_out·W_out``, for every ``Dense`` ``n_in·n_out``; biases,
  BatchNormalization, pooling and activations are not counted;
* **memory** in bytes for a batch of ``B`` images, float32 — ``4 · (P + B · A)`` where ``P``
  is every parameter of the model (trainable or not) and ``A`` the number of values of every
  layer's output for one image (each layer of the nested blocks separately, the input not
  counted).

Functions cannot be exported by the two-phase grader, so the lab's notebook applies the
student's ``nin_block`` and counting functions to *random* configurations drawn by
:func:`random_block_configs` and :func:`random_networks` (fresh ones at every run) and the
checks compare the results with the reference: answers hard-coded for one network fail.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from convlab.checks.base import CheckFailed, fail, require, show
from convlab.checks.models import Op, _leaf_layers, _pair, layer_ops, need_model

#: float32
BYTES_PER_VALUE = 4
#: default largest trained model accepted, in megabytes of float32 weights
DEFAULT_MAX_MODEL_MB = 100.0
#: environment variable overriding :data:`DEFAULT_MAX_MODEL_MB`
ENV_MAX_MODEL_MB = "CONVLAB_MAX_MODEL_MB"

_IGNORED = ("BatchNorm",)


# ----------------------------------------------------------------------------- references
def _chain_shapes(model: Any, input_shape: tuple[int, ...] | None = None) -> list[tuple[Any, ...]]:
    """Output shape (with the batch axis) of each leaf layer of a linear stack."""
    shape = tuple(input_shape) if input_shape is not None else tuple(model.inputs[0].shape)
    shapes = []
    for layer in _leaf_layers(model):
        shape = tuple(layer.compute_output_shape(shape))
        shapes.append(shape)
    return shapes


def reference_params(model: Any) -> int:
    """Trainable parameters of ``model``."""
    return int(sum(math.prod(int(d) for d in w.shape) for w in model.trainable_weights))


def reference_mults(model: Any) -> int:
    """Multiplications for one image (Conv2D and Dense layers, biases not counted)."""
    import keras

    total = 0
    shape: tuple[Any, ...] = (1, *tuple(model.inputs[0].shape)[1:])
    for layer in _leaf_layers(model):
        out = tuple(layer.compute_output_shape(shape))
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw = _pair(layer.kernel_size)
            total += kh * kw * int(shape[-1]) // layer.groups * layer.filters * int(out[1]) * int(out[2])
        elif isinstance(layer, keras.layers.Dense):
            total += int(shape[-1]) * layer.units
        shape = out
    return int(total)


def reference_memory(model: Any, batch_size: int) -> int:
    """Bytes of float32 weights plus every layer's output for a batch of ``batch_size``."""
    activations = sum(math.prod(int(d) for d in s[1:]) for s in _chain_shapes(model))
    return int(BYTES_PER_VALUE * (model.count_params() + batch_size * activations))


# --------------------------------------------------------------------------- random probes
def random_block_configs(count: int = 4, seed: int | None = None) -> list[dict[str, Any]]:
    """Random arguments for ``nin_block`` (a fresh draw when ``seed`` is None)."""
    rng = np.random.default_rng(seed)
    configs = []
    for _ in range(count):
        configs.append({
            "num_channels": int(rng.integers(2, 17)),
            "kernel_size": int(rng.choice([1, 3, 5])),
            "strides": int(rng.integers(1, 3)),
            "padding": str(rng.choice(["same", "valid"])),
            "num_1x1": int(rng.integers(1, 4)),
        })
    return configs


def random_networks(count: int = 4, seed: int | None = None) -> list[Any]:
    """Small random NiN networks (random input size, widths, kernels, 1x1 counts, with or
    without BatchNormalization) for checking the counting functions."""
    import keras
    from keras import layers

    rng = np.random.default_rng(seed)
    models = []
    for _ in range(count):
        side = int(rng.choice([8, 12, 16, 20]))
        classes = int(rng.integers(3, 11))
        batch_norm = bool(rng.integers(0, 2))
        stack: list[Any] = [keras.Input((side, side, int(rng.choice([1, 3]))))]
        for _ in range(int(rng.integers(2, 4))):
            channels = int(rng.integers(2, 13))
            stack.append(_block(channels, int(rng.choice([3, 5])), 1, "same", int(rng.integers(1, 3)),
                                batch_norm))
            stack.append(layers.MaxPooling2D(int(rng.choice([2, 3])), strides=2, padding="same"))
        stack.append(layers.Dropout(0.5))
        stack.append(_block(classes, 3, 1, "same", int(rng.integers(1, 3)), batch_norm))
        stack.append(layers.GlobalAveragePooling2D())
        models.append(keras.Sequential(stack))
    return models


def _block(channels: int, kernel: int, strides: int, padding: str, num_1x1: int,
           batch_norm: bool) -> Any:
    import keras
    from keras import layers

    stack = [layers.Conv2D(channels, kernel, strides=strides, padding=padding, activation="relu")]
    for _ in range(num_1x1):
        if batch_norm:
            stack.append(layers.BatchNormalization())
        stack.append(layers.Conv2D(channels, 1, activation="relu"))
    return keras.Sequential(stack)


# ----------------------------------------------------------------------------------- blocks
def _describe_conv(op: Op) -> str:
    if op.kind == "Conv2D" and op.args[1] == "1x1":  # padding does not matter for 1x1
        return " ".join(["Conv2D", op.args[0], "1x1", *op.args[3:], op.activation or "linear"])
    return op.describe()


def _expected_block(config: dict[str, Any]) -> list[str]:
    c, k, s = config["num_channels"], config["kernel_size"], config["strides"]
    first = Op("Conv2D", [str(c), f"{k}x{k}", str(config["padding"])] + ([f"stride {s}"] if s != 1 else []),
               "relu")
    ones = [Op("Conv2D", [str(c), "1x1", "same"], "relu")] * int(config.get("num_1x1", 2))
    return [_describe_conv(op) for op in (first, *ones)]


def _call_text(config: dict[str, Any]) -> str:
    return "nin_block(" + ", ".join(f"{k}={v!r}" for k, v in config.items()) + ")"


def nin_block_samples(configs: Any, samples: Any, name: str = "block_samples") -> None:
    """Each ``samples[i]`` (``nin_block(**configs[i])`` on an input) is a k×k convolution
    followed by ``num_1x1`` 1×1 convolutions, ReLU after each, with the requested channels,
    stride and padding (BatchNormalization between them allowed)."""
    require(isinstance(configs, list) and isinstance(samples, list) and len(configs) == len(samples),
            f"{name}", "список блоков, по одному на каждую конфигурацию block_configs",
            show(samples) if not isinstance(samples, list) else f"{len(samples)} блоков")
    distinct = {tuple(sorted(c.items())) for c in configs if isinstance(c, dict)}
    require(len(distinct) >= 3, "block_configs", "не менее 3 разных случайных конфигураций "
            "(random_block_configs())", f"{len(distinct)}")
    for config, sample in zip(configs, samples, strict=True):
        call = _call_text(config)
        need_model(sample, f"{name}: {call}")
        found = [_describe_conv(op) for op in layer_ops(sample) if op.kind not in _IGNORED]
        expected = _expected_block(config)
        if found != expected:
            raise CheckFailed(f"{call}: ожидалось слои «{', '.join(expected)}», "
                              f"получено «{', '.join(found)}».")


# ---------------------------------------------------------------------------------- network
def _blocks(ops: list[Op]) -> tuple[list[list[Op]], list[list[Op]]]:
    """Split into blocks (a k×k Conv2D and the 1×1 ones after it) and the layers between."""
    blocks: list[list[Op]] = []
    between: list[list[Op]] = [[]]
    for op in ops:
        if op.kind == "Conv2D" and op.args[1] == "1x1" and blocks and not between[-1]:
            blocks[-1].append(op)
        elif op.kind == "Conv2D":
            blocks.append([op])
            between.append([])
        else:
            between[-1].append(op)
    return blocks, between


def nin_network(model: Any, *, classes: int = 10, num_1x1: int | tuple[int, ...] = 2,
                name: str = "nin") -> None:
    """NiN blocks (``num_1x1`` 1×1 layers each, ReLU everywhere) with pooling between them,
    a Dropout, a last block of ``classes`` channels, global average pooling, no Dense."""
    need_model(model, name)
    ops = [op for op in layer_ops(model) if op.kind not in _IGNORED]
    described = ", ".join(op.describe() for op in ops)
    dense = [op for op in ops if op.kind in ("Dense", "Flatten")]
    if dense:
        raise fail(f"{name}: полносвязные слои", "их нет (выход — глобальный average pooling)",
                   f"«{dense[0].describe()}»; слои модели: {described}")
    tail = [op for op in ops if not (op.kind == "Activation" and op.args == ["softmax"])]
    require(bool(tail) and tail[-1].kind == "GlobalAvgPool", f"{name}: последний слой",
            "GlobalAveragePooling2D (перед ним — последний блок NiN)",
            f"«{tail[-1].describe() if tail else 'нет слоёв'}»")
    blocks, between = _blocks(tail[:-1])
    require(len(blocks) >= 2, f"{name}: число блоков NiN", "не менее 2", len(blocks))
    for number, block in enumerate(blocks, start=1):
        relu = all(op.activation == "relu" for op in block)
        require(relu, f"{name}, блок №{number}: активации", "ReLU после каждой свёртки",
                ", ".join(op.describe() for op in block))
        allowed = (num_1x1,) if isinstance(num_1x1, int) else tuple(num_1x1)
        require(len(block) - 1 in allowed, f"{name}, блок №{number}: число слоёв 1×1 после свёртки "
                f"{block[0].args[1]}", " или ".join(map(str, allowed)), len(block) - 1)
        channels = {op.args[0] for op in block}
        require(len(channels) == 1, f"{name}, блок №{number}: число фильтров слоёв 1×1",
                f"как у первой свёртки ({block[0].args[0]})", ", ".join(op.args[0] for op in block))
    for number, ops_between in enumerate(between[1:-1], start=1):
        require(any(op.kind in ("MaxPool", "AvgPool") for op in ops_between),
                f"{name}: слой субдискретизации между блоками №{number} и №{number + 1}",
                "MaxPooling2D", ", ".join(op.describe() for op in ops_between) or "его нет")
    require(any(op.kind == "Dropout" for op in tail), f"{name}: Dropout", "слой Dropout",
            f"его нет; слои модели: {described}")
    last = blocks[-1][0].args[0]
    require(last == str(classes), f"{name}: число фильтров последнего блока",
            f"{classes} (по числу классов)", last)


def _from_logits(loss: Any) -> bool:
    if isinstance(loss, dict):
        loss = next(iter(loss.values()), None)
    if isinstance(loss, str) or loss is None:
        return False
    if hasattr(loss, "from_logits"):
        return bool(loss.from_logits)
    config = loss.get_config() if hasattr(loss, "get_config") else {}
    return bool(config.get("from_logits", False))


def outputs_match_loss(model: Any, name: str = "nin") -> None:
    """The loss's ``from_logits`` agrees with the output: softmax probabilities with
    ``from_logits=False``, logits (no softmax) with ``from_logits=True``."""
    need_model(model, name)
    if not getattr(model, "compiled", False) or getattr(model, "loss", None) is None:
        raise fail(f"{name}: компиляция", "модель, скомпилированная через compile()", "не скомпилирована")
    ops = layer_ops(model)
    softmax = bool(ops) and "softmax" in (ops[-1].activation, *ops[-1].args)
    logits = _from_logits(model.loss)
    if softmax and logits:
        raise fail(f"{name}: функция потерь", "from_logits=False (выход сети — softmax, вероятности)",
                   "from_logits=True")
    if not softmax and not logits:
        raise fail(f"{name}: функция потерь", "from_logits=True (выход сети — логиты, без softmax)",
                   "from_logits=False")


# ---------------------------------------------------------------------------------- training
def adamw_weight_decay(model: Any, name: str = "nin") -> None:
    """Compiled with AdamW and a positive weight decay."""
    need_model(model, name)
    optimizer = getattr(model, "optimizer", None)
    found = type(optimizer).__name__ if optimizer is not None else "нет (модель не скомпилирована)"
    require(found == "AdamW", f"{name}: оптимизатор", "AdamW", found)
    decay = float(getattr(optimizer, "weight_decay", 0) or 0)
    require(decay > 0, f"{name}: weight_decay оптимизатора AdamW", "больше 0", f"{decay:g}")


def cosine(t: float, lr_0: float, lr_min: float, T: float) -> float:
    """``lr_min + (lr_0 - lr_min)·(1 + cos(π·t/T))/2``."""
    return lr_min + (lr_0 - lr_min) * (1 + math.cos(math.pi * t / T)) / 2


def random_schedule_points(count: int = 6, seed: int | None = None) -> list[tuple[int, float, float, int]]:
    """Random ``(t, lr_0, lr_min, T)`` with ``0 <= t <= T`` (the ends included)."""
    rng = np.random.default_rng(seed)
    points = []
    for number in range(count):
        T = int(rng.integers(5, 60))
        t = (0, T)[number] if number < 2 else int(rng.integers(1, T))
        lr_0 = float(rng.choice([1e-2, 3e-3, 1e-3, 5e-4]))
        points.append((t, lr_0, float(lr_0 * rng.choice([0, 0.01, 0.1])), T))
    return points


def _close(value: Any, expected: float) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(number) and abs(number - expected) <= 1e-6 * max(abs(expected), 1e-8) + 1e-12


def cosine_schedule_values(points: Any, values: Any, name: str = "cosine_lr") -> None:
    """``values[i] == cosine(*points[i])`` for at least 4 distinct random points."""
    require(isinstance(points, list | tuple) and len({tuple(p) for p in points}) >= 4, "schedule_points",
            "не менее 4 разных точек (random_schedule_points())", show(points))
    require(isinstance(values, list | tuple | np.ndarray) and len(values) == len(points), "schedule_values",
            f"список из {len(points)} чисел", show(values))
    for point, value in zip(points, values, strict=True):
        t, lr_0, lr_min, T = point
        expected = cosine(t, lr_0, lr_min, T)
        require(_close(value, expected), f"{name}(epoch={t}, lr_0={lr_0:g}, lr_min={lr_min:g}, T={T})",
                f"{expected:.6g}", show(value))


def schedule_attached(model: Any, lr_0: Any, lr_min: Any, epochs: Any, name: str = "nin") -> None:
    """Training logged the learning rate of every epoch (``LearningRateScheduler`` writes
    ``learning_rate`` into the history) and it followed the cosine schedule of the notebook's
    ``lr_0``, ``lr_min`` and ``T = epochs``."""
    need_model(model, name)
    history = getattr(model, "history", None)
    logged = list((getattr(history, "history", None) or {}).get("learning_rate") or [])
    trained = len(getattr(history, "epoch", None) or [])
    require(bool(logged), f"{name}: скорость обучения в истории обучения",
            "значения learning_rate по эпохам (callbacks=[LearningRateScheduler(...)] в fit)",
            "их нет" if trained else "модель не обучалась")
    for epoch, value in enumerate(logged):
        expected = cosine(epoch, float(lr_0), float(lr_min), float(epochs))
        ok = value is not None and abs(float(value) - expected) <= 1e-5 * max(expected, 1e-8)
        require(ok, f"{name}: скорость обучения в эпохе {epoch + 1}",
                f"{expected:.6g} (косинусный график, lr_0={float(lr_0):g}, lr_min={float(lr_min):g}, "
                f"T={epochs})", show(value))


# ------------------------------------------------------------------------- confusion matrix
def confusion_matrix_of(cm: Any, model: Any, dataset: str = "cifar10", name: str = "confusion") -> None:
    """``cm`` is the confusion matrix of ``model`` on the pristine test split: rows are true
    classes, it sums to the test size, its trace / N is the model's accuracy."""
    from convlab.checks.data import pristine
    from convlab.checks.performance import predictions

    need_model(model, "nin")
    _, y_test = pristine(dataset)
    predicted = predictions(model, dataset)
    classes = int(max(y_test.max(), predicted.max())) + 1
    expected = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(expected, (y_test, predicted), 1)
    array = np.asarray(cm) if cm is not None else None
    square = array is not None and array.shape == (classes, classes)
    require(square and np.issubdtype(array.dtype, np.integer), f"{name}",
            f"целочисленная матрица {classes}×{classes}", show(array))
    assert array is not None
    total = len(y_test)
    require(int(array.sum()) == total, f"{name}: сумма элементов", f"{total} (размер тестовой выборки)",
            int(array.sum()))
    # predictions by a notebook may differ from ours in a few borderline images (batching)
    slack = max(2, total // 500)
    if np.abs(array - expected).sum() > slack and np.abs(array.T - expected).sum() <= slack:
        raise fail(f"{name}: строки и столбцы", "строки — истинные классы, столбцы — предсказанные",
                   "транспонированная матрица (строки — предсказанные классы)")
    accuracy = float(np.mean(predicted == y_test))
    require(abs(np.trace(array) / total - accuracy) <= slack / total,
            f"{name}: след / N", f"{accuracy:.4f} (точность модели на тестовой выборке)",
            f"{np.trace(array) / total:.4f}")
    require(np.abs(array - expected).sum() <= slack, f"{name}: элементы",
            "матрица ошибок обученной модели nin на тестовой выборке",
            f"{int(np.abs(array - expected).sum())} расхождений")


def figure_shows_matrix(fig: Any, cm: Any, name: str = "fig_cm") -> None:
    """The figure draws the matrix ``cm`` as an image (``ConfusionMatrixDisplay.plot`` or
    ``imshow``)."""
    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        raise fail(name, "фигура matplotlib с матрицей ошибок",
                   show(fig) if fig is None else type(fig).__name__)
    target = np.asarray(cm, dtype=np.float64) if cm is not None else None
    for ax in fig.axes:
        for image in ax.images:
            drawn = np.asarray(image.get_array(), dtype=np.float64)
            if target is not None and drawn.shape == target.shape and np.allclose(drawn, target):
                return
    raise fail(f"{name}: изображение", "матрица ошибок confusion (imshow / ConfusionMatrixDisplay)",
               "на фигуре её нет")


# ------------------------------------------------------------------------------- answers
def layer_output_shapes(shapes: Any, model: Any, input_shape: tuple[int, ...] = (1, 32, 32, 3),
                        name: str = "output_shapes") -> None:
    """``shapes`` are the output shapes of the model's top-level layers for ``input_shape``."""
    need_model(model, "nin")
    expected = []
    shape: tuple[Any, ...] = tuple(input_shape)
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    for layer in layers:
        shape = tuple(int(d) for d in layer.compute_output_shape(shape))
        expected.append(shape)
    found = [tuple(s) for s in shapes] if isinstance(shapes, list | tuple) else shapes
    require(isinstance(found, list) and len(found) == len(expected), f"{name}: число слоёв",
            len(expected), len(found) if isinstance(found, list) else show(shapes))
    for number, (want, got) in enumerate(zip(expected, found, strict=True), start=1):
        kind = type(layers[number - 1]).__name__
        require(tuple(int(d) for d in got) == want, f"{name}, слой №{number} ({kind})", want, got)


def counts_on_networks(networks: Any, counts: Any, batch_size: int,
                       name: str = "probe_counts") -> dict[str, str]:
    """Compare ``counts[i] = (params, mults, memory)`` of ``networks[i]`` with the references.

    Returns the first failure message per quantity (``params``, ``mults``, ``memory``); raises
    only when the probes themselves are unusable."""
    require(isinstance(networks, list) and len(networks) >= 3, "probe_networks",
            "не менее 3 случайных сетей (random_networks())", show(networks))
    require(isinstance(counts, list | tuple) and len(counts) == len(networks), name,
            f"список из {len(networks)} троек (параметры, умножения, память)", show(counts))
    for model in networks:
        need_model(model, "probe_networks")
    signatures = {(tuple(model.inputs[0].shape), tuple(op.describe() for op in layer_ops(model)))
                  for model in networks}
    require(len(signatures) >= 3, "probe_networks", "не менее 3 разных сетей", len(signatures))
    failures: dict[str, str] = {}
    for number, (model, triple) in enumerate(zip(networks, counts, strict=True), start=1):
        values = list(triple) if isinstance(triple, list | tuple) else [None] * 3
        references = {"params": reference_params(model), "mults": reference_mults(model),
                      "memory": reference_memory(model, batch_size)}
        for index, (key, expected) in enumerate(references.items()):
            value = values[index] if index < len(values) else None
            if key not in failures and value != expected:
                layers = ", ".join(op.describe() for op in layer_ops(model))
                failures[key] = (f"{name}, сеть №{number} ({layers}), {key}: ожидалось {expected}, "
                                 f"получено {show(value)}.")
    return failures


def counter_correct(networks: Any, counts: Any, batch_size: int, quantity: str,
                    name: str = "probe_counts") -> None:
    """One counting function (``params``, ``mults`` or ``memory``) agrees with the reference
    on every random network."""
    message = counts_on_networks(networks, counts, batch_size, name).get(quantity)
    if message:
        raise CheckFailed(message)


# --------------------------------------------------------------------------- submitted model
def model_size_limit() -> float:
    """Largest accepted trained model in MB (``CONVLAB_MAX_MODEL_MB``, default 100)."""
    try:
        return float(os.environ.get(ENV_MAX_MODEL_MB) or DEFAULT_MAX_MODEL_MB)
    except ValueError:
        return DEFAULT_MAX_MODEL_MB


def submitted_model(model: Any, name: str = "nin", max_megabytes: float | None = None) -> None:
    """The model exists, its trained weights came with the submission and it is not too big."""
    if model is None:
        raise fail(name, "обученная модель (веса в artifacts/ архива grader.export())",
                   "None (переменная не задана: ячейка построения или обучения не выполнилась)")
    need_model(model, name)
    limit = model_size_limit() if max_megabytes is None else float(max_megabytes)
    size = BYTES_PER_VALUE * model.count_params() / 1e6
    require(size <= limit, f"{name}: размер модели (веса float32)", f"не более {limit:g} МБ",
            f"{size:.1f} МБ — уменьшите число фильтров")
    history = getattr(model, "history", None)
    epochs = len(getattr(history, "epoch", None) or [])
    optimizer = getattr(model, "optimizer", None)
    counter = getattr(optimizer, "iterations", None) if optimizer is not None else None
    iterations = int(np.asarray(counter)) if counter is not None else 0
    require(epochs > 0 or iterations > 0, f"{name}: обученные веса",
            "файл обученной модели в artifacts/ (архив из последней ячейки блокнота)",
            "модель не обучена: файла нет в архиве или он не соответствует архитектуре и "
            "параметрам обучения в блокноте (при оценивании модель не обучается заново)")
