"""The checks vocabulary of the hidden and public tests.

The format checks of :mod:`convlab.public` (the only checks in the student kit) are re-exported
here, so hidden tests keep writing ``checks.is_integer(...)``. Every check raises
:class:`CheckFailed` (an ``AssertionError``) whose message, in Russian for students, says what
was expected and what was found. Tests read like sentences::

    checks.layer_sequence(model4, ["Conv2D 32 3x3 same relu", "MaxPool 2", ...])
    checks.accuracy_at_least(model4, "cifar10", checks.threshold("lab5_cnn", "model4"))
"""

from convlab.checks.answers import (
    answer_close,
    answer_equals,
    same_names,
)
from convlab.checks.base import floor, threshold
from convlab.checks.data import (
    image_shape,
    pristine,
    scaled_like_raw,
    train_size,
)
from convlab.checks.figures import (
    feature_map_grid,
    shows_dataset_images,
    shows_training_images,
    train_image,
)
from convlab.checks.models import (
    batchnorm_after,
    batchnorm_param_counts,
    compiled_with,
    describe_layers,
    dropout_after_dense,
    is_trained,
    layer_sequence,
    optimizer_steps,
    output_layer,
    parameterless_layer_types,
    trainable_split,
    trained_as_prescribed,
    weights_moved,
)
from convlab.checks.nin import (
    adamw_weight_decay,
    confusion_matrix_of,
    cosine_schedule_values,
    counter_correct,
    figure_shows_matrix,
    layer_output_shapes,
    model_size_limit,
    nin_block_samples,
    nin_network,
    outputs_match_loss,
    schedule_attached,
    submitted_model,
)
from convlab.checks.performance import (
    accuracy_at_least,
    accuracy_step,
    answer_accuracy,
    argmax_labels,
    fitted_on_training_split,
    more_accurate,
    predicted_labels,
    test_accuracy,
    train_accuracy,
)
from convlab.public import (
    CheckFailed,
    fail,
    image_count,
    image_format,
    image_grid,
    is_fraction,
    is_integer,
    is_integer_list,
    is_label_vector,
    is_shape,
    is_string_list,
    require,
    show,
)

__all__ = [
    "CheckFailed",
    "accuracy_at_least",
    "accuracy_step",
    "adamw_weight_decay",
    "answer_accuracy",
    "answer_close",
    "answer_equals",
    "argmax_labels",
    "batchnorm_after",
    "batchnorm_param_counts",
    "compiled_with",
    "confusion_matrix_of",
    "cosine_schedule_values",
    "counter_correct",
    "describe_layers",
    "dropout_after_dense",
    "fail",
    "feature_map_grid",
    "figure_shows_matrix",
    "fitted_on_training_split",
    "floor",
    "image_count",
    "image_format",
    "image_grid",
    "image_shape",
    "is_fraction",
    "is_integer",
    "is_integer_list",
    "is_label_vector",
    "is_shape",
    "is_string_list",
    "is_trained",
    "layer_output_shapes",
    "layer_sequence",
    "model_size_limit",
    "more_accurate",
    "nin_block_samples",
    "nin_network",
    "optimizer_steps",
    "output_layer",
    "outputs_match_loss",
    "parameterless_layer_types",
    "predicted_labels",
    "pristine",
    "require",
    "same_names",
    "scaled_like_raw",
    "schedule_attached",
    "show",
    "shows_dataset_images",
    "shows_training_images",
    "submitted_model",
    "test_accuracy",
    "threshold",
    "train_accuracy",
    "train_image",
    "train_size",
    "trainable_split",
    "trained_as_prescribed",
    "weights_moved",
]
