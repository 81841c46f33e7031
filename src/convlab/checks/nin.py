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

The functions the student writes (``nin_block``, ``cosine_lr``, the counters) are checked on
the grader's own probes (:mod:`convlab.grading.probes`: fixed, stratified, never in the student
kit): under ``otter run`` the hidden test calls the function, under ``convlab grade`` the exporter
records its answers on the same probes and the check reads them; both give the same outcomes.

Facts about training come from the model, not from its history: the optimizer's step count
against epochs × steps per epoch, the learning rate the schedule left in the optimizer, and the
test accuracy the check computes itself (:func:`nin_trained_as_prescribed`).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from convlab.checks.base import fail, require, show
from convlab.checks.models import Op, _leaf_layers, _pair, layer_ops, need_model, optimizer_steps
from convlab.public import figure_shows_matrix  # noqa: F401  (re-exported)

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


def _expected_block_shape(config: dict[str, Any], side: tuple[int, ...]) -> list[int]:
    k, s = int(config["kernel_size"]), int(config["strides"])
    if config["padding"] == "same":
        spatial = [math.ceil(d / s) for d in side[:2]]
    else:
        spatial = [(d - k) // s + 1 for d in side[:2]]
    return [*spatial, int(config["num_channels"])]


def _call_text(config: dict[str, Any]) -> str:
    return "nin_block(" + ", ".join(f"{k}={v!r}" for k, v in config.items()) + ")"


def nin_block_probed(nin_block: Any, name: str = "nin_block") -> None:
    """``nin_block`` on the grader's probes (strides, both paddings, kernels 1/3/5, ``num_1x1``
    1/2/3 and left at its default): a k×k convolution then ``num_1x1`` 1×1 convolutions, ReLU
    after each, the requested channels, stride and padding (BatchNormalization allowed), and the
    output shape that follows from them."""
    from convlab.grading import probes

    for config, outcome in zip(probes.BLOCKS, probes.outcomes("block", nin_block), strict=True):
        call = _call_text(config) + f" на входе {probes.BLOCK_INPUT}"
        if "error" in outcome:
            raise fail(call, "блок NiN (tf.keras.Sequential)", f"ошибка {outcome['error']}")
        described = outcome["ok"]
        ops = [Op(kind, list(args), activation) for kind, args, activation in described["layers"]]
        found = [_describe_conv(op) for op in ops if op.kind not in _IGNORED]
        expected = _expected_block(config)
        if found != expected:
            raise fail(call, f"слои «{', '.join(expected)}»", f"«{', '.join(found)}»")
        shape = _expected_block_shape(config, probes.BLOCK_INPUT)
        require(described["output_shape"] == shape, f"{call}: форма выхода", tuple(shape),
                tuple(described["output_shape"]))


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


def _close(value: Any, expected: float) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(number) and abs(number - expected) <= 1e-6 * max(abs(expected), 1e-8) + 1e-12


def cosine_probed(cosine_lr: Any, name: str = "cosine_lr") -> None:
    """``cosine_lr(epoch, lr_0, lr_min, T) == cosine(...)`` on the grader's probes (both ends,
    the middle, ``T`` and rates other than the lab's: a function that reads global variables
    fails)."""
    from convlab.grading import probes

    for point, outcome in zip(probes.SCHEDULE, probes.outcomes("schedule", cosine_lr), strict=True):
        t, lr_0, lr_min, T = point
        call = f"{name}(epoch={t}, lr_0={lr_0:g}, lr_min={lr_min:g}, T={T})"
        expected = cosine(t, lr_0, lr_min, T)
        if "error" in outcome:
            raise fail(call, f"{expected:.6g}", f"ошибка {outcome['error']}")
        require(_close(outcome["ok"], expected), call, f"{expected:.6g}", show(outcome["ok"]))


#: test accuracy below which a CIFAR-10 model counts as untrained (chance is 0.10; the reference
#: ablation reaches 0.54 after its 2nd of 3 epochs, the reference nin 0.49 after its 2nd of 8)
MIN_TRAINED_ACCURACY = 0.3


def _learning_rate(model: Any) -> float | None:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    try:
        return float(np.asarray(optimizer.learning_rate))
    except Exception:
        return None


def nin_trained_as_prescribed(model: Any, epochs: Any, batch_size: Any, dataset: str = "cifar10",
                          name: str = "nin") -> None:
    """Evidence of training that a forged ``model.history`` does not give: the optimizer made
    ``epochs × ceil(N_train / batch_size)`` steps (the whole training split, ``epochs`` epochs,
    that batch size), a history, if any, has as many epochs, and the check's own test accuracy
    is far above chance (:data:`MIN_TRAINED_ACCURACY`)."""
    from convlab.checks.data import train_size
    from convlab.checks.performance import test_accuracy

    need_model(model, name)
    steps = math.ceil(train_size(dataset) / int(batch_size))
    expected = int(epochs) * steps
    found = optimizer_steps(model)
    require(found == expected, f"{name}: шагов оптимизатора (optimizer.iterations)",
            f"{expected} = {int(epochs)} эпох × {steps} пакетов по {int(batch_size)} из "
            f"{train_size(dataset)} обучающих изображений",
            f"{found}" + (" (модель не обучалась)" if found == 0 else ""))
    history = getattr(model, "history", None)
    logged = len(getattr(history, "epoch", None) or [])
    require(logged in (0, int(epochs)), f"{name}: эпох в истории обучения", int(epochs), logged)
    accuracy = test_accuracy(model, dataset)
    require(accuracy >= MIN_TRAINED_ACCURACY, f"{name}: точность на тестовой выборке",
            f"не менее {MIN_TRAINED_ACCURACY:.2f} у обученной сети (случайные веса дают около 0.10)",
            f"{accuracy:.4f}")


def schedule_attached(model: Any, lr_0: Any, lr_min: Any, epochs: Any, batch_size: Any = None,
                      name: str = "nin") -> None:
    """Training followed the cosine schedule of the notebook's ``lr_0``, ``lr_min`` and
    ``T = epochs``: the history logged the rate of every epoch (``LearningRateScheduler``), and
    the optimizer itself holds the rate of the last epoch; with ``batch_size``, the training
    is also :func:`nin_trained_as_prescribed` (a history alone is not evidence)."""
    need_model(model, name)
    if batch_size is not None:
        nin_trained_as_prescribed(model, epochs, batch_size, name=name)
    history = getattr(model, "history", None)
    logged = list((getattr(history, "history", None) or {}).get("learning_rate") or [])
    trained = len(getattr(history, "epoch", None) or [])
    require(bool(logged), f"{name}: скорость обучения в истории обучения",
            "значения learning_rate по эпохам (callbacks=[LearningRateScheduler(...)] в fit)",
            "их нет" if trained else "модель не обучалась")
    require(len(logged) == int(epochs), f"{name}: эпох со скоростью обучения в истории",
            int(epochs), len(logged))
    for epoch, value in enumerate(logged):
        expected = cosine(epoch, float(lr_0), float(lr_min), float(epochs))
        ok = value is not None and abs(float(value) - expected) <= 1e-5 * max(expected, 1e-8)
        require(ok, f"{name}: скорость обучения в эпохе {epoch + 1}",
                f"{expected:.6g} (косинусный график, lr_0={float(lr_0):g}, lr_min={float(lr_min):g}, "
                f"T={epochs})", show(value))
    last = cosine(int(epochs) - 1, float(lr_0), float(lr_min), float(epochs))
    current = _learning_rate(model)
    ok = current is not None and abs(current - last) <= 1e-4 * max(last, 1e-8)
    require(ok, f"{name}: скорость обучения в оптимизаторе после обучения",
            f"{last:.6g} (расписание последней эпохи)", show(current))


def accuracy_floor(lab: str, model: str) -> float:
    """The accuracy from which the linear credit starts: the calibrated floor
    (``thresholds.json``, ``floors``; docs/calibration.md)."""
    from convlab.checks.base import floor

    return floor(lab, model)


def nin_accuracy_step(model: Any, step: int, steps: int, *, lab: str = "lab6_nin", key: str = "nin",
                  dataset: str = "cifar10", name: str = "nin") -> None:
    """Step ``step`` of ``steps`` of the linear accuracy credit: the test accuracy reaches
    ``floor + step/steps · (threshold − floor)``; the last step is the calibrated threshold."""
    from convlab.checks.base import threshold
    from convlab.checks.performance import test_accuracy

    need_model(model, name)
    floor, top = accuracy_floor(lab, key), threshold(lab, key)
    level = top if step >= steps else floor + step * (top - floor) / steps
    accuracy = test_accuracy(model, dataset)
    require(accuracy >= level - 1e-12, f"{name}: точность на тестовой выборке (ступень {step} из {steps}, "
            f"от {floor:.2f} до {top:.2f})", f"не менее {level:.3f}", f"{accuracy:.4f}")


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
    try:
        array = np.asarray(cm) if cm is not None else None
    except Exception:
        array = None
    square = array is not None and array.shape == (classes, classes) and array.dtype.kind in "biuf"
    require(square, f"{name}", f"матрица {classes}×{classes} из чисел примеров", show(array))
    assert array is not None
    # exact counts in any numeric dtype (an int matrix, or the same counts as floats); a
    # normalized matrix (fractions) is not the asked-for matrix of counts
    exact = bool(np.all(np.isfinite(array))) and bool(np.all(array == np.round(array)))
    require(exact and bool(np.all(array >= 0)), f"{name}: элементы",
            "целые числа примеров (не доли: матрица без нормировки)", show(array))
    array = np.round(array).astype(np.int64)
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


_QUANTITIES = {"params": "count_params(model)", "mults": "count_mults(model)",
               "memory": "count_memory(model, batch_size)"}


def _network_text(model: Any, spec: dict[str, Any]) -> str:
    layers = ", ".join(op.describe() for op in layer_ops(model))
    return f"вход {tuple(spec['input'])}: {layers}"


def counter_probed(function: Any, quantity: str, name: str | None = None) -> None:
    """One counting function (``params``, ``mults`` or ``memory``) agrees with the reference
    on every probe network of the grader (strided and ``valid`` convolutions, with and without
    BatchNormalization, nested blocks and flat layers, Flatten + Dense heads)."""
    from convlab.grading import probes

    reference = {"params": lambda m, _: reference_params(m), "mults": lambda m, _: reference_mults(m),
                 "memory": reference_memory}[quantity]
    label = name or _QUANTITIES[quantity].split("(")[0]
    results = probes.outcomes(quantity, function)
    for index, (spec, outcome) in enumerate(zip(probes.NETWORKS, results, strict=True)):
        model = probes.build_network(spec, index)
        expected = int(reference(model, spec["batch"]))
        where = f"{label}, сеть №{index + 1} ({_network_text(model, spec)})"
        if quantity == "memory":
            where += f", batch_size={spec['batch']}"
        if "error" in outcome:
            raise fail(where, expected, f"ошибка {outcome['error']}")
        require(outcome["ok"] == expected, where, expected, show(outcome["ok"]))


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
    iterations = optimizer_steps(model)
    del epochs  # a history is not evidence of training (it can be forged): the optimizer's steps are
    require(iterations > 0, f"{name}: обученные веса",
            "файл обученной модели в artifacts/ (архив из последней ячейки блокнота)",
            "модель не обучена: файла нет в архиве или он не соответствует архитектуре и "
            "параметрам обучения в блокноте (при оценивании модель не обучается заново)")
