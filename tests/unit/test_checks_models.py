"""Checks of model structure and compilation (convlab.checks.models) on tiny synthetic models."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
from keras import layers

from convlab import checks
from convlab.checks import CheckFailed

INPUT = (8, 8, 1)

#: the reference architecture, as every equivalent form must describe itself
EXPECTED = [
    "Conv2D 4 3x3 same relu", "MaxPool 2",
    "Conv2D 8 3x3 same relu", "MaxPool 2",
    "Flatten", "Dense 3 softmax",
]

SGD_SPARSE = {"optimizer": "SGD", "loss": "sparse_categorical_crossentropy", "metric": "accuracy"}


def exactly(text: str) -> str:
    """A ``match=`` pattern for this literal text."""
    return re.escape(text)


# ------------------------------------------------------------------------------ model builders


def tf_fn(name: str):
    """tf.nn.<name> (imported lazily: TensorFlow is the backend anyway)."""
    import tensorflow as tf

    return getattr(tf.nn, name)


def conv(filters: int, activation: str | None = "relu", **kwargs):
    return layers.Conv2D(filters, 3, padding="same", activation=activation, **kwargs)


def sequential(*stack):
    return keras.Sequential([keras.Input(INPUT), *stack])


def functional(*stack):
    inputs = keras.Input(INPUT)
    x = inputs
    for layer in stack:
        x = layer(x)
    return keras.Model(inputs, x)


def tiny():
    """The smallest model that compiles and trains: Dense(3, softmax) on 4 features."""
    return keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="softmax")])


FORMS = {
    "sequential": lambda: sequential(
        conv(4), layers.MaxPooling2D(2), conv(8), layers.MaxPooling2D(2),
        layers.Flatten(), layers.Dense(3, activation="softmax")),
    "functional": lambda: functional(
        conv(4), layers.MaxPooling2D(2), conv(8), layers.MaxPooling2D(2),
        layers.Flatten(), layers.Dense(3, activation="softmax")),
    "conv_then_relu_layer": lambda: functional(
        conv(4, None), layers.ReLU(), layers.MaxPooling2D(2),
        conv(8, None), layers.ReLU(), layers.MaxPooling2D(2),
        layers.Flatten(), layers.Dense(3, activation="softmax")),
    "conv_then_activation_relu": lambda: sequential(
        conv(4, None), layers.Activation("relu"), layers.MaxPooling2D(2),
        conv(8, None), layers.Activation("relu"), layers.MaxPooling2D(2),
        layers.Flatten(), layers.Dense(3, activation="softmax")),
    "maxpool2d_spelling": lambda: sequential(
        conv(4), layers.MaxPool2D(2), conv(8), layers.MaxPool2D(pool_size=(2, 2)),
        layers.Flatten(), layers.Dense(3, activation="softmax")),
    "dense_then_softmax_layer": lambda: functional(
        conv(4), layers.MaxPooling2D(2), conv(8), layers.MaxPooling2D(2),
        layers.Flatten(), layers.Dense(3), layers.Softmax()),
    "dense_then_activation_softmax": lambda: sequential(
        conv(4), layers.MaxPooling2D(2), conv(8), layers.MaxPooling2D(2),
        layers.Flatten(), layers.Dense(3), layers.Activation("softmax")),
    "nested_sequential_blocks": lambda: functional(
        keras.Sequential([conv(4), layers.MaxPooling2D(2)]),
        keras.Sequential([conv(8), layers.MaxPooling2D(2)]),
        layers.Flatten(), layers.Dense(3, activation="softmax")),
}

BATCHNORM_FORMS = {
    "before_pooling": lambda: sequential(
        conv(4), layers.BatchNormalization(), layers.MaxPooling2D(2),
        conv(8), layers.BatchNormalization(), layers.MaxPooling2D(2),
        layers.Flatten(), layers.Dense(3, activation="softmax")),
    "after_pooling": lambda: functional(
        conv(4), layers.MaxPooling2D(2), layers.BatchNormalization(),
        conv(8), layers.MaxPooling2D(2), layers.BatchNormalization(),
        layers.Flatten(), layers.Dense(3, activation="softmax")),
    "before_activation": lambda: functional(
        conv(4, None), layers.BatchNormalization(), layers.ReLU(), layers.MaxPooling2D(2),
        conv(8, None), layers.BatchNormalization(), layers.ReLU(), layers.MaxPooling2D(2),
        layers.Flatten(), layers.Dense(3, activation="softmax")),
    "nested_blocks": lambda: functional(
        keras.Sequential([conv(4), layers.BatchNormalization(), layers.MaxPooling2D(2)]),
        keras.Sequential([conv(8), layers.BatchNormalization(), layers.MaxPooling2D(2)]),
        layers.Flatten(), layers.Dense(3, activation="softmax")),
}


def dropout_model(*between):
    """Conv, pool, Flatten, Dense 16 relu, ``between``, Dense 3 softmax."""
    return sequential(conv(4), layers.MaxPooling2D(2), layers.Flatten(),
                      layers.Dense(16, activation="relu"), *between,
                      layers.Dense(3, activation="softmax"))


@pytest.fixture(scope="module")
def forms():
    return {name: build() for name, build in FORMS.items()}


@pytest.fixture(scope="module")
def batchnorm_forms():
    return {name: build() for name, build in BATCHNORM_FORMS.items()}


@pytest.fixture(scope="module")
def trained():
    """A tiny model compiled as the lab asks and fitted for one step on 4 random samples."""
    keras.utils.set_random_seed(0)
    model = tiny()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x = np.random.default_rng(0).random((4, 4), dtype=np.float32)
    model.fit(x, np.array([0, 1, 2, 0]), batch_size=4, epochs=1, verbose=0)
    return model


# ------------------------------------------------------------------------ any model check


MODEL_CHECKS = {
    "layer_sequence": lambda m: checks.layer_sequence(m, EXPECTED, name="model1"),
    "output_layer": lambda m: checks.output_layer(m, 3, name="model1"),
    "batchnorm_after": lambda m: checks.batchnorm_after(m, ["Conv2D"], name="model1"),
    "dropout_after_dense": lambda m: checks.dropout_after_dense(
        m, min_rate=0.05, max_rate=0.8, name="model1"),
    "compiled_with": lambda m: checks.compiled_with(m, **SGD_SPARSE, name="model1"),
    "is_trained": lambda m: checks.is_trained(m, "model1"),
}


@pytest.mark.parametrize("check", MODEL_CHECKS, ids=str)
def test_model_variable_none_fails(check):
    """Does every model check fail on a variable left as None, saying a Keras model was
    expected and None was found?"""
    with pytest.raises(CheckFailed, match=exactly(
            "model1: ожидается: модель Keras (keras.Model); получено: None (переменная не задана).")):
        MODEL_CHECKS[check](None)


@pytest.mark.parametrize("check", MODEL_CHECKS, ids=str)
def test_model_variable_of_wrong_type_fails(check):
    """Does every model check fail on something that is not a model (a list of layers),
    naming the type found?"""
    with pytest.raises(CheckFailed, match=exactly(
            "model1: ожидается: модель Keras (keras.Model); получено: list.")):
        MODEL_CHECKS[check]([layers.Dense(3)])


def test_check_failed_is_an_assertion_error():
    """Is CheckFailed an AssertionError, so that otter and pytest report it as a failed test?"""
    assert issubclass(CheckFailed, AssertionError)


# ------------------------------------------------------------------------ describe_layers


@pytest.mark.parametrize("form", FORMS)
def test_describe_layers_equivalent_forms(forms, form):
    """Does every equivalent way of writing the reference network describe itself the same
    way (activations folded, MaxPool2D = MaxPooling2D, nested blocks flattened)?"""
    assert checks.describe_layers(forms[form]) == EXPECTED


def test_describe_layers_shows_a_wrong_network():
    """Does describe_layers give a wrong network away (another filter count, a missing
    activation) instead of describing it as the reference?"""
    model = sequential(conv(4), layers.MaxPooling2D(2), conv(6, None), layers.MaxPooling2D(2),
                       layers.Flatten(), layers.Dense(3, activation="softmax"))
    described = checks.describe_layers(model)
    assert described != EXPECTED
    assert described[2] == "Conv2D 6 3x3 same linear"


def test_describe_layers_strides_padding_and_other_kinds():
    """Does describe_layers spell strides, pooling options, BatchNorm, Dropout and global
    pooling as the expected-layer lists write them?"""
    model = sequential(
        layers.Conv2D(4, (5, 3), strides=2, padding="valid"),
        layers.BatchNormalization(),
        layers.MaxPool2D(2, strides=1, padding="same"),
        layers.AveragePooling2D(2),
        layers.Dropout(0.25),
        layers.GlobalAveragePooling2D(),
        layers.Dense(3, activation="softmax"),
    )
    assert checks.describe_layers(model) == [
        "Conv2D 4 5x3 valid stride 2 linear", "BatchNorm", "MaxPool 2 stride 1 same",
        "AvgPool 2", "Dropout 0.25", "GlobalAvgPool", "Dense 3 softmax",
    ]


def test_describe_layers_folds_relu_across_max_pooling():
    """Is a ReLU placed after max pooling folded into the convolution (max pooling and ReLU
    commute: the same function)?"""
    model = sequential(conv(4, None), layers.MaxPooling2D(2), layers.ReLU())
    assert checks.describe_layers(model) == ["Conv2D 4 3x3 same relu", "MaxPool 2"]


def test_describe_layers_does_not_fold_other_activations_across_pooling():
    """Are a ReLU after average pooling and a softmax after max pooling shown as their own
    layers (they do not commute with the pooling)?"""
    model = sequential(conv(4, None), layers.AveragePooling2D(2), layers.ReLU(),
                       conv(4, None), layers.MaxPooling2D(2), layers.Softmax())
    assert checks.describe_layers(model) == [
        "Conv2D 4 3x3 same linear", "AvgPool 2", "Activation relu",
        "Conv2D 4 3x3 same linear", "MaxPool 2", "Activation softmax"]


@pytest.mark.parametrize("relu, softmax", [
    (tf_fn("relu"), tf_fn("softmax")),
    (keras.activations.relu, keras.activations.softmax),
    ("ReLU", "Softmax"),
], ids=["tf.nn", "keras.activations", "capitalized"])
def test_describe_layers_activation_functions(relu, softmax):
    """Are activations given as functions (tf.nn.relu, tf.nn.softmax, whose name is
    softmax_v2; keras.activations.*) described like the strings, in layers and in
    Activation layers?"""
    if isinstance(relu, str):
        relu, softmax = relu.lower(), softmax.lower()
    model = sequential(conv(4, relu), layers.MaxPooling2D(2), conv(8, None),
                       layers.Activation(relu), layers.MaxPooling2D(2), layers.Flatten(),
                       layers.Dense(3, activation=softmax))
    assert checks.describe_layers(model) == EXPECTED


# ------------------------------------------------------------------------- layer_sequence


@pytest.mark.parametrize("form", FORMS)
def test_layer_sequence_accepts_equivalent_forms(forms, form):
    """Does layer_sequence accept the reference network written in each equivalent form?"""
    checks.layer_sequence(forms[form], EXPECTED, name="model1")


def test_layer_sequence_wrong_filter_count_fails():
    """Does a convolution with the wrong number of filters fail, naming the layer number,
    the expected layer and the layer found?"""
    model = sequential(conv(4), layers.MaxPooling2D(2), conv(16), layers.MaxPooling2D(2),
                       layers.Flatten(), layers.Dense(3, activation="softmax"))
    with pytest.raises(CheckFailed, match=exactly(
            "model1, слой №3: ожидается: «Conv2D 8 3x3 same relu»; "
            "получено: «Conv2D 16 3x3 same relu»")):
        checks.layer_sequence(model, EXPECTED, name="model1")


def test_layer_sequence_wrong_padding_and_activation_fail():
    """Do padding 'valid' and a missing activation each fail, showing expected and found?"""
    model = sequential(layers.Conv2D(4, 3, padding="valid", activation="relu"))
    with pytest.raises(CheckFailed, match=exactly(
            "ожидается: «Conv2D 4 3x3 same relu»; получено: «Conv2D 4 3x3 valid relu»")):
        checks.layer_sequence(model, EXPECTED[:1])
    model = sequential(conv(4, None))
    with pytest.raises(CheckFailed, match=exactly(
            "ожидается: «Conv2D 4 3x3 same relu»; получено: «Conv2D 4 3x3 same linear»")):
        checks.layer_sequence(model, EXPECTED[:1])


def test_layer_sequence_missing_layer_fails(forms):
    """Does a network missing a pooling layer fail at the first layer that differs?"""
    model = sequential(conv(4), layers.MaxPooling2D(2), conv(8),
                       layers.Flatten(), layers.Dense(3, activation="softmax"))
    with pytest.raises(CheckFailed, match=exactly(
            "model1, слой №4: ожидается: «MaxPool 2»; получено: «Flatten»")):
        checks.layer_sequence(model, EXPECTED, name="model1")


def test_layer_sequence_extra_layer_fails(forms):
    """Does a network with an extra layer at the end fail, giving both layer counts?"""
    with pytest.raises(CheckFailed, match=exactly(
            "model1: число слоёв: ожидается: 5 (" + ", ".join(EXPECTED[:5]) + "); "
            "получено: 6 (" + ", ".join(EXPECTED) + ").")):
        checks.layer_sequence(forms["sequential"], EXPECTED[:5], name="model1")


def test_layer_sequence_ignore_drops_layer_kinds():
    """Does ignore=("Dropout",) let a network with extra Dropout layers pass, while
    without it the Dropout is reported?"""
    model = sequential(conv(4), layers.MaxPooling2D(2), layers.Dropout(0.2), conv(8),
                       layers.MaxPooling2D(2), layers.Flatten(),
                       layers.Dense(3, activation="softmax"))
    checks.layer_sequence(model, EXPECTED, ignore=("Dropout",))
    with pytest.raises(CheckFailed, match=exactly(
            "слой №3: ожидается: «Conv2D 8 3x3 same relu»; получено: «Dropout 0.2»")):
        checks.layer_sequence(model, EXPECTED)


# --------------------------------------------------------------------------- output_layer


@pytest.mark.parametrize("form", FORMS)
def test_output_layer_accepts_equivalent_forms(forms, form):
    """Is Dense(3, softmax) accepted as the output whether softmax is an argument, a
    Softmax layer or an Activation layer?"""
    checks.output_layer(forms[form], 3, "softmax", name="model2")


def test_output_layer_ignores_trailing_dropout():
    """Does a Dropout after the output Dense not hide the output layer?"""
    model = sequential(layers.Flatten(), layers.Dense(3, activation="softmax"),
                       layers.Dropout(0.1))
    checks.output_layer(model, 3, name="model2")


def test_output_layer_without_softmax_fails():
    """Does an output Dense without softmax fail, showing «Dense 3 softmax» expected and
    «Dense 3 linear» found?"""
    model = sequential(layers.Flatten(), layers.Dense(3))
    with pytest.raises(CheckFailed, match=exactly(
            "model2: выходной слой: ожидается: «Dense 3 softmax»; получено: «Dense 3 linear».")):
        checks.output_layer(model, 3, "softmax", name="model2")


def test_output_layer_wrong_class_count_fails(forms):
    """Does an output with 3 units fail when 10 classes are expected, naming both?"""
    with pytest.raises(CheckFailed, match=exactly(
            "model2: выходной слой: ожидается: «Dense 10 softmax»; получено: «Dense 3 softmax».")):
        checks.output_layer(forms["functional"], 10, name="model2")


def test_output_layer_not_dense_fails():
    """Does a network ending in global pooling (no output Dense) fail, naming that layer?"""
    model = sequential(conv(3), layers.GlobalAveragePooling2D())
    with pytest.raises(CheckFailed, match=exactly(
            "выходной слой: ожидается: «Dense 3 softmax»; получено: «GlobalAvgPool».")):
        checks.output_layer(model, 3)


# ------------------------------------------------------------------------ batchnorm_after


@pytest.mark.parametrize("form", BATCHNORM_FORMS)
def test_batchnorm_after_accepts_placements(batchnorm_forms, form):
    """Is BatchNorm accepted before or after pooling, before the activation, and inside
    nested blocks?"""
    checks.batchnorm_after(batchnorm_forms[form], ["Conv2D"], name="model2")


def test_batchnorm_after_missing_after_last_conv_fails():
    """Does a network without BatchNorm after its last convolution fail, naming that layer
    (and only that one)?"""
    model = sequential(conv(4), layers.BatchNormalization(), layers.MaxPooling2D(2),
                       conv(8), layers.MaxPooling2D(2),
                       layers.Flatten(), layers.Dense(3, activation="softmax"))
    with pytest.raises(CheckFailed, match=exactly(
            "model2: ожидается: слой BatchNormalization после каждого слоя Conv2D "
            "(до следующего Conv2D/Dense); получено: нет нормализации после: "
            "слой №4 «Conv2D 8 3x3 same relu». Слои модели:")):
        checks.batchnorm_after(model, ["Conv2D"], name="model2")


def test_batchnorm_after_input_normalisation_only_fails():
    """Does a BatchNorm before the first convolution (not after it) fail, naming the first
    convolution?"""
    model = functional(layers.BatchNormalization(), conv(4), layers.MaxPooling2D(2),
                       conv(8), layers.BatchNormalization(), layers.MaxPooling2D(2),
                       layers.Flatten(), layers.Dense(3, activation="softmax"))
    with pytest.raises(CheckFailed, match=exactly(
            "нет нормализации после: слой №2 «Conv2D 4 3x3 same relu». Слои модели: BatchNorm,")):
        checks.batchnorm_after(model, ["Conv2D"])


def test_batchnorm_after_hidden_dense():
    """With kinds Conv2D and Dense, does a hidden Dense without BatchNorm fail (naming it),
    while kinds Conv2D alone and a BatchNorm after the Dense both pass (the output Dense
    never needs one)?"""
    without = sequential(conv(4), layers.BatchNormalization(), layers.MaxPooling2D(2),
                         layers.Flatten(), layers.Dense(16, activation="relu"),
                         layers.Dense(3, activation="softmax"))
    checks.batchnorm_after(without, ["Conv2D"], name="model5")
    with pytest.raises(CheckFailed, match=exactly(
            "model5: ожидается: слой BatchNormalization после каждого слоя Conv2D/Dense "
            "(до следующего Conv2D/Dense); получено: нет нормализации после: слой №5 «Dense 16 relu».")):
        checks.batchnorm_after(without, ["Conv2D", "Dense"], name="model5")
    with_bn = sequential(conv(4), layers.BatchNormalization(), layers.MaxPooling2D(2),
                         layers.Flatten(), layers.Dense(16, activation="relu"),
                         layers.BatchNormalization(), layers.Dense(3, activation="softmax"))
    checks.batchnorm_after(with_bn, ["Conv2D", "Dense"], name="model5")


def test_batchnorm_after_needs_its_subject():
    """Does a perceptron with BatchNormalization but no convolution fail "after every
    convolution" (a requirement about convolutions needs one), and a network without a
    hidden Dense fail "after every Conv2D/Dense"?"""
    mlp = sequential(layers.Flatten(), layers.Dense(16, activation="relu"),
                     layers.BatchNormalization(), layers.Dense(3, activation="softmax"))
    with pytest.raises(CheckFailed, match=exactly(
            "model2: ожидается: хотя бы один свёрточный слой Conv2D (с BatchNormalization после "
            "него); получено: его нет. Слои модели: Flatten, Dense 16 relu, BatchNorm, "
            "Dense 3 softmax.")):
        checks.batchnorm_after(mlp, ["Conv2D"], name="model2")
    no_hidden = sequential(conv(4), layers.BatchNormalization(), layers.Flatten(),
                           layers.Dense(3, activation="softmax"))
    checks.batchnorm_after(no_hidden, ["Conv2D"], name="model5")
    with pytest.raises(CheckFailed, match=exactly(
            "model5: ожидается: хотя бы один скрытый слой Dense")):
        checks.batchnorm_after(no_hidden, ["Conv2D", "Dense"], name="model5")


def test_batchnorm_after_no_batchnorm_lists_every_conv(forms):
    """Does a network with no BatchNorm at all list every convolution as missing one?"""
    with pytest.raises(CheckFailed, match=exactly(
            "нет нормализации после: слой №1 «Conv2D 4 3x3 same relu»; "
            "слой №3 «Conv2D 8 3x3 same relu».")):
        checks.batchnorm_after(forms["sequential"], ["Conv2D"])


# -------------------------------------------------------------------- dropout_after_dense


@pytest.mark.parametrize("rate", [0.05, 0.3, 0.8])
def test_dropout_after_dense_accepts_rates_in_range(rate):
    """Is a Dropout between the hidden and the output Dense accepted for rates within
    [min_rate, max_rate], bounds included?"""
    checks.dropout_after_dense(dropout_model(layers.Dropout(rate)),
                               min_rate=0.05, max_rate=0.8, name="model6")


def test_dropout_after_dense_with_batchnorm_between():
    """Is the model6 layout (Dense, BatchNorm, Dropout, Dense) accepted, in a functional
    model?"""
    model = functional(conv(4), layers.MaxPooling2D(2), layers.Flatten(),
                       layers.Dense(16, activation="relu"), layers.BatchNormalization(),
                       layers.Dropout(0.3), layers.Dense(3, activation="softmax"))
    checks.dropout_after_dense(model, min_rate=0.05, max_rate=0.8, name="model6")


@pytest.mark.parametrize("rate", [0.9, 0.01])
def test_dropout_after_dense_rate_out_of_range_fails(rate):
    """Does a Dropout rate outside [min_rate, max_rate] fail, giving the range and the rate?"""
    with pytest.raises(CheckFailed, match=exactly(
            f"model6: вероятность Dropout: ожидается: от 0.05 до 0.8; получено: {rate:g}.")):
        checks.dropout_after_dense(dropout_model(layers.Dropout(rate)),
                                   min_rate=0.05, max_rate=0.8, name="model6")


def test_dropout_after_dense_missing_fails():
    """Does a network without Dropout between the Dense layers fail, saying one was
    expected and none found?"""
    with pytest.raises(CheckFailed, match=exactly(
            "model6: Dropout после скрытого полносвязного слоя: ожидается: слой Dropout между "
            "Dense-слоями; получено: его нет; слои модели: Conv2D 4 3x3 same relu, MaxPool 2, "
            "Flatten, Dense 16 relu, Dense 3 softmax.")):
        checks.dropout_after_dense(dropout_model(), min_rate=0.05, max_rate=0.8, name="model6")


def test_dropout_before_hidden_dense_fails():
    """Does a Dropout before the hidden Dense (instead of after it) fail as missing?"""
    model = sequential(conv(4), layers.MaxPooling2D(2), layers.Flatten(), layers.Dropout(0.3),
                       layers.Dense(16, activation="relu"), layers.Dense(3, activation="softmax"))
    with pytest.raises(CheckFailed, match=exactly(
            "ожидается: слой Dropout между Dense-слоями; получено: его нет")):
        checks.dropout_after_dense(model, min_rate=0.05, max_rate=0.8)


def test_dropout_after_dense_single_dense_fails(forms):
    """Does a network with only the output Dense fail, saying a hidden Dense was expected
    and listing the layers found?"""
    with pytest.raises(CheckFailed, match=exactly(
            "model6: полносвязные слои: ожидается: скрытый Dense и выходной Dense; получено: "
            + ", ".join(EXPECTED) + ".")):
        checks.dropout_after_dense(forms["sequential"], min_rate=0.05, max_rate=0.8,
                                   name="model6")


# -------------------------------------------------------------------------- compiled_with


@pytest.mark.parametrize("optimizer, loss, metrics", [
    ("sgd", "sparse_categorical_crossentropy", ["accuracy"]),
    ("SGD", "SparseCategoricalCrossentropy", ["acc"]),
    (keras.optimizers.SGD(learning_rate=0.1), keras.losses.SparseCategoricalCrossentropy(),
     [keras.metrics.SparseCategoricalAccuracy()]),
    (keras.optimizers.SGD(), keras.losses.sparse_categorical_crossentropy, ["accuracy"]),
], ids=["strings", "class-name-strings", "objects", "loss-function"])
def test_compiled_with_accepts_equivalent_spellings(optimizer, loss, metrics):
    """Is SGD + sparse categorical cross-entropy + accuracy accepted however compile()
    was spelled (strings, class names, objects, the loss function)?"""
    model = tiny()
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    checks.compiled_with(model, **SGD_SPARSE, name="model1")


def test_compiled_with_uncompiled_fails():
    """Does a model never compiled fail, saying compile() was expected?"""
    with pytest.raises(CheckFailed, match=exactly(
            "model1: компиляция: ожидается: модель, скомпилированная через compile(); "
            "получено: модель не скомпилирована.")):
        checks.compiled_with(tiny(), **SGD_SPARSE, name="model1")


def test_compiled_with_wrong_optimizer_fails():
    """Does Adam instead of SGD fail, naming both optimizers?"""
    model = tiny()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with pytest.raises(CheckFailed, match=exactly(
            "model1: оптимизатор: ожидается: SGD; получено: Adam.")):
        checks.compiled_with(model, **SGD_SPARSE, name="model1")


@pytest.mark.parametrize("loss, found", [
    ("mse", "mse"),
    ("binary_crossentropy", "binary_crossentropy"),
    (keras.losses.MeanSquaredError(), "mean_squared_error"),
])
def test_compiled_with_wrong_loss_fails(loss, found):
    """Does a loss other than sparse categorical cross-entropy fail, naming the expected
    and the found loss?"""
    model = tiny()
    model.compile(optimizer="sgd", loss=loss, metrics=["accuracy"])
    with pytest.raises(CheckFailed, match=exactly(
            f"model1: функция потерь: ожидается: sparse_categorical_crossentropy или "
            f"categorical_crossentropy; получено: {found}.")):
        checks.compiled_with(model, **SGD_SPARSE, name="model1")


@pytest.mark.parametrize("loss, metric", [
    ("categorical_crossentropy", "accuracy"),
    (keras.losses.CategoricalCrossentropy(), "categorical_accuracy"),
])
def test_compiled_with_one_hot_form_passes(loss, metric):
    """Is categorical cross-entropy (one-hot labels: the same loss) accepted for the sparse
    one, with its accuracy metric?"""
    model = tiny()
    model.compile(optimizer=keras.optimizers.SGD(), loss=loss, metrics=[metric])
    checks.compiled_with(model, **SGD_SPARSE, name="model1")


def test_compiled_with_from_logits_fails():
    """Does a loss with from_logits=True (for a softmax output) fail, saying
    from_logits=False was expected?"""
    model = tiny()
    model.compile(optimizer="sgd",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    with pytest.raises(CheckFailed, match=exactly(
            "model1: функция потерь: ожидается: from_logits=False (выход сети — softmax); "
            "получено: from_logits=True.")):
        checks.compiled_with(model, **SGD_SPARSE, name="model1")


@pytest.mark.parametrize("metrics, found", [(None, "метрик нет"), (["mae"], "['mae']")])
def test_compiled_with_wrong_or_missing_metric_fails(metrics, found):
    """Does a model compiled without the accuracy metric fail, naming the metrics found?"""
    model = tiny()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=metrics)
    with pytest.raises(CheckFailed, match=exactly(
            f"model1: метрика: ожидается: accuracy; получено: {found}.")):
        checks.compiled_with(model, **SGD_SPARSE, name="model1")


# ----------------------------------------------------------------------------- is_trained


def test_is_trained_after_fit(trained):
    """Does a model that went through fit() (one step) pass?"""
    checks.is_trained(trained, "model1")


def test_is_trained_forged_history_fails():
    """Does a history alone (an untrained model whose optimizer never stepped) fail: a
    history is evidence only where the optimizer agrees?"""
    model = tiny()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = keras.callbacks.History()
    history.epoch = [0, 1, 2]
    model.history = history
    with pytest.raises(CheckFailed, match=exactly(
            "model1: обучение: ожидается: обученная модель (вызов model1.fit(...)); получено: "
            "модель не обучалась: оптимизатор не сделал ни одного шага (хотя история обучения "
            "содержит эпох: 3).")):
        checks.is_trained(model, "model1")


def test_is_trained_forged_steps_fail():
    """Does an optimizer counter set by hand on untouched weights fail on the weights?"""
    model = tiny()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.optimizer.iterations.assign(3)
    assert checks.optimizer_steps(model) == 0  # an unbuilt optimizer's counter is not training
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(3)
    assert checks.optimizer_steps(model) == 3
    with pytest.raises(CheckFailed, match=exactly(
            "model1: веса модели: ожидается: веса после обучения (отличаются от начальных); "
            "получено: веса как у только что созданной модели (обучения не было).")):
        checks.is_trained(model, "model1")


def test_is_trained_compiled_but_untrained_fails():
    """Does a compiled model that was never fitted fail (rather than crash), saying a call
    to fit() was expected?"""
    model = tiny()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with pytest.raises(CheckFailed, match=exactly(
            "model1: обучение: ожидается: обученная модель (вызов model1.fit(...)); "
            "получено: модель не обучалась: оптимизатор не сделал ни одного шага.")):
        checks.is_trained(model, "model1")


def test_is_trained_uncompiled_fails():
    """Does a model neither compiled nor fitted fail, naming the variable in the hint?"""
    with pytest.raises(CheckFailed, match=exactly(
            "model2: обучение: ожидается: обученная модель (вызов model2.fit(...)); "
            "получено: модель не обучалась: оптимизатор не сделал ни одного шага.")):
        checks.is_trained(tiny(), "model2")


def test_public_is_trained_is_weak():
    """Does the public is_trained (student kit) accept a history alone, while the hidden
    one does not?"""
    from convlab import public

    model = tiny()
    history = keras.callbacks.History()
    history.epoch = [0]
    model.history = history
    public.is_trained(model, "model1")
    with pytest.raises(public.CheckFailed, match=exactly(
            "model1: обучение: ожидается: обученная модель (вызов model1.fit(...)); "
            "получено: модель не обучалась.")):
        public.is_trained(tiny(), "model1")


# --------------------------------------------------------------- weights_moved, prescription


def test_weights_moved_trained_passes_fresh_fails(trained):
    """Do trained weights pass and a fresh initialization of the same architecture fail?"""
    checks.weights_moved(trained, "model1")
    with pytest.raises(CheckFailed, match=exactly("model1: веса модели: ожидается: веса после обучения")):
        checks.weights_moved(tiny(), "model1")


def fitted(samples: int, epochs: int, batch_size: int, validation_split: float = 0.0):
    keras.utils.set_random_seed(0)
    model = tiny()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((samples, 4), dtype=np.float32)
    model.fit(x, rng.integers(0, 3, samples), batch_size=batch_size, epochs=epochs,
              validation_split=validation_split, verbose=0)
    return model


@pytest.mark.parametrize("validation_split", [0.0, 0.1])
def test_trained_as_prescribed_passes(validation_split):
    """Does a model fitted for the prescribed epochs and batch size on the training split
    (all of it, or all but a validation_split) pass?"""
    model = fitted(40, 3, 8, validation_split)
    checks.trained_as_prescribed(model, epochs=3, batch_size=8, train_size=40, name="model1")


def test_trained_as_prescribed_fewer_epochs_fails():
    """Does a model fitted for 2 epochs instead of 3 fail, saying how many it looks like?"""
    model = fitted(40, 2, 8)
    with pytest.raises(CheckFailed, match=exactly(
            "model1: обучение: ожидается: 3 эпох по 8 примеров в батче на обучающей выборке "
            "(3 × 5 = 15 шагов оптимизатора); получено: 10 шагов оптимизатора (похоже на 2 "
            "эпох(и) по 8 примеров).")):
        checks.trained_as_prescribed(model, epochs=3, batch_size=8, train_size=40, name="model1")


def test_trained_as_prescribed_test_split_fails():
    """Does a model fitted on a split smaller than the training one (the test split) fail,
    saying how many examples an epoch had?"""
    model = fitted(16, 3, 8)
    with pytest.raises(CheckFailed, match=exactly(
            "получено: 6 шагов оптимизатора (около 16 примеров за эпоху: меньше обучающей "
            "выборки из 40; обучение на тестовой выборке или на части данных?).")):
        checks.trained_as_prescribed(model, epochs=3, batch_size=8, train_size=40, name="model1")


def test_trained_as_prescribed_untrained_fails():
    """Does an untrained model fail on training itself?"""
    with pytest.raises(CheckFailed, match=exactly("model1: обучение: ожидается: обученная модель")):
        checks.trained_as_prescribed(tiny(), epochs=3, batch_size=8, train_size=40, name="model1")


# ---------------------------------------------------- parameter counts and layer types


def test_trainable_split_counts(batchnorm_forms):
    """Does trainable_split count BatchNorm's gamma/beta as trainable and its moving
    statistics as non-trainable?"""
    model = batchnorm_forms["before_pooling"]
    conv_params = (9 * 1 * 4 + 4) + (9 * 4 * 8 + 8)
    dense_params = 2 * 2 * 8 * 3 + 3
    assert checks.trainable_split(model) == (conv_params + dense_params + 2 * (4 + 8),
                                             2 * (4 + 8))
    assert sum(checks.trainable_split(model)) == model.count_params()


def test_trainable_split_frozen_layer_and_nested_block():
    """Do a frozen layer's weights count as non-trainable, also inside a nested block?"""
    block = keras.Sequential([conv(4), layers.BatchNormalization()])
    model = functional(block, layers.Flatten(), layers.Dense(3, activation="softmax"))
    block.layers[0].trainable = False
    assert checks.trainable_split(model) == (8 + (8 * 8 * 4 * 3 + 3), (9 * 4 + 4) + 8)


