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


def test_block_samples_pass_for_reference_blocks():
    """Do the reference blocks pass on random configurations, with and without BatchNorm?"""
    configs = nin_checks.random_block_configs(5, seed=1)
    for batch_norm in (True, False):
        samples = [keras.Sequential([keras.Input((16, 16, 3)), block(c["num_channels"], c["kernel_size"],
                                                                     c["strides"], c["padding"], c["num_1x1"],
                                                                     batch_norm)]) for c in configs]
        checks.nin_block_samples(configs, samples)


def test_block_samples_missing_1x1_fails():
    """Does a block with a fixed single 1x1 layer fail a configuration asking for two?"""
    configs = [{"num_channels": 4, "kernel_size": 3, "strides": 1, "padding": "same", "num_1x1": n}
               for n in (1, 2, 3)]
    samples = [keras.Sequential([keras.Input((8, 8, 3)), block(4, num_1x1=1)]) for _ in configs]
    with pytest.raises(CheckFailed, match=exactly(
            "nin_block(num_channels=4, kernel_size=3, strides=1, padding='same', num_1x1=2): ожидалось слои "
            "«Conv2D 4 3x3 same relu, Conv2D 4 1x1 relu, Conv2D 4 1x1 relu», получено "
            "«Conv2D 4 3x3 same relu, Conv2D 4 1x1 relu».")):
        checks.nin_block_samples(configs, samples)


def test_block_samples_ignoring_stride_fails():
    configs = [{"num_channels": 5, "kernel_size": 5, "strides": 2, "padding": "valid", "num_1x1": 1},
               {"num_channels": 3, "kernel_size": 3, "strides": 1, "padding": "same", "num_1x1": 1},
               {"num_channels": 2, "kernel_size": 1, "strides": 1, "padding": "same", "num_1x1": 2}]
    samples = [keras.Sequential([keras.Input((8, 8, 3)), block(c["num_channels"], c["kernel_size"], 1,
                                                               c["padding"], c["num_1x1"])]) for c in configs]
    with pytest.raises(CheckFailed, match="получено «Conv2D 5 5x5 valid relu"):
        checks.nin_block_samples(configs, samples)


def test_block_samples_too_few_configs_fail():
    config = {"num_channels": 4, "kernel_size": 3, "strides": 1, "padding": "same", "num_1x1": 2}
    samples = [keras.Sequential([keras.Input((8, 8, 3)), block(4)])] * 3
    with pytest.raises(CheckFailed, match=exactly("block_configs: ожидалось не менее 3 разных случайных "
                                                  "конфигураций (random_block_configs()), получено 1.")):
        checks.nin_block_samples([config] * 3, samples)


# ----------------------------------------------------------------------------------- network


def test_nin_network_passes_for_reference():
    checks.nin_network(network(), classes=3, num_1x1=2)
    checks.nin_network(network(num_1x1=1), classes=3, num_1x1=(1, 3), name="nin_ablation")


@pytest.mark.parametrize(("model", "message"), [
    (lambda: network(head=6),
     "nin: число фильтров последнего блока: ожидалось 3 (по числу классов), получено 6."),
    (lambda: network(dense=True),
     "nin: полносвязные слои: ожидалось их нет (выход — глобальный average pooling), получено «Flatten»"),
    (lambda: network(num_1x1=0), "nin, блок №1: число слоёв 1×1 после свёртки 3x3: ожидалось 2, получено 0."),
    (lambda: network(num_1x1=1), "nin, блок №1: число слоёв 1×1 после свёртки 3x3: ожидалось 2, получено 1."),
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
    (False, False, "nin: функция потерь: ожидалось from_logits=True (выход сети — логиты, без softmax), "
                   "получено from_logits=False."),
    (True, True, "nin: функция потерь: ожидалось from_logits=False (выход сети — softmax, вероятности), "
                 "получено from_logits=True."),
])
def test_outputs_match_loss_inconsistent_fails(softmax, logits, expected):
    with pytest.raises(CheckFailed, match=exactly(expected)):
        checks.outputs_match_loss(network(softmax=softmax, logits=logits))


# ---------------------------------------------------------------------------------- training


def test_adamw_weight_decay_passes():
    checks.adamw_weight_decay(network())


@pytest.mark.parametrize(("optimizer", "expected"), [
    (lambda: keras.optimizers.Adam(1e-3), "nin: оптимизатор: ожидалось AdamW, получено Adam."),
    (lambda: keras.optimizers.AdamW(1e-3, weight_decay=0.0),
     "nin: weight_decay оптимизатора AdamW: ожидалось больше 0, получено 0."),
])
def test_adamw_weight_decay_fails(optimizer, expected):
    with pytest.raises(CheckFailed, match=exactly(expected)):
        checks.adamw_weight_decay(network(optimizer=optimizer()))


def cosine(t, lr_0, lr_min, T):
    return lr_min + (lr_0 - lr_min) * (1 + math.cos(math.pi * t / T)) / 2


def test_cosine_schedule_values_pass_and_seed_defect_fails():
    points = nin_checks.random_schedule_points(6, seed=3)
    checks.cosine_schedule_values(points, [cosine(*p) for p in points])
    # the original: ignores lr_min, divides by 1.8
    broken = [p[1] * (1 + math.cos(math.pi * p[0] / p[3])) / 1.8 for p in points]
    t, lr_0, lr_min, T = points[0]
    with pytest.raises(CheckFailed, match=exactly(
            f"cosine_lr(epoch={t}, lr_0={lr_0:g}, lr_min={lr_min:g}, T={T}): "
            f"ожидалось {cosine(*points[0]):.6g}")):
        checks.cosine_schedule_values(points, broken)


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
    with pytest.raises(CheckFailed, match=exactly("nin: скорость обучения в эпохе 2: ожидалось")):
        checks.schedule_attached(fit_with(lambda epoch: 1e-3), 1e-3, 1e-5, 3)
    with pytest.raises(CheckFailed, match=exactly(
            "nin: скорость обучения в истории обучения: ожидалось значения learning_rate по эпохам")):
        checks.schedule_attached(fit_with(None), 1e-3, 1e-5, 3)


