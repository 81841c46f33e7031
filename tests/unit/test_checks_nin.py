"""Checks of the NiN lab (convlab.checks.nin) on tiny synthetic models."""

from __future__ import annotations

import math
import re

import keras
import numpy as np
import pytest
from keras import layers
from matplotlib.figure import Figure

from convlab import checks
from convlab.checks import CheckFailed
from convlab.checks import nin as nin_checks


def exactly(text: str) -> str:
    return re.escape(text)


def block(channels, kernel=3, strides=1, padding="same", num_1x1=2, batch_norm=True):
    """The lab's reference nin_block (BatchNormalization after every convolution)."""
    stack = [layers.Conv2D(channels, kernel, strides=strides, padding=padding, activation="relu")]
    if batch_norm:
        stack.append(layers.BatchNormalization())
    for _ in range(num_1x1):
        stack.append(layers.Conv2D(channels, 1, activation="relu"))
        if batch_norm:
            stack.append(layers.BatchNormalization())
    return keras.Sequential(stack)


def network(head=3, num_1x1=2, dense=False, softmax=False, logits=True, optimizer=None):
    """A tiny NiN on 8x8x3 images with ``head`` output channels, compiled."""
    stack = [keras.Input((8, 8, 3)), block(4, num_1x1=num_1x1), layers.MaxPooling2D(3, 2, padding="same"),
             block(6, num_1x1=num_1x1), layers.MaxPooling2D(3, 2, padding="same"), layers.Dropout(0.3)]
    if dense:
        stack += [layers.Flatten(), layers.Dense(head)]
    else:
        stack += [block(head, num_1x1=num_1x1), layers.GlobalAveragePooling2D()]
    if softmax:
        stack.append(layers.Softmax())
    model = keras.Sequential(stack)
    model.compile(optimizer=optimizer or keras.optimizers.AdamW(1e-3, weight_decay=1e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=logits), metrics=["accuracy"])
    return model


# ------------------------------------------------------------------------------------ blocks


def nin_block(num_channels, kernel_size, strides, padding, num_1x1=2):
    """The notebook's reference solution."""
    return block(num_channels, kernel_size, strides, padding, num_1x1)


def through_export(name, fn):
    """What the two-phase route hands the check: the exporter's record of ``fn`` on the probes,
    encoded as the exporter writes it and decoded and restored as the scorer does."""
    import json

    from convlab.grading import exporter, probes, score

    node = json.loads(json.dumps(exporter.encode(probes.record(name, fn), "/nonexistent")))
    return probes.restore(name, score.decode(node, None, {}))


def both_routes(check, name, fn, *args):
    """The check's message (None when it passes) on the function itself and on its record."""
    messages = []
    for value in (fn, through_export(name, fn)):
        try:
            check(value, *args)
        except CheckFailed as error:
            messages.append(str(error))
        else:
            messages.append(None)
    assert messages[0] == messages[1]
    return messages[0]


def relu_layers_block(num_channels, kernel_size, strides, padding, num_1x1=2):
    """Right but different: ReLU as separate layers, BatchNorm before them, tf-style layers."""
    stack = [layers.Conv2D(num_channels, (kernel_size, kernel_size), strides=(strides, strides),
                           padding=padding), layers.BatchNormalization(), layers.ReLU()]
    for _ in range(num_1x1):
        stack += [layers.Conv2D(num_channels, 1), layers.Activation("relu")]
    return keras.Sequential(stack)


def plain_block(num_channels, kernel_size, strides, padding, num_1x1=2):
    """Right but different: no BatchNormalization, a list comprehension."""
    return keras.Sequential(
        [layers.Conv2D(num_channels, kernel_size, strides=strides, padding=padding, activation="relu")]
        + [layers.Conv2D(num_channels, 1, activation="relu") for _ in range(num_1x1)])


@pytest.mark.parametrize("fn", [nin_block, relu_layers_block, plain_block])
def test_nin_block_probed_right_forms_pass(fn):
    assert both_routes(checks.nin_block_probed, "nin_block", fn) is None