def test_trainable_split_wrong_answer_fails(batchnorm_forms):
    """Does a student total that counts the moving statistics as trainable fail
    answer_equals against trainable_split, naming both numbers?"""
    trainable, non_trainable = checks.trainable_split(batchnorm_forms["before_pooling"])
    wrong = trainable + non_trainable
    with pytest.raises(CheckFailed, match=exactly(
            f"trainable_params_2: ожидается: {trainable}; получено: {wrong}.")):
        checks.answer_equals(wrong, trainable, "trainable_params_2")


@pytest.mark.parametrize("form", BATCHNORM_FORMS)
def test_batchnorm_param_counts(batchnorm_forms, form):
    """Does batchnorm_param_counts give 4 x channels per BatchNorm, in order, also for
    nested blocks?"""
    assert checks.batchnorm_param_counts(batchnorm_forms[form]) == [16, 32]


def test_batchnorm_param_counts_wrong_answer_fails(batchnorm_forms, forms):
    """Does a student list with only the trainable BatchNorm parameters fail answer_equals
    against batchnorm_param_counts, and is a network without BatchNorm an empty list?"""
    counts = checks.batchnorm_param_counts(batchnorm_forms["after_pooling"])
    with pytest.raises(CheckFailed, match=exactly(
            "bn_params_per_layer: ожидается: [16, 32]; получено: [8, 16].")):
        checks.answer_equals([8, 16], counts, "bn_params_per_layer")
    assert checks.batchnorm_param_counts(forms["sequential"]) == []


