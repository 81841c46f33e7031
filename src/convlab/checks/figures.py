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


#: feature-map figures show the first channels of the first convolution, at most this many
MAX_MAPS = 16
#: a panel shows a channel when their values agree up to an increasing affine map (imshow's
#: per-panel normalization, any vmin/vmax) or an increasing monotone one (a colour scale)
AFFINE_CORRELATION = 0.999
RANK_CORRELATION = 0.99
#: shortlist threshold of the search over the dataset (correlation with one drawn panel)
SEARCH_CORRELATION = 0.9


def _first_conv(model: Any, name: str) -> Any:
    import keras

    need_model(model, name)
    convs = [layer for layer in _leaf_layers(model) if isinstance(layer, keras.layers.Conv2D)]
    require(bool(convs), f"{name}: первый свёрточный слой", "слой Conv2D", "его нет")
    return convs[0]


def _map_variants(conv: Any, images: np.ndarray) -> list[np.ndarray]:
    """What "the output of the first convolution" may be drawn as, for a batch of images:
    the layer's output, and its pre-activation output with and without a ReLU (when the
    activation is a separate layer)."""
    import keras

    x = np.asarray(images, dtype=np.float32)
    post = np.asarray(conv(x))
    variants = [post]
    try:
        pre = keras.ops.conv(x, conv.kernel, strides=conv.strides, padding=conv.padding,
                             data_format=conv.data_format, dilation_rate=conv.dilation_rate)
        if conv.use_bias:
            pre = pre + conv.bias
        pre = np.asarray(pre)
    except Exception:  # an unusual configuration: the layer's output only
        return variants
    for candidate in (pre, np.maximum(pre, 0)):
        if candidate.shape == post.shape and not any(
                np.allclose(candidate, v, atol=1e-6) for v in variants):
            variants.append(candidate)
    return variants


def _dense_rank(values: np.ndarray) -> np.ndarray:
    return np.unique(values, return_inverse=True)[1].astype(np.float64)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / denominator if denominator > 0 else 0.0


def _same_picture(drawn: np.ndarray, channel: np.ndarray) -> bool:
    """``drawn`` is ``channel`` up to an increasing affine or monotone rescaling."""
    flat_drawn, flat_map = drawn.reshape(-1), channel.reshape(-1).astype(np.float64)
    if not np.all(np.isfinite(flat_drawn)):
        return False
    drawn_flat = np.ptp(flat_drawn) == 0
    map_flat = np.ptp(flat_map) <= 1e-7 * max(float(np.abs(flat_map).max()), 1.0)
    if drawn_flat or map_flat:
        return bool(drawn_flat and map_flat)
    if _correlation(flat_drawn, flat_map) >= AFFINE_CORRELATION:
        return True
    return _correlation(_dense_rank(flat_drawn), _dense_rank(flat_map)) >= RANK_CORRELATION


def _panels_show_channels(panels: list[Any], maps: np.ndarray, name: str) -> None:
    channels = maps.shape[-1]
    wanted = min(channels, MAX_MAPS)
    seen: set[int] = set()
    for number, ax in enumerate(panels):
        drawn = _drawn(ax)
        if drawn.shape != maps.shape[:2]:
            raise fail(f"{name}, панель №{number + 1}: размер изображения",
                       f"{maps.shape[:2]} (карта признаков первого свёрточного слоя)", drawn.shape)
        matches = [k for k in range(channels) if _same_picture(drawn, maps[..., k])]
        if not matches:
            raise fail(f"{name}, панель №{number + 1}",
                       f"один из {channels} каналов выхода первого свёрточного слоя model2 для "
                       "выбранного изображения (в любом масштабе яркости)",
                       "изображение, не совпадающее ни с одним каналом")
        # identical channels (e.g. all-zero ReLU maps) match several panels: count a channel
        # not yet shown when there is one
        unseen = [k for k in matches if k not in seen]
        seen.add((unseen or matches)[0])
    require(len(seen) == wanted, f"{name}: показанные каналы",
            f"{wanted} различных каналов", f"{len(seen)} различных")