@pytest.mark.parametrize(("fn", "message"), [
    (lambda num_channels, kernel_size, strides, padding, num_1x1=2:
     block(num_channels, kernel_size, 1, padding, num_1x1),
     "nin_block(num_channels=6, kernel_size=5, strides=2, padding='valid', num_1x1=1) на входе (16, 16, 3): "
     "ожидается: слои «Conv2D 6 5x5 valid stride 2 relu, Conv2D 6 1x1 relu»; получено: "
     "«Conv2D 6 5x5 valid relu, Conv2D 6 1x1 relu»."),
    (lambda num_channels, kernel_size, strides, padding, num_1x1=2:
     block(num_channels, kernel_size, strides, "same", num_1x1),
     "padding='valid', num_1x1=1) на входе (16, 16, 3): ожидается: слои «Conv2D 6 5x5 valid stride 2 relu"),
    (lambda num_channels, kernel_size, strides, padding, num_1x1=2:
     block(num_channels, kernel_size, strides, padding, 2),
     "num_1x1=1) на входе (16, 16, 3): ожидается: слои «Conv2D 6 5x5 valid stride 2 relu, "
     "Conv2D 6 1x1 relu»; "
     "получено: «Conv2D 6 5x5 valid stride 2 relu, Conv2D 6 1x1 relu, Conv2D 6 1x1 relu»."),
    (lambda num_channels, kernel_size, strides, padding, num_1x1=2:
     block(num_channels, kernel_size, strides, padding, 0),
     "nin_block(num_channels=8, kernel_size=3, strides=1, padding='same', num_1x1=2) на входе (16, 16, 3): "
     "ожидается: слои «Conv2D 8 3x3 same relu, Conv2D 8 1x1 relu, Conv2D 8 1x1 relu»; получено: "
     "«Conv2D 8 3x3 same relu»."),
    (lambda num_channels, kernel_size, strides, padding: block(num_channels, kernel_size, strides, padding),
     "nin_block(num_channels=8, kernel_size=3, strides=1, padding='same', num_1x1=2) на входе (16, 16, 3): "
     "ожидается: блок NiN (tf.keras.Sequential); получено: ошибка TypeError:"),
])
def test_nin_block_probed_wrong_forms_fail(fn, message):
    found = both_routes(checks.nin_block_probed, "nin_block", fn)
    assert found is not None and message in found, found


def test_block_probes_are_stratified():
    """Every argument and kind the issue asks for is exercised by the grader's probes."""
    from convlab.grading import probes

    kinds = {(c["kernel_size"] > 1, c["padding"]) for c in probes.BLOCKS}
    assert {(True, "same"), (True, "valid")} <= kinds
    assert any(c["strides"] > 1 for c in probes.BLOCKS)
    assert {c.get("num_1x1") for c in probes.BLOCKS} >= {1, 3, None}
    assert {n["bn"] for n in probes.NETWORKS} == {True, False}
    assert any("dense" in n["head"] for n in probes.NETWORKS)
    strided_or_valid = [b for n in probes.NETWORKS for b in n["blocks"]
                        if b[2] > 1 or (b[3] == "valid" and b[1] > 1)]
    assert len(strided_or_valid) >= 3


def test_probe_outcomes_are_the_same_on_every_grading():
    """The probes are the grader's and fixed: three gradings record the same answers (and so
    give the same scores), whoever wrote the notebook."""
    from convlab.grading import probes

    functions = {"nin_block": nin_block, "cosine_lr": cosine, "count_params": count_params,
                 "count_mults": count_mults, "count_memory": count_memory}
    for name, fn in functions.items():
        first = probes.record(name, fn)
        assert all(probes.record(name, fn) == first for _ in range(2)), name
        assert all("ok" in outcome for outcome in first["results"]), (name, first)


def test_exporter_snapshot_and_scorer_environment_carry_the_probes(tmp_path, monkeypatch):
    """The two-phase hooks: the exporter writes a probed function as the manifest kind
    ``probed``; the scorer gives the test a Recorded stand-in with the same outcomes."""
    from convlab.grading import exporter, probes, score

    state = {"needed": {"q8_counting": ["count_mults", "BATCH_SIZE"]}, "dir": str(tmp_path),
             "snapshots": {}, "checked": [], "memo": {}}
    monkeypatch.setattr(exporter, "_state", state)
    exporter.snapshot("q8_counting", {"count_mults": count_mults, "BATCH_SIZE": 128})
    manifest = (tmp_path / exporter.MANIFEST).read_text()
    assert '"kind": "probed"' in manifest
    export = score.load_snapshots(tmp_path)
    env, problems = score._environment(export, "q8_counting", ["count_mults", "BATCH_SIZE"], "-")
    export.close()
    assert not problems and env["BATCH_SIZE"] == 128
    assert isinstance(env["count_mults"], probes.Recorded)
    assert probes.outcomes("mults", env["count_mults"]) == probes.outcomes("mults", count_mults)
    checks.counter_probed(env["count_mults"], "mults")