# -------------------------------------------------------------------------- confusion matrix


def test_confusion_matrix_of(fake_datasets, make_mapping_model):
    model = make_mapping_model((6, 6, 3))
    y = fake_datasets.y_test
    cm = np.zeros((3, 3), dtype=np.int64)
    np.add.at(cm, (y, fake_datasets.oracle), 1)
    checks.confusion_matrix_of(cm, model, "cifar10")
    with pytest.raises(CheckFailed, match=exactly(
            "confusion: строки и столбцы: ожидалось строки — истинные классы, столбцы — предсказанные, "
            "получено транспонированная матрица (строки — предсказанные классы).")):
        checks.confusion_matrix_of(cm.T, model, "cifar10")
    with pytest.raises(CheckFailed, match=exactly("confusion: сумма элементов: ожидалось 10 (размер")):
        checks.confusion_matrix_of(cm * 2, model, "cifar10")


def test_figure_shows_matrix():
    cm = np.array([[3, 1], [0, 4]])
    fig = Figure()
    fig.add_subplot().imshow(cm)
    checks.figure_shows_matrix(fig, cm)
    with pytest.raises(CheckFailed, match=exactly("fig_cm: изображение: ожидалось матрица ошибок")):
        checks.figure_shows_matrix(fig, cm.T)


# ---------------------------------------------------------------------------------- answers


def test_layer_output_shapes():
    model = network()
    shapes = [(1, 8, 8, 4), (1, 4, 4, 4), (1, 4, 4, 6), (1, 2, 2, 6), (1, 2, 2, 6), (1, 2, 2, 3), (1, 3)]
    checks.layer_output_shapes(shapes, model, (1, 8, 8, 3))
    wrong = [*shapes[:1], (1, 3, 3, 4), *shapes[2:]]
    with pytest.raises(CheckFailed, match=exactly(
            "output_shapes, слой №2 (MaxPooling2D): ожидалось (1, 4, 4, 4), получено (1, 3, 3, 4).")):
        checks.layer_output_shapes(wrong, model, (1, 8, 8, 3))


def test_reference_counters_by_hand():
    """The conventions, computed by hand for one tiny network."""
    model = keras.Sequential([keras.Input((4, 4, 2)), block(3, kernel=3, num_1x1=1, batch_norm=False),
                              layers.GlobalAveragePooling2D()])
    assert nin_checks.reference_params(model) == (3 * 3 * 2 * 3 + 3) + (3 * 3 + 3)
    assert nin_checks.reference_mults(model) == 3 * 3 * 2 * 3 * 16 + 3 * 3 * 16
    assert nin_checks.reference_memory(model, 2) == 4 * (model.count_params() + 2 * (48 + 48 + 3))


def test_counter_correct_passes_and_hard_coded_fails():
    networks = nin_checks.random_networks(4, seed=5)
    counts = [(nin_checks.reference_params(m), nin_checks.reference_mults(m),
               nin_checks.reference_memory(m, 16)) for m in networks]
    for quantity in ("params", "mults", "memory"):
        checks.counter_correct(networks, counts, 16, quantity)
    constant = [counts[0]] * len(counts)
    with pytest.raises(CheckFailed, match=r"probe_counts, сеть №2 \(.*\), mults: ожидалось \d+, "
                                          r"получено \d+\."):
        checks.counter_correct(networks, constant, 16, "mults")


def test_counter_correct_same_network_repeated_fails():
    networks = [nin_checks.random_networks(1, seed=7)[0]] * 3
    with pytest.raises(CheckFailed, match=exactly(
            "probe_networks: ожидалось не менее 3 разных сетей, получено 1.")):
        checks.counter_correct(networks, [(0, 0, 0)] * 3, 16, "params")


# --------------------------------------------------------------------------- submitted model


def test_submitted_model_passes_when_trained():
    checks.submitted_model(fit_with(None, epochs=1), "nin")


def test_submitted_model_untrained_fails():
    with pytest.raises(CheckFailed, match=exactly(
            "nin: обученные веса: ожидалось файл обученной модели в artifacts/")):
        checks.submitted_model(network(), "nin")


def test_submitted_model_missing_fails():
    with pytest.raises(CheckFailed, match=exactly("nin: ожидалось обученная модель (веса в artifacts/")):
        checks.submitted_model(None, "nin")


def test_submitted_model_too_big_fails(monkeypatch):
    model = fit_with(None, epochs=1)
    size = 4 * model.count_params() / 1e6
    with pytest.raises(CheckFailed, match=exactly(
            f"nin: размер модели (веса float32): ожидалось не более 0.001 МБ, получено {size:.1f} МБ")):
        checks.submitted_model(model, "nin", max_megabytes=0.001)
    monkeypatch.setenv(nin_checks.ENV_MAX_MODEL_MB, "0.001")
    assert checks.model_size_limit() == 0.001
    with pytest.raises(CheckFailed, match="размер модели"):
        checks.submitted_model(model, "nin")
    monkeypatch.delenv(nin_checks.ENV_MAX_MODEL_MB)
    assert checks.model_size_limit() == 100.0