def _sampled_maps(conv: Any, pool: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                  scale: float = 1 / 255) -> np.ndarray:
    """Pre-activation outputs of ``conv`` (stride 1, no dilation) at the map positions
    (``rows``, ``cols``) for every image of ``pool``: an (N, positions, filters) array, computed
    from the input windows alone (cheap: no full convolution of the dataset)."""
    kh, kw = (int(v) for v in conv.kernel_size)
    if conv.padding == "same":
        top, left = (kh - 1) // 2, (kw - 1) // 2
        pad = [(0, 0), (top, kh - 1 - top), (left, kw - 1 - left)] + [(0, 0)] * (pool.ndim - 3)
        pool = np.pad(pool, pad)
    di, dj = np.meshgrid(np.arange(kh), np.arange(kw), indexing="ij")
    windows = pool[:, rows[:, None, None] + di, cols[:, None, None] + dj, ...]
    if windows.dtype == np.uint8:  # raw pixels: prepare only the windows (as _prepare does)
        windows = (windows * scale).astype(np.float32)
    kernel = np.asarray(conv.kernel, dtype=np.float32)
    out = windows.reshape(len(pool), len(rows), -1) @ kernel.reshape(-1, kernel.shape[-1])
    if conv.use_bias:
        out += np.asarray(conv.bias, dtype=np.float32)
    return out