def test_recorded_answers_nothing_else_and_refuses_other_probes():
    from convlab.grading import probes

    recorded = through_export("cosine_lr", cosine)
    with pytest.raises(TypeError, match="только на пробах оценщика"):
        recorded(0, 1e-3, 0, 10)
    forged = probes.Recorded("cosine_lr", "schedule", "0" * 16, recorded.results)
    with pytest.raises(AssertionError, match="записаны не для проб оценщика"):
        checks.cosine_probed(forged)
    with pytest.raises(ValueError):
        probes.restore("cosine_lr", {"kind": "schedule", "results": [{"ok": 1, "error": "x"}]})


# ----------------------------------------------------------------------------------- network


def test_nin_network_passes_for_reference():
    checks.nin_network(network(), classes=3, num_1x1=2)
    checks.nin_network(network(num_1x1=1), classes=3, num_1x1=(1, 3), name="nin_ablation")


@pytest.mark.parametrize(("model", "message"), [
    (lambda: network(head=6),
     "nin: число фильтров последнего блока: ожидается: 3 (по числу классов); получено: 6."),
    (lambda: network(dense=True),
     "nin: полносвязные слои: ожидается: их нет (выход — глобальный average pooling); получено: «Flatten»"),
    (lambda: network(num_1x1=0),
     "nin, блок №1: число слоёв 1×1 после свёртки 3x3: ожидается: 2; получено: 0."),
    (lambda: network(num_1x1=1),
     "nin, блок №1: число слоёв 1×1 после свёртки 3x3: ожидается: 2; получено: 1."),
], ids=["20_filter_style_head", "dense_head", "no_1x1", "one_1x1"])
def test_nin_network_wrong_forms_fail(model, message):
    with pytest.raises(CheckFailed, match=exactly(message)):
        checks.nin_network(model(), classes=3, num_1x1=2)


def test_nin_network_without_pooling_between_blocks_fails():
    model = keras.Sequential([keras.Input((8, 8, 3)), block(4), block(6), layers.Dropout(0.3), block(3),
                              layers.GlobalAveragePooling2D()])
    with pytest.raises(CheckFailed, match=exactly("nin: слой субдискретизации между блоками №1 и №2")):
        checks.nin_network(model, classes=3)


@pytest.mark.parametrize(("softmax", "logits"), [(False, True), (True, False)])
def test_outputs_match_loss_consistent_passes(softmax, logits):
    checks.outputs_match_loss(network(softmax=softmax, logits=logits))


@pytest.mark.parametrize(("softmax", "logits", "expected"), [
    (False, False, "nin: функция потерь: ожидается: from_logits=True (выход сети — логиты, без softmax); "
                   "получено: from_logits=False."),
    (True, True, "nin: функция потерь: ожидается: from_logits=False (выход сети — softmax, вероятности); "
                 "получено: from_logits=True."),
])
def test_outputs_match_loss_inconsistent_fails(softmax, logits, expected):
    with pytest.raises(CheckFailed, match=exactly(expected)):
        checks.outputs_match_loss(network(softmax=softmax, logits=logits))


# ---------------------------------------------------------------------------------- training


def test_adamw_weight_decay_passes():
    checks.adamw_weight_decay(network())


@pytest.mark.parametrize(("optimizer", "expected"), [
    (lambda: keras.optimizers.Adam(1e-3), "nin: оптимизатор: ожидается: AdamW; получено: Adam."),
    (lambda: keras.optimizers.AdamW(1e-3, weight_decay=0.0),
     "nin: weight_decay оптимизатора AdamW: ожидается: больше 0; получено: 0."),
])
def test_adamw_weight_decay_fails(optimizer, expected):
    with pytest.raises(CheckFailed, match=exactly(expected)):
        checks.adamw_weight_decay(network(optimizer=optimizer()))


