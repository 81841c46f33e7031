"""What the trusted scorer accepts from a submission: the model allow-list and the size budgets.

Everything here reads plain data (JSON, ``.npy`` headers, HDF5 dataset headers) and never
imports, builds or calls anything the submission names. The scorer rebuilds a model only after
:func:`check_keras_archive` accepted it:

* every serialized object (``{"class_name": ..., "module": ...}``) is one of :data:`OBJECTS`
  (layers the two labs can need, Sequential/Functional models, initializers, regularizers,
  optimizers, learning-rate schedules, losses, metrics); ``registered_name`` is empty or the
  class's own name, so no custom object, no ``Lambda``, no function reference
  (``{"class_name": "function"}``) and no ``__lambda__`` bytecode can pass;
* every configuration key is in :data:`KEYS`; every string value is a layer/tensor name (a strict
  pattern, under a naming key) or one of the enumerated words of :data:`WORDS`, activations only
  from :data:`ACTIVATIONS`; numbers are finite;
* the model's shapes are inferred from the configuration alone (:func:`infer`), so parameter
  counts (:data:`MAX_PARAMS`), per-sample tensor sizes (:data:`MAX_TENSOR`) and dimensions
  (:data:`MAX_DIM`) are bounded before anything is built;
* the archive holds only ``config.json``, ``metadata.json`` and ``model.weights.h5``, and the
  weights file's datasets, read from their HDF5 headers, declare at most
  :data:`MAX_WEIGHT_BYTES` in all.

Arrays (:func:`npy_declared_bytes`) count by the size their ``.npy`` header declares (a sparse
file counts in full); :data:`MAX_EXPORT_ARRAY_BYTES` bounds a submission's arrays together.

Models travel as Keras' own ``.keras`` archive (config + weights), and the scorer loads one only
through :func:`check_keras_archive` then ``keras.saving.load_model(safe_mode=True)``: with every
object of the configuration allow-listed, deserialization can only construct allow-listed Keras
classes from numbers and enumerated words, and the weights are plain HDF5 arrays.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: at most this many parameters (weights) in one model (100 MB of float32, the lab's model cap)
MAX_PARAMS = 25_000_000
#: at most this many elements in one sample's tensor anywhere in the model (16 MB of float32)
MAX_TENSOR = 1 << 22
MAX_DIM = 1 << 16  #: any one dimension
MAX_LAYERS = 2000
MAX_DEPTH = 6  #: models nested in models
#: declared bytes of all datasets in ``model.weights.h5`` (weights + optimizer slots + slack)
MAX_WEIGHT_BYTES = 4 * 4 * MAX_PARAMS + (16 << 20)
MAX_CONFIG_BYTES = 16 << 20
#: declared bytes of all arrays of one submission's export together
MAX_EXPORT_ARRAY_BYTES = 5 << 29  # 2.5 GiB: CIFAR-10 and MNIST train/test as float64 fit
ARCHIVE_MEMBERS = frozenset({"config.json", "metadata.json", "model.weights.h5"})

ACTIVATIONS = frozenset({
    "relu", "softmax", "sigmoid", "tanh", "linear", "elu", "selu", "gelu", "silu", "swish",
    "softplus", "softsign", "leaky_relu", "relu6", "exponential", "log_softmax", "hard_sigmoid",
    "hard_silu", "hard_swish", "mish",
})

_MODELS = {("keras", "Sequential"), ("keras.src.models.sequential", "Sequential"),
           ("keras", "Functional"), ("keras.src.models.functional", "Functional"),
           ("keras", "Model"), ("keras.src.models.model", "Model")}
LAYERS = frozenset({
    "InputLayer", "Conv2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
    "GlobalMaxPooling2D", "BatchNormalization", "Dropout", "SpatialDropout2D", "Flatten", "Dense",
    "Activation", "ReLU", "Softmax", "LeakyReLU", "ELU", "Rescaling", "Reshape", "ZeroPadding2D",
    "Add", "Concatenate", "Average", "Maximum", "Identity", "GaussianNoise",
    # data augmentation inside the model (identity at inference)
    "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "RandomContrast",
    "RandomBrightness",
})
INITIALIZERS = frozenset({
    "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform", "LecunNormal",
    "Zeros", "Ones", "Constant", "RandomNormal", "RandomUniform", "TruncatedNormal",
    "VarianceScaling", "Orthogonal",
})
OPTIMIZERS = frozenset({"SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Nadam"})
SCHEDULES = frozenset({"CosineDecay", "ExponentialDecay", "PiecewiseConstantDecay", "InverseTimeDecay",
                       "PolynomialDecay", "CosineDecayRestarts"})
LOSSES = frozenset({"SparseCategoricalCrossentropy", "CategoricalCrossentropy", "BinaryCrossentropy",
                    "MeanSquaredError", "KLDivergence"})
METRICS = frozenset({"SparseCategoricalAccuracy", "CategoricalAccuracy", "Accuracy",
                     "SparseTopKCategoricalAccuracy", "TopKCategoricalAccuracy", "Mean",
                     "MeanMetricWrapper"})
#: (module, class) of every object a model configuration may contain
OBJECTS: frozenset[tuple[str | None, str]] = frozenset(
    _MODELS
    | {("keras.layers", c) for c in LAYERS}
    | {("keras.initializers", c) for c in INITIALIZERS}
    | {("keras.regularizers", c) for c in ("L1", "L2", "L1L2")}
    | {("keras.constraints", c) for c in ("MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm")}
    | {("keras.optimizers", c) for c in OPTIMIZERS}
    | {("keras.optimizers.schedules", c) for c in SCHEDULES}
    | {("keras.losses", c) for c in LOSSES}
    | {("keras.metrics", c) for c in METRICS}
    | {("keras", "DTypePolicy"), ("keras", "FloatDTypePolicy"), (None, "__keras_tensor__")}
)
#: configuration keys (of any allow-listed object) and the keys of a serialized object itself
KEYS = frozenset({
    # serialized object / functional node
    "module", "class_name", "config", "registered_name", "build_config", "compile_config",
    "name", "inbound_nodes", "args", "kwargs", "shared_object_id", "shape", "keras_history",
    "input_shape", "input_layers", "output_layers", "training", "mask",
    # models and common layer keys
    "layers", "trainable", "dtype", "build_input_shape", "batch_shape", "batch_input_shape",
    "batch_size", "sparse", "ragged", "optional", "input_tensor",
    "filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "groups",
    "activation", "use_bias", "kernel_initializer", "bias_initializer", "kernel_regularizer",
    "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint",
    "lora_rank", "lora_alpha", "quantization_config", "units", "pool_size", "keepdims",
    "axis", "momentum", "epsilon", "center", "scale", "beta_initializer", "gamma_initializer",
    "moving_mean_initializer", "moving_variance_initializer", "beta_regularizer",
    "gamma_regularizer", "beta_constraint", "gamma_constraint", "synchronized", "renorm",
    "renorm_clipping", "renorm_momentum", "rate", "noise_shape", "seed", "max_value",
    "negative_slope", "threshold", "alpha", "offset", "target_shape", "stddev", "mean",
    "minval", "maxval", "value", "gain", "mode", "distribution", "input_axes", "output_axes",
    "l1", "l2", "min_value", "rate_", "max_norm",
    "factor", "height_factor", "width_factor", "fill_mode", "interpolation", "fill_value", "value_range",
    # compile config, optimizers, schedules, losses, metrics
    "optimizer", "loss", "loss_weights", "metrics", "weighted_metrics", "run_eagerly",
    "steps_per_execution", "jit_compile", "auto_scale_loss",
    "learning_rate", "weight_decay", "clipnorm", "global_clipnorm", "clipvalue", "use_ema",
    "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor", "gradient_accumulation_steps",
    "nesterov", "beta_1", "beta_2", "amsgrad", "rho", "centered", "initial_accumulator_value",
    "initial_learning_rate", "decay_steps", "warmup_target", "warmup_steps",
    "decay_rate", "staircase", "boundaries", "values", "end_learning_rate", "power", "cycle",
    "first_decay_steps", "t_mul", "m_mul", "from_logits", "ignore_class", "reduction",
    "label_smoothing", "k", "fn",
})
#: string values allowed anywhere outside naming keys (besides activation names)
WORDS = frozenset({
    "same", "valid", "channels_last", "float32", "float16", "bfloat16", "float64", "uint8",
    "int32", "int64", "mixed_float16", "mixed_bfloat16",
    "fan_in", "fan_out", "fan_avg", "uniform", "normal", "truncated_normal", "untruncated_normal",
    "sum_over_batch_size", "sum", "none", "mean", "auto",
    "horizontal", "vertical", "horizontal_and_vertical", "reflect", "wrap", "constant", "nearest",
    "bilinear",
    # losses and metrics by name in compile()
    "sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy", "mse",
    "mean_squared_error", "accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy",
    "binary_accuracy", "sparse_top_k_categorical_accuracy", "top_k_categorical_accuracy",
    "kl_divergence", "crossentropy",
    # optimizers by name
    "sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adamax", "nadam",
})
#: keys whose string value is a name (of a layer, tensor, optimizer, loss or metric)
NAMING_KEYS = frozenset({"name", "keras_history", "input_layers", "output_layers"})
_NAME = re.compile(r"[A-Za-z0-9_.\-/]{1,128}")


class PolicyError(ValueError):
    """A submitted model or array outside the allow-list or a budget (message in Russian)."""


# --------------------------------------------------------------------------- configuration walk
def _check_value(value: Any, key: str | None, depth: int) -> None:
    if depth > 64:
        raise PolicyError("слишком глубокая вложенность конфигурации модели")
    if isinstance(value, dict):
        _check_object(value, depth + 1) if "class_name" in value else _check_mapping(value, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_value(item, key, depth + 1)
    elif isinstance(value, str):
        if key == "activation":
            if value not in ACTIVATIONS:
                raise PolicyError(f"функция активации {value[:60]!r} не из допустимых "
                                  f"({', '.join(sorted(ACTIVATIONS))})")
        elif key in NAMING_KEYS:
            if not _NAME.fullmatch(value):
                raise PolicyError(f"недопустимое имя {value[:60]!r} в конфигурации модели")
        elif value not in WORDS and value not in ACTIVATIONS:
            raise PolicyError(f"недопустимое значение {value[:60]!r} параметра {key!r} в конфигурации модели")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise PolicyError(f"нечисловое значение параметра {key!r} в конфигурации модели")
    elif value is not None and not isinstance(value, bool | int):
        raise PolicyError(f"недопустимый тип значения параметра {key!r}")


def _check_mapping(node: dict, depth: int) -> None:
    for key, value in node.items():
        if key not in KEYS:
            raise PolicyError(f"недопустимый параметр {str(key)[:60]!r} в конфигурации модели")
        _check_value(value, key, depth)


def _check_object(node: dict, depth: int) -> None:
    module, name = node.get("module"), node.get("class_name")
    if (module, name) not in OBJECTS:
        if name in ("Lambda", "function", "__lambda__") or node.get("registered_name"):
            raise PolicyError("модель содержит пользовательский код или ссылку на функцию "
                              f"({str(name)[:60]})")
        raise PolicyError(f"объект {str(module)[:60]}.{str(name)[:60]} не из допустимых для модели")
    registered = node.get("registered_name")
    if registered not in (None, name):
        raise PolicyError(f"объект {name} зарегистрирован под чужим именем {str(registered)[:60]!r}")
    if name == "__keras_tensor__" and module is not None:
        raise PolicyError("повреждённая конфигурация модели")
    _check_mapping({k: v for k, v in node.items() if k not in ("module", "class_name", "registered_name")},
                   depth)


def check_config(config: Any) -> None:
    """Refuse a model configuration (``config.json`` as parsed) with anything not allow-listed."""
    if not isinstance(config, dict) or (config.get("module"), config.get("class_name")) not in _MODELS:
        raise PolicyError("в файле модели не модель Sequential или Functional")
    _check_object(config, 0)


# ------------------------------------------------------------------------------ shape inference
Shape = tuple[int, ...]  # one sample's shape (no batch dimension)


@dataclass
class Summary:
    """What the configuration declares: parameters, the largest tensor, layer count."""

    params: int = 0
    largest_tensor: int = 0
    layers: int = 0
    outputs: list[Shape] = field(default_factory=list)


def _ints(value: Any, count: int, what: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value] * count
    if not (isinstance(value, list | tuple) and len(value) == count
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_DIM for v in value)):
        raise PolicyError(f"значение {what} {str(value)[:60]} вне допустимого (целые от 1 до {MAX_DIM})")
    return tuple(value)


def _sample_shape(batch_shape: Any) -> Shape:
    if not isinstance(batch_shape, list | tuple) or not 1 <= len(batch_shape) <= 5:
        raise PolicyError("недопустимая форма входа модели")
    dims = list(batch_shape[1:])
    if not all(isinstance(d, int) and not isinstance(d, bool) and 0 < d <= MAX_DIM for d in dims):
        raise PolicyError(f"форма входа модели должна быть задана числами: {str(batch_shape)[:60]}")
    return tuple(dims)


def _spatial(size: int, window: int, stride: int, padding: Any, dilation: int = 1) -> int:
    if padding == "same":
        return -(-size // stride)
    if padding == "valid":
        span = dilation * (window - 1) + 1
        if size < span:
            raise PolicyError(f"окно {window} больше входа {size}")
        return (size - span) // stride + 1
    raise PolicyError(f"недопустимый padding {str(padding)[:20]!r}")


def _channels_last(cfg: dict) -> None:
    if cfg.get("data_format") not in (None, "channels_last"):
        raise PolicyError("поддерживается только data_format='channels_last'")


def _image(shape: Shape, kind: str) -> Shape:
    if len(shape) != 3:
        raise PolicyError(f"слой {kind} ожидает изображения (h, w, c), получена форма {shape}")
    return shape


def _layer(kind: str, cfg: dict, inputs: list[Shape], summary: Summary, depth: int) -> Shape:
    """The output shape of one allow-listed layer; adds its parameters to ``summary``."""
    if kind in ("Sequential", "Functional", "Model"):
        if len(inputs) != 1:
            raise PolicyError("вложенная модель с несколькими входами не поддерживается")
        outs = _model(kind, cfg, inputs[0], summary, depth + 1)
        if len(outs) != 1:
            raise PolicyError("вложенная модель с несколькими выходами не поддерживается")
        return outs[0]
    if kind in ("Add", "Average", "Maximum"):
        if len(inputs) < 2 or any(s != inputs[0] for s in inputs):
            raise PolicyError(f"слой {kind}: формы входов не совпадают")
        return inputs[0]
    if kind == "Concatenate":
        axis = cfg.get("axis", -1)
        if len(inputs) < 2 or not isinstance(axis, int) or axis not in (-1, len(inputs[0])):
            raise PolicyError("слой Concatenate: поддерживается объединение по последней оси")
        if any(s[:-1] != inputs[0][:-1] for s in inputs):
            raise PolicyError("слой Concatenate: формы входов не совпадают")
        return (*inputs[0][:-1], sum(s[-1] for s in inputs))
    if len(inputs) != 1:
        raise PolicyError(f"слой {kind} ожидает один вход")
    shape = inputs[0]
    if kind == "Conv2D":
        _channels_last(cfg)
        h, w, c = _image(shape, kind)
        filters = _ints(cfg.get("filters"), 1, "filters")[0]
        kh, kw = _ints(cfg.get("kernel_size"), 2, "kernel_size")
        sh, sw = _ints(cfg.get("strides", 1), 2, "strides")
        dh, dw = _ints(cfg.get("dilation_rate", 1), 2, "dilation_rate")
        groups = _ints(cfg.get("groups", 1), 1, "groups")[0]
        if c % groups or filters % groups:
            raise PolicyError("слой Conv2D: groups не делит число каналов")
        summary.params += kh * kw * (c // groups) * filters + (filters if cfg.get("use_bias", True) else 0)
        return (_spatial(h, kh, sh, cfg.get("padding", "valid"), dh),
                _spatial(w, kw, sw, cfg.get("padding", "valid"), dw), filters)
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        _channels_last(cfg)
        h, w, c = _image(shape, kind)
        ph, pw = _ints(cfg.get("pool_size", 2), 2, "pool_size")
        sh, sw = _ints(cfg.get("strides") or [ph, pw], 2, "strides")
        padding = cfg.get("padding", "valid")
        return (_spatial(h, ph, sh, padding), _spatial(w, pw, sw, padding), c)
    if kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        _channels_last(cfg)
        c = _image(shape, kind)[2]
        return (1, 1, c) if cfg.get("keepdims") else (c,)
    if kind == "ZeroPadding2D":
        _channels_last(cfg)
        h, w, c = _image(shape, kind)
        pad = cfg.get("padding", 1)
        if isinstance(pad, int):
            pad = [[pad, pad], [pad, pad]]
        if not (isinstance(pad, list | tuple) and len(pad) == 2):
            raise PolicyError("недопустимый padding слоя ZeroPadding2D")
        rows, cols = (_ints(p, 2, "padding") if isinstance(p, list | tuple) else _ints(p, 1, "padding") * 2
                      for p in pad)
        return (h + sum(rows), w + sum(cols), c)
    if kind == "BatchNormalization":
        axis = cfg.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        if axis not in (-1, len(shape)):
            raise PolicyError("слой BatchNormalization: поддерживается нормализация по последней оси")
        center, scale = bool(cfg.get("center", True)), bool(cfg.get("scale", True))
        summary.params += shape[-1] * (2 + int(center) + int(scale))  # + moving mean and variance
        return shape
    if kind == "Dense":
        units = _ints(cfg.get("units"), 1, "units")[0]
        if not shape:
            raise PolicyError("слой Dense ожидает вход с признаками")
        summary.params += shape[-1] * units + (units if cfg.get("use_bias", True) else 0)
        return (*shape[:-1], units)
    if kind == "Flatten":
        return (math.prod(shape),)
    if kind == "Reshape":
        target = cfg.get("target_shape")
        if not (isinstance(target, list | tuple) and 1 <= len(target) <= 4
                and all(isinstance(d, int) and not isinstance(d, bool) and (d == -1 or 0 < d <= MAX_DIM)
                        for d in target) and list(target).count(-1) <= 1):
            raise PolicyError("недопустимая форма слоя Reshape")
        known = math.prod(d for d in target if d != -1)
        total = math.prod(shape)
        if -1 in target:
            if total % known:
                raise PolicyError("слой Reshape: размеры не сходятся")
            target = [total // known if d == -1 else d for d in target]
        if math.prod(target) != total:
            raise PolicyError("слой Reshape: размеры не сходятся")
        return tuple(target)
    if kind in ("Dropout", "SpatialDropout2D", "Activation", "ReLU", "Softmax", "LeakyReLU", "ELU",
                "Rescaling", "Identity", "GaussianNoise", "RandomFlip", "RandomRotation",
                "RandomTranslation", "RandomZoom", "RandomContrast", "RandomBrightness"):
        return shape
    raise PolicyError(f"слой {kind} не из допустимых")


def _bound(shape: Shape, summary: Summary) -> None:
    size = math.prod(shape)
    if any(d > MAX_DIM for d in shape) or size > MAX_TENSOR:
        raise PolicyError(f"тензор формы {shape} больше допустимого ({MAX_TENSOR} элементов на пример)")
    summary.largest_tensor = max(summary.largest_tensor, size)
    if summary.params > MAX_PARAMS:
        raise PolicyError(f"в модели больше {MAX_PARAMS} параметров (объявлено не меньше {summary.params})")


def _input_shape(cfg: dict) -> Shape:
    for key in ("batch_shape", "batch_input_shape"):
        if cfg.get(key) is not None:
            return _sample_shape(cfg[key])
    if cfg.get("shape") is not None:
        return _sample_shape([None, *cfg["shape"]])
    raise PolicyError("у входа модели нет формы")


def _model(kind: str, cfg: dict, given: Shape | None, summary: Summary, depth: int,
           build_config: Any = None) -> list[Shape]:
    if depth > MAX_DEPTH:
        raise PolicyError("слишком глубоко вложенные модели")
    layers = cfg.get("layers")
    if not isinstance(layers, list):
        raise PolicyError("повреждённая конфигурация модели")
    summary.layers += len(layers)
    if summary.layers > MAX_LAYERS:
        raise PolicyError(f"в модели больше {MAX_LAYERS} слоёв")
    if kind == "Sequential":
        shape = given
        for layer in layers:
            name, lcfg = layer.get("class_name"), layer.get("config")
            if not isinstance(lcfg, dict):
                raise PolicyError("повреждённая конфигурация слоя")
            if name == "InputLayer":
                declared: Any = _input_shape(lcfg)
                if shape is not None and declared != shape:
                    raise PolicyError(f"вход {declared} вложенной модели не совпадает с {shape}")
                shape = declared
                continue
            if shape is None:
                declared = cfg.get("build_input_shape")
                if declared is None and isinstance(build_config, dict):
                    declared = build_config.get("input_shape")
                if declared is None:
                    raise PolicyError("модель не построена: у неё нет формы входа")
                shape = _sample_shape(declared)
            _bound(shape, summary)
            shape = _layer(name, lcfg, [shape], summary, depth)
            _bound(shape, summary)
        if shape is None:
            raise PolicyError("модель не построена: у неё нет формы входа")
        return [shape]
    # Functional: layers in topological order, each with its inbound nodes
    outputs: dict[tuple[str, int], Shape] = {}
    names: set[str] = set()
    for layer in layers:
        name, lcfg, kind_ = layer.get("name"), layer.get("config"), layer.get("class_name")
        if not isinstance(name, str) or name in names or not isinstance(lcfg, dict):
            raise PolicyError("повреждённая конфигурация слоя")
        names.add(name)
        nodes = layer.get("inbound_nodes") or []
        if kind_ == "InputLayer":
            shape = _input_shape(lcfg)
            if given is not None and len([x for x in layers if x.get("class_name") == "InputLayer"]) == 1:
                if shape != given:
                    raise PolicyError(f"вход {shape} вложенной модели не совпадает с {given}")
            _bound(shape, summary)
            outputs[(name, 0)] = shape
            continue
        if not isinstance(nodes, list) or not nodes or len(nodes) > 64:
            raise PolicyError(f"слой {name} ни к чему не подключён")
        for index, node in enumerate(nodes):
            inputs = [outputs.get(ref) for ref in _references(node)]
            if not inputs or any(s is None for s in inputs):
                raise PolicyError(f"слой {name}: вход не найден среди предыдущих слоёв")
            outputs[(name, index)] = _layer(kind_, lcfg, inputs, summary, depth)  # type: ignore[arg-type]
            _bound(outputs[(name, index)], summary)
    result = []
    for ref in _refs_list(cfg.get("output_layers")):
        if ref not in outputs:
            raise PolicyError("выход модели не найден среди её слоёв")
        result.append(outputs[ref])
    return result


def _refs_list(value: Any) -> list[tuple[str, int]]:
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise PolicyError("повреждённая конфигурация модели")
    out = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)
                and isinstance(item[1], int) and item[2] == 0):
            raise PolicyError("повреждённая конфигурация модели")
        out.append((item[0], item[1]))
    return out


def _references(node: Any) -> list[tuple[str, int]]:
    """The (layer, node index) of every tensor a functional node reads."""
    found: list[tuple[str, int]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("class_name") == "__keras_tensor__":
                history = (value.get("config") or {}).get("keras_history")
                found.extend(_refs_list([history]))
                return
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    kwargs = node.get("kwargs") if isinstance(node, dict) else None
    if not isinstance(node, dict) or set(node) - {"args", "kwargs"} or not isinstance(kwargs, dict | None) \
            or any(k not in ("training", "mask") or v not in (None, True, False)
                   for k, v in (kwargs or {}).items()):
        raise PolicyError("повреждённая конфигурация слоя")
    walk(node.get("args"))
    return found


def infer(config: dict) -> Summary:
    """Shapes and parameter count of an allow-listed model configuration, from the configuration
    alone (refuses one past the bounds before anything is built)."""
    summary = Summary()
    kind = config.get("class_name")
    inner = config.get("config")
    if not isinstance(inner, dict):
        raise PolicyError("повреждённая конфигурация модели")
    summary.outputs = _model("Sequential" if kind == "Sequential" else "Functional", inner, None, summary, 0,
                             config.get("build_config"))
    return summary


# ---------------------------------------------------------------------------------- archives
def _h5_declared_bytes(handle: Any) -> int:
    import h5py

    total = 0

    def visit(_: str, obj: Any) -> None:
        nonlocal total
        if isinstance(obj, h5py.Dataset):
            if obj.dtype.kind not in "biuf":
                raise PolicyError("веса модели содержат не числа")
            total += math.prod(obj.shape) * obj.dtype.itemsize
            if total > MAX_WEIGHT_BYTES:
                raise PolicyError(f"веса модели объявляют больше {MAX_WEIGHT_BYTES} байт")

    handle.visititems(visit)
    return total


def check_keras_archive(path: Path) -> Summary:
    """Accept a ``.keras`` file only if its members, configuration and declared sizes are within
    the policy; returns what the configuration declares. Nothing is built or called."""
    import h5py

    try:
        with zipfile.ZipFile(path) as zf:
            infos = {i.filename: i for i in zf.infolist()}
            if set(infos) - ARCHIVE_MEMBERS or "config.json" not in infos or "model.weights.h5" not in infos:
                raise PolicyError("в архиве модели посторонние файлы: "
                                  + ", ".join(sorted(set(infos) - ARCHIVE_MEMBERS))[:200])
            if infos["config.json"].file_size > MAX_CONFIG_BYTES \
                    or infos.get("metadata.json", infos["config.json"]).file_size > MAX_CONFIG_BYTES:
                raise PolicyError("конфигурация модели слишком большая")
            if infos["model.weights.h5"].file_size > MAX_WEIGHT_BYTES:
                raise PolicyError("файл весов модели слишком большой")
            config = json.loads(zf.read("config.json").decode("utf-8"))
            check_config(config)
            summary = infer(config)
            with zf.open("model.weights.h5") as raw, h5py.File(raw, "r") as weights:
                _h5_declared_bytes(weights)
    except PolicyError:
        raise
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, RuntimeError, TypeError) as error:
        raise PolicyError(f"файл модели повреждён ({type(error).__name__})") from error
    return summary


def npy_declared_bytes(handle: Any) -> int:
    """The bytes the ``.npy`` header of ``handle`` declares (read from the header only; the
    position is restored). Raises :class:`PolicyError` for a header numpy would not load."""
    import numpy as np

    start = handle.tell()
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise PolicyError("неизвестный формат массива")
    except PolicyError:
        raise
    except Exception as error:
        raise PolicyError(f"заголовок массива не читается ({type(error).__name__})") from error
    finally:
        handle.seek(start)
    if dtype.hasobject:
        raise PolicyError("массив объектов Python не принимается")
    return math.prod(shape) * dtype.itemsize


def array_budget(sizes: Iterable[int], limit: int = MAX_EXPORT_ARRAY_BYTES) -> None:
    """Refuse a submission whose arrays together declare more than ``limit`` bytes."""
    total = sum(sizes)
    if total > limit:
        raise PolicyError(f"массивы сдачи вместе занимают {total} байт (по заголовкам), "
                          f"допустимо не больше {limit}")