@pytest.mark.parametrize("form, expected", [
    ("sequential", {"MaxPooling2D", "Flatten"}),
    ("functional", {"MaxPooling2D", "Flatten"}),
    ("conv_then_relu_layer", {"ReLU", "MaxPooling2D", "Flatten"}),
    ("dense_then_softmax_layer", {"MaxPooling2D", "Flatten", "Softmax"}),
    ("nested_sequential_blocks", {"MaxPooling2D", "Flatten"}),
])
def test_parameterless_layer_types(forms, form, expected):
    """Does parameterless_layer_types list the class names of the layers without
    parameters, without InputLayer and looking inside nested blocks?"""
    assert checks.parameterless_layer_types(forms[form]) == expected


def test_parameterless_layer_types_student_answers():
    """Is the usual student answer (type names over model.layers, InputLayer included,
    MaxPool2D spelling) accepted by same_names, and one missing Dropout rejected?"""
    functional_model = functional(conv(4), layers.MaxPool2D(2), layers.Flatten(),
                                  layers.Dense(16, activation="relu"), layers.Dropout(0.3),
                                  layers.Dense(3, activation="softmax"))
    expected = checks.parameterless_layer_types(functional_model)
    assert expected == {"MaxPooling2D", "Flatten", "Dropout"}
    answer = {type(layer).__name__ for layer in functional_model.layers
              if layer.count_params() == 0}
    assert "InputLayer" in answer
    checks.same_names(answer, expected, "layers_without_params_4")
    checks.same_names(["MaxPool2D", "Flatten", "Dropout"], expected, "layers_without_params_4")
    with pytest.raises(CheckFailed, match=exactly(
            "layers_without_params_4: ожидается: {'Dropout', 'Flatten', 'MaxPooling2D'}; "
            "получено: {'Flatten', 'MaxPooling2D'}.")):
        checks.same_names(["MaxPooling2D", "Flatten"], expected, "layers_without_params_4")