def cosine(t, lr_0, lr_min, T):
    return lr_min + (lr_0 - lr_min) * (1 + math.cos(math.pi * t / T)) / 2


def numpy_cosine(epoch, lr_0, lr_min, T):
    """Right but different: numpy, a float32 result, the other form of the formula."""
    return np.float32(lr_min + 0.5 * (lr_0 - lr_min) * (1 + np.cos(epoch / T * np.pi)))


@pytest.mark.parametrize("fn", [cosine, numpy_cosine])
def test_cosine_probed_right_forms_pass(fn):
    assert both_routes(checks.cosine_probed, "cosine_lr", fn) is None


@pytest.mark.parametrize(("fn", "message"), [
    (lambda t, lr_0, lr_min, T: lr_0 * (1 + math.cos(math.pi * t / T)) / 1.8,
     f"cosine_lr(epoch=0, lr_0=0.01, lr_min=0, T=10): ожидается: {cosine(0, 1e-2, 0, 10):.6g}"),
    (lambda t, lr_0, lr_min, T: cosine(t, 2e-3, 1e-5, 8),  # the notebook's globals
     "cosine_lr(epoch=0, lr_0=0.01, lr_min=0, T=10): ожидается: 0.01; получено: 0.002."),
    (lambda t, lr_0, lr_min, T: cosine(t + 1, lr_0, lr_min, T),
     "cosine_lr(epoch=0, lr_0=0.01, lr_min=0, T=10): ожидается: 0.01"),
    (lambda t, lr_0, lr_min, T: cosine(t, lr_0, lr_min, T - 1) if T > 1 else lr_0,
     "cosine_lr(epoch=10, lr_0=0.01, lr_min=0, T=10): ожидается: 0; получено: ошибка"),
])
def test_cosine_probed_wrong_forms_fail(fn, message):
    found = both_routes(checks.cosine_probed, "cosine_lr", fn)
    assert found is not None and found.startswith(message[:40]), found


def fit_with(schedule, epochs=3):
    keras.utils.set_random_seed(0)
    model = network()
    x = np.random.default_rng(0).random((8, 8, 8, 3), dtype=np.float32)
    callbacks = [keras.callbacks.LearningRateScheduler(schedule)] if schedule else []
    model.fit(x, np.arange(8) % 3, batch_size=8, epochs=epochs, verbose=0, callbacks=callbacks)
    return model


def test_schedule_attached_passes_and_detached_fails():
    model = fit_with(lambda epoch: cosine(epoch, 1e-3, 1e-5, 3))
    checks.schedule_attached(model, 1e-3, 1e-5, 3)
    with pytest.raises(CheckFailed, match=exactly("nin: скорость обучения в эпохе 2: ожидается")):
        checks.schedule_attached(fit_with(lambda epoch: 1e-3), 1e-3, 1e-5, 3)
    with pytest.raises(CheckFailed, match=exactly(
            "nin: скорость обучения в истории обучения: ожидается: значения learning_rate по эпохам")):
        checks.schedule_attached(fit_with(None), 1e-3, 1e-5, 3)


class ForgedHistory:
    """What a hostile notebook can set as ``model.history`` without training."""

    def __init__(self, epochs, rates):
        self.epoch = list(range(epochs))
        self.history = {"learning_rate": rates, "accuracy": [0.9] * epochs}


def test_forged_history_on_untrained_model_is_not_schedule_evidence(fake_datasets):
    model = network()
    model.history = ForgedHistory(3, [cosine(e, 1e-3, 1e-5, 3) for e in range(3)])
    with pytest.raises(CheckFailed, match=exactly(
            "nin: скорость обучения в оптимизаторе после обучения: ожидается: 0.0002575 (расписание "
            "последней эпохи); получено: 0.001.")):
        checks.schedule_attached(model, 1e-3, 1e-5, 3)
    with pytest.raises(CheckFailed,
                       match=exactly("nin: шагов оптимизатора (optimizer.iterations): ожидается")):
        checks.schedule_attached(model, 1e-3, 1e-5, 3, 8)


def test_schedule_attached_fewer_epochs_than_asked_fails():
    model = fit_with(lambda epoch: cosine(epoch, 1e-3, 1e-5, 3), epochs=2)
    with pytest.raises(CheckFailed, match=exactly(
            "nin: эпох со скоростью обучения в истории: ожидается: 3; получено: 2.")):
        checks.schedule_attached(model, 1e-3, 1e-5, 3)


