"""Checks of matplotlib figures: what the panels actually draw."""

from __future__ import annotations

from typing import Any

import numpy as np

from convlab.checks.data import _prepare, _raw
from convlab.checks.models import _leaf_layers, need_model
from convlab.public import CheckFailed, fail, require
from convlab.public import image_axes as _image_axes


def _drawn(ax: Any) -> np.ndarray:
    return np.asarray(ax.images[-1].get_array(), dtype=np.float64)


def _first_conv_maps(model: Any, image: Any) -> np.ndarray | None:
    import keras

    convs = [layer for layer in _leaf_layers(model) if isinstance(layer, keras.layers.Conv2D)]
    require(bool(convs), "model2: первый свёрточный слой", "слой Conv2D", "его нет")
    try:
        return np.asarray(convs[0](np.asarray(image, dtype=np.float32)))[0]
    except Exception:  # an image of the wrong shape for this model
        return None


def feature_map_grid(fig: Any, model: Any, images: list[Any], name: str = "fig") -> None:
    """The panels draw all channels of the first Conv2D layer's output, one channel per
    panel, for one of the candidate ``images`` (each a batch of one; e.g. the student's own
    image and a freshly loaded copy of it)."""
    need_model(model, "model2")
    # leaf layers: a Conv2D inside a nested block counts (as in the model checks)
    candidates = [m for m in (_first_conv_maps(model, image) for image in images) if m is not None]
    require(bool(candidates), "model2: выход первого свёрточного слоя",
            "карты признаков для выбранного изображения", "слой не применяется к изображению")
    failure: CheckFailed | None = None
    for maps in candidates:
        try:
            _panels_show_channels(fig, maps, name)
            return
        except CheckFailed as error:
            failure = failure or error
    assert failure is not None
    raise failure


def _panels_show_channels(fig: Any, maps: np.ndarray, name: str) -> None:
    channels = maps.shape[-1]
    panels = _image_axes(fig, name)
    require(len(panels) == channels, f"{name}: число панелей", channels, len(panels))
    seen: set[int] = set()
    for number, ax in enumerate(panels):
        drawn = _drawn(ax)
        if drawn.shape != maps.shape[:2]:
            raise fail(f"{name}, панель №{number + 1}: размер изображения",
                       f"{maps.shape[:2]} (карта признаков первого свёрточного слоя)", drawn.shape)
        scale = max(float(np.abs(maps).max()), 1e-6)
        matches = [k for k in range(channels)
                   if np.allclose(drawn, maps[..., k], atol=1e-4 * scale, rtol=1e-4)]
        if not matches:
            raise CheckFailed(
                f"{name}, панель №{number + 1}: ожидался один из {channels} каналов выхода "
                "первого свёрточного слоя model2 для выбранного изображения, получено "
                "изображение, не совпадающее ни с одним каналом."
            )
        # identical channels (e.g. all-zero ReLU maps) match several panels: count a channel
        # not yet shown when there is one
        unseen = [k for k in matches if k not in seen]
        seen.add((unseen or matches)[0])
    require(len(seen) == channels, f"{name}: показанные каналы", f"все {channels} каналов",
            f"{len(seen)} различных")


def train_image(dataset: str, index: int) -> np.ndarray:
    """Training image ``index`` of a fresh load, prepared (a batch of one)."""
    (x_train, _), _ = _raw(dataset)
    return _prepare(x_train[index : index + 1])


def shows_training_images(fig: Any, dataset: str, count: int, name: str = "fig4") -> None:
    """At least ``count`` panels, each an image of the dataset's training split
    (drawn in [0, 1] floats or as uint8 pixels)."""
    (raw_train, _), _ = _raw(dataset)
    panels = _image_axes(fig, name)
    require(len(panels) >= count, f"{name}: число изображений", f"не менее {count}", len(panels))
    for number, ax in enumerate(panels[:count]):
        drawn = _drawn(ax)
        require(drawn.shape == raw_train.shape[1:], f"{name}, панель №{number + 1}: размер",
                raw_train.shape[1:], drawn.shape)
        pixels = np.rint(drawn * 255 if drawn.max() <= 1.0 else drawn).astype(np.int16)
        first_row = np.abs(raw_train[:, 0].astype(np.int16) - pixels[0]) <= 1
        candidates = raw_train[np.all(first_row, axis=tuple(range(1, first_row.ndim)))]
        found = np.any(np.all(np.abs(candidates.astype(np.int16) - pixels) <= 1,
                              axis=tuple(range(1, candidates.ndim))))
        require(bool(found), f"{name}, панель №{number + 1}",
                "изображение из обучающей выборки", "изображение, которого нет в выборке")