def _shortlist(conv: Any, panel: np.ndarray, pool: np.ndarray, limit: int = 8,
               chunk: int = 5000, positions: int = 64, scale: float = 1 / 255) -> list[int]:
    """Indices of the images of ``pool`` (raw pixels of a split) of which some channel of the
    first convolution (before or after its activation) correlates with the drawn ``panel`` at a
    fixed sample of positions (best first). Only for stride-1, undilated, channels-last
    convolutions."""
    if (tuple(conv.strides) != (1, 1) or tuple(conv.dilation_rate) != (1, 1)
            or conv.data_format != "channels_last"):
        return []
    kh, kw = (int(v) for v in conv.kernel_size)
    height, width = pool.shape[1:3]
    expected = (height, width) if conv.padding == "same" else (height - kh + 1, width - kw + 1)
    if panel.shape != expected:
        return []
    rng = np.random.default_rng(0)  # the grader's own, fixed sample of positions
    flat = panel.reshape(-1)
    varied = np.flatnonzero(flat != np.median(flat))
    picks = np.concatenate([rng.choice(varied, min(len(varied), positions // 2), replace=False),
                            rng.choice(flat.size, positions // 2, replace=False)])
    picks = np.unique(picks)
    rows, cols = np.divmod(picks, panel.shape[1])
    target = flat[picks].astype(np.float32)
    if np.ptp(target) == 0:
        return []
    target = (target - target.mean()) / np.sqrt(((target - target.mean()) ** 2).sum())
    activation = getattr(conv, "activation", None)
    found: list[tuple[float, int]] = []
    for start in range(0, len(pool), chunk):
        pre = _sampled_maps(conv, pool[start : start + chunk], rows, cols, scale)
        variants = [pre, np.maximum(pre, 0)]
        name = getattr(activation, "__name__", "")
        if activation is not None and name not in ("relu", "linear", ""):
            try:
                variants.append(np.asarray(activation(pre)))
            except Exception:  # an activation that numpy arrays do not go through
                pass
        best = np.full(len(pre), -1.0, dtype=np.float32)
        for maps in variants:
            centred = maps - maps.mean(axis=1, keepdims=True)
            spread = np.sqrt((centred * centred).sum(axis=1))
            score = np.einsum("npc,p->nc", centred, target) / np.maximum(spread, 1e-12)
            best = np.maximum(best, score.max(axis=1))
        for index in np.flatnonzero(best >= SEARCH_CORRELATION):
            found.append((float(best[index]), start + int(index)))
    found.sort(key=lambda item: (-item[0], item[1]))
    return [i for _, i in found[:limit]]


def feature_map_grid(fig: Any, model: Any, images: list[Any] | None = None, name: str = "fig",
                     dataset: str | None = "mnist") -> None:
    """The panels draw the first channels (all of them, at most :data:`MAX_MAPS`) of the first
    Conv2D layer's output for one image, one distinct channel per panel, each at any display
    scaling. The image is one of the candidate ``images`` (each a batch of one) or any image
    of the training or test split of ``dataset`` (found by the check)."""
    conv = _first_conv(model, "model2")
    panels = _image_axes(fig, name)
    channels = int(conv.filters)
    wanted = min(channels, MAX_MAPS)
    require(len(panels) == wanted, f"{name}: число панелей с картами признаков",
            f"{wanted} (каналы первого свёрточного слоя"
            + (f", первые {MAX_MAPS} из {channels})" if channels > MAX_MAPS else ")"), len(panels))
    candidates = [np.asarray(image, dtype=np.float32) for image in images or []
                  if image is not None and np.ndim(image) == 4 and len(image) == 1]
    failure: CheckFailed | None = None
    tried = 0

    def attempt(batch: np.ndarray) -> bool:
        nonlocal failure, tried
        try:
            variants = _map_variants(conv, batch)
        except Exception:  # an image of the wrong shape for this model
            return False
        for maps in variants:
            tried += 1
            try:
                _panels_show_channels(panels, maps[0], name)
                return True
            except CheckFailed as error:
                failure = failure or error
        return False

    if any(attempt(batch) for batch in candidates):
        return
    if dataset is not None:
        drawn = [_drawn(ax) for ax in panels]
        informative = [d for d in drawn if d.ndim == 2 and np.all(np.isfinite(d)) and np.ptp(d) > 0]
        if informative:
            panel = max(informative, key=lambda d: float(np.std(d)))
            (x_train, _), (x_test, _) = _raw(dataset)
            # the images as the check prepares them, or left in 0..255 (as a student who did not
            # scale them fed them to the model)
            for scale in (1 / 255, 1.0):
                for raw in (x_train, x_test):
                    for i in _shortlist(conv, panel, raw, scale=scale):
                        image = _prepare(raw[i : i + 1])
                        if attempt(image if scale != 1.0 else image * np.float32(255)):
                            return
    if failure is not None:
        raise failure
    raise fail(f"{name}: карты признаков", "выходы первого свёрточного слоя model2 для одного "
               "изображения обучающей или тестовой выборки",
               "ни одно изображение выборки не даёт таких карт")


def train_image(dataset: str, index: int) -> np.ndarray:
    """Training image ``index`` of a fresh load, prepared (a batch of one)."""
    (x_train, _), _ = _raw(dataset)
    return _prepare(x_train[index : index + 1])


def _find_image(pixels: np.ndarray, raw: np.ndarray) -> int | None:
    first_row = np.abs(raw[:, 0].astype(np.int16) - pixels[0]) <= 1
    rows = np.flatnonzero(np.all(first_row, axis=tuple(range(1, first_row.ndim))))
    for index in rows:
        if np.all(np.abs(raw[index].astype(np.int16) - pixels) <= 1):
            return int(index)
    return None


def shows_dataset_images(fig: Any, dataset: str, count: int, name: str = "fig4") -> None:
    """Exactly ``count`` image panels, in any layout, each a different image of the dataset's
    training or test split (drawn as [0, 1] floats or as 0..255 pixels)."""
    (raw_train, _), (raw_test, _) = _raw(dataset)
    panels = _image_axes(fig, name)
    require(len(panels) == count, f"{name}: число изображений", count, len(panels))
    shown: list[np.ndarray] = []
    for number, ax in enumerate(panels):
        drawn = _drawn(ax)
        require(drawn.shape == raw_train.shape[1:], f"{name}, панель №{number + 1}: размер",
                raw_train.shape[1:], drawn.shape)
        if not np.all(np.isfinite(drawn)):
            raise fail(f"{name}, панель №{number + 1}", "изображение выборки", "нечисловые значения")
        pixels = np.rint(drawn * 255 if drawn.max() <= 1.0 else drawn).astype(np.int16)
        found = _find_image(pixels, raw_train) is not None or _find_image(pixels, raw_test) is not None
        require(found, f"{name}, панель №{number + 1}",
                "изображение из обучающей или тестовой выборки",
                "изображение, которого нет в выборке")
        for other, previous in enumerate(shown):
            require(not np.all(np.abs(previous - pixels) <= 1), f"{name}, панель №{number + 1}",
                    f"изображение, отличное от остальных ({count} разных изображений)",
                    f"то же изображение, что на панели №{other + 1}")
        shown.append(pixels)


#: the former name (it now accepts test images too, and wants them distinct)
shows_training_images = shows_dataset_images