def with_steps(make_mapping_model, steps, shift=0):
    """The synthetic mapping model (accuracy 0.8, or 0.2 with shift 1) after ``steps`` optimizer steps."""
    model = make_mapping_model((6, 6, 3), shift)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(steps)
    return model


def test_a_step_counter_set_on_an_unbuilt_optimizer_is_not_training(fake_datasets, make_mapping_model):
    from convlab import public

    model = make_mapping_model((6, 6, 3))
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="sparse_categorical_crossentropy")
    model.optimizer.iterations.assign(6)
    with pytest.raises(CheckFailed, match=exactly("получено: 0 (модель не обучалась).")):
        checks.nin_trained_as_prescribed(model, 2, 4)
    with pytest.raises(CheckFailed, match="получено: 0 "):
        public.trained_steps(model, 2, 4, 12, "nin")


def test_trained_as_prescribed(fake_datasets, make_mapping_model):
    # synthetic CIFAR: 12 training images, batch 4 -> 3 steps per epoch
    checks.nin_trained_as_prescribed(with_steps(make_mapping_model, 6), 2, 4)
    with pytest.raises(CheckFailed, match=exactly(
            "nin: шагов оптимизатора (optimizer.iterations): ожидается: 9 = 3 эпох × 3 пакетов по 4 из "
            "12 обучающих изображений; получено: 6.")):
        checks.nin_trained_as_prescribed(with_steps(make_mapping_model, 6), 3, 4)
    with pytest.raises(CheckFailed, match=exactly("получено: 0 (модель не обучалась).")):
        checks.nin_trained_as_prescribed(with_steps(make_mapping_model, 0), 2, 4)
    with pytest.raises(CheckFailed, match=exactly(
            "nin: точность на тестовой выборке: ожидается: не менее 0.30 у обученной сети (случайные веса "
            "дают около 0.10); получено: 0.2000.")):
        checks.nin_trained_as_prescribed(with_steps(make_mapping_model, 6, shift=1), 2, 4)


def test_public_trained_steps():
    from convlab import public

    model = fit_with(None, epochs=2)  # 8 images, batch 8: one step per epoch
    public.trained_steps(model, 2, 8, 8, "nin")
    with pytest.raises(CheckFailed, match=exactly("nin: шагов оптимизатора (обучение через fit): ожидается: "
                                                  "3 = 3 эпох × 1 пакетов; получено: 2.")):
        public.trained_steps(model, 3, 8, 8, "nin")
    model = network()
    model.history = ForgedHistory(2, [1e-3, 1e-3])
    with pytest.raises(CheckFailed, match="получено: 0 \\(модель не обучалась"):
        public.trained_steps(model, 2, 8, 8, "nin")


@pytest.mark.parametrize(("accuracy", "passed"), [(0.80, 6), (0.76, 6), (0.759, 5), (0.70, 3), (0.60, 0),
                                                   (0.20, 0)])
def test_accuracy_steps_rise_linearly_from_floor_to_threshold(monkeypatch, accuracy, passed):
    """Six equal steps from the calibrated floor 0.59 to the threshold 0.76."""
    from convlab.checks import performance

    monkeypatch.setattr(performance, "test_accuracy", lambda model, dataset: accuracy)
    floor, threshold = nin_checks.accuracy_floor("lab6_nin", "nin"), checks.threshold("lab6_nin", "nin")
    assert (floor, threshold) == (0.59, 0.76)
    model, count = network(), 0
    for step in range(1, 7):
        try:
            checks.nin_accuracy_step(model, step, 6)
        except CheckFailed as error:
            level = floor + step * (threshold - floor) / 6
            assert f"ожидается: не менее {level:.3f}; получено: {accuracy:.4f}" in str(error)
        else:
            count += 1
    assert count == passed


# -------------------------------------------------------------------------- confusion matrix


def test_confusion_matrix_of(fake_datasets, make_mapping_model):
    model = make_mapping_model((6, 6, 3))
    y = fake_datasets.y_test
    cm = np.zeros((3, 3), dtype=np.int64)
    np.add.at(cm, (y, fake_datasets.oracle), 1)
    checks.confusion_matrix_of(cm, model, "cifar10")
    with pytest.raises(CheckFailed, match=exactly(
            "confusion: строки и столбцы: ожидается: строки — истинные классы, столбцы — предсказанные; "
            "получено: транспонированная матрица (строки — предсказанные классы).")):
        checks.confusion_matrix_of(cm.T, model, "cifar10")
    with pytest.raises(CheckFailed, match=exactly("confusion: сумма элементов: ожидается: 10 (размер")):
        checks.confusion_matrix_of(cm * 2, model, "cifar10")
    # the same exact counts as floats are the matrix asked for; fractions are not
    checks.confusion_matrix_of(cm.astype(np.float64), model, "cifar10")
    checks.confusion_matrix_of(cm.astype(np.float32).tolist(), model, "cifar10")
    with pytest.raises(CheckFailed, match=exactly(
            "confusion: элементы: ожидается: целые числа примеров (не доли: матрица без нормировки)")):
        checks.confusion_matrix_of(cm / cm.sum(axis=1, keepdims=True), model, "cifar10")


def test_figure_shows_matrix():
    cm = np.array([[3, 1], [0, 4]])
    fig = Figure()
    fig.add_subplot().imshow(cm)
    checks.figure_shows_matrix(fig, cm)
    with pytest.raises(CheckFailed, match=exactly("fig_cm: изображение: ожидается: матрица ошибок")):
        checks.figure_shows_matrix(fig, cm.T)


# ---------------------------------------------------------------------------------- answers


def test_layer_output_shapes():
    model = network()
    shapes = [(1, 8, 8, 4), (1, 4, 4, 4), (1, 4, 4, 6), (1, 2, 2, 6), (1, 2, 2, 6), (1, 2, 2, 3), (1, 3)]
    checks.layer_output_shapes(shapes, model, (1, 8, 8, 3))
    wrong = [*shapes[:1], (1, 3, 3, 4), *shapes[2:]]
    with pytest.raises(CheckFailed, match=exactly(
            "output_shapes, слой №2 (MaxPooling2D): ожидается: (1, 4, 4, 4); получено: (1, 3, 3, 4).")):
        checks.layer_output_shapes(wrong, model, (1, 8, 8, 3))


def test_reference_counters_by_hand():
    """The conventions, computed by hand for one tiny network."""
    model = keras.Sequential([keras.Input((4, 4, 2)), block(3, kernel=3, num_1x1=1, batch_norm=False),
                              layers.GlobalAveragePooling2D()])
    assert nin_checks.reference_params(model) == (3 * 3 * 2 * 3 + 3) + (3 * 3 + 3)
    assert nin_checks.reference_mults(model) == 3 * 3 * 2 * 3 * 16 + 3 * 3 * 16
    assert nin_checks.reference_memory(model, 2) == 4 * (model.count_params() + 2 * (48 + 48 + 3))


def leaves(model):
    out = []
    for layer in model.layers:
        out.extend(leaves(layer) if isinstance(layer, keras.Model) else [layer])
    return out


def count_params(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def count_mults(model, use_input_size=False, ignore_strides=False):
    total, shape = 0, (1, *model.inputs[0].shape[1:])
    for layer in leaves(model):
        out = layer.compute_output_shape(shape)
        if isinstance(layer, layers.Conv2D):
            kh, kw = layer.kernel_size
            h, w = (shape[1], shape[2]) if use_input_size else (out[1], out[2])
            if ignore_strides:
                h, w = (shape[1] if layer.padding == "same" else shape[1] - kh + 1,
                        shape[2] if layer.padding == "same" else shape[2] - kw + 1)
            total += kh * kw * shape[-1] * layer.filters * h * w
        elif isinstance(layer, layers.Dense):
            total += shape[-1] * layer.units
        shape = out
    return int(total)


def count_memory(model, batch_size, with_input=False):
    activations, shape = 0, (1, *model.inputs[0].shape[1:])
    if with_input:
        activations += int(np.prod(shape[1:]))
    for layer in leaves(model):
        shape = layer.compute_output_shape(shape)
        activations += int(np.prod(shape[1:]))
    return 4 * (model.count_params() + batch_size * activations)


def count_mults_by_calls(model):
    """Right but different: shapes from running a zero image through each leaf layer, float result."""
    x = np.zeros((1, *model.inputs[0].shape[1:]), dtype=np.float32)
    total = 0.0
    for layer in leaves(model):
        y = layer(x)
        if isinstance(layer, layers.Conv2D):
            total += np.prod(layer.kernel.shape) * y.shape[1] * y.shape[2]
        elif isinstance(layer, layers.Dense):
            total += np.prod(layer.kernel.shape)
        x = y
    return float(total)


def count_memory_from_weights(model, batch_size):
    """Right but different: P from the weights list, np.int64 result."""
    shape, values = (1, *model.inputs[0].shape[1:]), 0
    for layer in leaves(model):
        shape = layer.compute_output_shape(shape)
        values += math.prod(shape[1:])
    params = sum(int(np.prod(w.shape)) for w in model.weights)
    return np.int64(4) * (params + batch_size * values)


@pytest.mark.parametrize(("quantity", "fn"), [
    ("params", count_params), ("params", lambda m: m.count_params() - sum(
        int(np.prod(w.shape)) for w in m.non_trainable_weights)),
    ("mults", count_mults), ("mults", count_mults_by_calls),
    ("memory", count_memory), ("memory", count_memory_from_weights),
])
def test_counter_probed_right_forms_pass(quantity, fn):
    name = {"params": "count_params", "mults": "count_mults", "memory": "count_memory"}[quantity]
    assert both_routes(checks.counter_probed, name, fn, quantity) is None


@pytest.mark.parametrize(("quantity", "fn", "message"), [
    ("mults", lambda m: count_mults(m, use_input_size=True), r"count_mults, сеть №1 \(вход \(16, 16, 3\): "
     r"Conv2D 8 3x3 same stride 2 relu, .*\): ожидается: \d+; получено: \d+\."),
    ("mults", lambda m: count_mults(m, ignore_strides=True), r"count_mults, сеть №1 .*ожидается: \d+"),
    ("params", lambda m: m.count_params(), r"count_params, сеть №1 .*BatchNorm.*ожидается: \d+"),
    ("memory", lambda m, b: count_memory(m, b, with_input=True),
     r"count_memory, сеть №1 .*, batch_size=32: ожидается: \d+"),
    ("memory", lambda m, b: count_memory(m, 128), r"count_memory, сеть №1 .*, batch_size=32: ожидается"),
    ("mults", lambda m: 16_834_560, r"count_mults, сеть №1 .*получено: 16834560\."),
    ("params", lambda m: None, r"count_params, сеть №1 .*получено: ошибка TypeError: NoneType"),
])
def test_counter_probed_wrong_formulas_fail(quantity, fn, message):
    name = {"params": "count_params", "mults": "count_mults", "memory": "count_memory"}[quantity]
    found = both_routes(checks.counter_probed, name, fn, quantity)
    assert found is not None and re.search(message, found), found


# --------------------------------------------------------------------------- submitted model


def test_submitted_model_passes_when_trained():
    checks.submitted_model(fit_with(None, epochs=1), "nin")


def test_submitted_model_untrained_fails():
    with pytest.raises(CheckFailed, match=exactly(
            "nin: обученные веса: ожидается: файл обученной модели в artifacts/")):
        checks.submitted_model(network(), "nin")


def test_submitted_model_missing_fails():
    with pytest.raises(CheckFailed, match=exactly("nin: ожидается: обученная модель (веса в artifacts/")):
        checks.submitted_model(None, "nin")


def test_submitted_model_too_big_fails(monkeypatch):
    model = fit_with(None, epochs=1)
    size = 4 * model.count_params() / 1e6
    with pytest.raises(CheckFailed, match=exactly(
            f"nin: размер модели (веса float32): ожидается: не более 0.001 МБ; получено: {size:.1f} МБ")):
        checks.submitted_model(model, "nin", max_megabytes=0.001)
    monkeypatch.setenv(nin_checks.ENV_MAX_MODEL_MB, "0.001")
    assert checks.model_size_limit() == 0.001
    with pytest.raises(CheckFailed, match="размер модели"):
        checks.submitted_model(model, "nin")
    monkeypatch.delenv(nin_checks.ENV_MAX_MODEL_MB)
    assert checks.model_size_limit() == 100.0
