"""Geometric transforms: resize, crops and flips (MMPretrain / mmcv names and arguments).

Images are HxW or HxWxC numpy arrays. Random choices come from :func:`get_rng` (``results['rng']`` if
present, else numpy's global state).
"""

import math
from numbers import Number
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from PIL import Image

from trainer.registry import TRANSFORMS

from .base import BaseTransform, get_rng, randint
from .encoded_image import EncodedImage

_CV2_INTERP = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC,
               "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4}
_PIL_INTERP = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
               "area": Image.BOX, "box": Image.BOX, "lanczos": Image.LANCZOS, "hamming": Image.HAMMING}
_PAD_MODES = ("constant", "edge", "reflect", "symmetric")


def _check_resize_args(interpolation: str, backend: str) -> None:
    if backend not in ("cv2", "pillow"):
        raise ValueError(f"backend must be 'cv2' or 'pillow', got {backend!r}")
    table = _CV2_INTERP if backend == "cv2" else _PIL_INTERP
    if interpolation not in table:
        raise ValueError(f"interpolation {interpolation!r} is not supported by the {backend} backend "
                         f"(choose from {', '.join(table)})")


def imresize(img: np.ndarray, size: Tuple[int, int], interpolation: str = "bilinear",
             backend: str = "cv2") -> np.ndarray:
    """Resize ``img`` to ``size = (w, h)`` with cv2 or Pillow (Pillow: uint8 images only); an
    :class:`EncodedImage` records the resize, done after decoding on the GPU."""
    if isinstance(img, EncodedImage):
        return img.resized(size, interpolation)
    if backend == "cv2":
        out = cv2.resize(img, size, interpolation=_CV2_INTERP[interpolation])
        return out[..., None] if img.ndim == 3 and out.ndim == 2 else out  # cv2 drops a channel axis of 1
    if img.ndim == 3 and img.shape[2] == 1:
        return imresize(img[..., 0], size, interpolation, backend)[..., None]
    return np.asarray(Image.fromarray(img).resize(size, _PIL_INTERP[interpolation]))


def impad(img: np.ndarray, padding: Tuple[int, int, int, int], pad_val: Union[Number, Sequence[Number]] = 0,
          padding_mode: str = "constant") -> np.ndarray:
    """Pad ``img`` by ``padding = (left, top, right, bottom)``.

    Args:
        img (np.ndarray): HxW or HxWxC image.
        padding (tuple[int]): Pixels added on each side.
        pad_val (Number | Sequence[Number]): Fill value (one per channel allowed) for ``'constant'``.
            Defaults to 0.
        padding_mode (str): ``'constant'``, ``'edge'``, ``'reflect'`` or ``'symmetric'``.
            Defaults to 'constant'.

    Raises:
        TypeError: ``img`` is an :class:`EncodedImage` (padding is not done after GPU decoding).
    """
    if isinstance(img, EncodedImage):
        raise TypeError("padding cannot be used with GPU decoding (--gpu-decode): pad after the crop, or "
                        "decode on the CPU")
    left, top, right, bottom = padding
    if padding_mode != "constant":
        widths = ((top, bottom), (left, right)) + ((0, 0), ) * (img.ndim - 2)
        return np.pad(img, widths, mode=padding_mode)
    h, w = img.shape[:2]
    out = np.empty((h + top + bottom, w + left + right) + img.shape[2:], dtype=img.dtype)
    out[...] = np.asarray(pad_val, dtype=img.dtype)
    out[top:top + h, left:left + w] = img
    return out


def _padding_4(padding: Union[int, Sequence[int]]) -> Tuple[int, int, int, int]:
    if isinstance(padding, int):
        return (padding, ) * 4
    if len(padding) == 2:
        return (padding[0], padding[1], padding[0], padding[1])
    if len(padding) == 4:
        return tuple(padding)
    raise ValueError(f"padding must be an int or a sequence of 2 or 4 ints, got {padding!r}")


def _pair(size: Union[int, Sequence[int]], name: str) -> Tuple[int, int]:
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or min(pair) <= 0:
        raise ValueError(f"{name} must be a positive int or a pair of them, got {size!r}")
    return pair


@TRANSFORMS.register_module()
class Resize(BaseTransform):
    """Resize to a fixed size, or by a factor (mmcv's ``Resize`` for images).

    Args:
        scale (int | tuple[int, int], optional): Target ``(w, h)``; an int means square. With
            ``keep_ratio``, the largest size that fits in ``scale`` (long edge <= max, short edge <= min).
            Defaults to None.
        scale_factor (float | tuple[float, float], optional): Resize factor, used when ``scale`` is None.
            Defaults to None.
        keep_ratio (bool): Keep the aspect ratio. Defaults to False.
        backend (str): ``'cv2'`` or ``'pillow'``. Defaults to 'cv2'.
        interpolation (str): ``'nearest'``, ``'bilinear'``, ``'bicubic'``, ``'area'``, ``'lanczos'``.
            Defaults to 'bilinear'.
    """

    def __init__(self, scale: Optional[Union[int, Tuple[int, int]]] = None,
                 scale_factor: Optional[Union[float, Tuple[float, float]]] = None, keep_ratio: bool = False,
                 backend: str = "cv2", interpolation: str = "bilinear"):
        if (scale is None) == (scale_factor is None):
            raise ValueError("Resize: give exactly one of `scale` and `scale_factor`")
        _check_resize_args(interpolation, backend)
        self.scale = None if scale is None else _pair(scale, "scale")
        self.scale_factor = scale_factor
        self.keep_ratio = keep_ratio
        self.backend = backend
        self.interpolation = interpolation

    def _target_size(self, h: int, w: int) -> Tuple[int, int]:
        if self.scale is None:
            fw, fh = (self.scale_factor, ) * 2 if isinstance(self.scale_factor, Number) else self.scale_factor
            if self.keep_ratio:
                fh = fw = min(fw, fh)
            return int(w * fw + 0.5), int(h * fh + 0.5)
        if not self.keep_ratio:
            return self.scale
        factor = min(max(self.scale) / max(h, w), min(self.scale) / min(h, w))
        return int(w * factor + 0.5), int(h * factor + 0.5)

    def transform(self, results: dict) -> dict:
        img = results["img"]
        h, w = img.shape[:2]
        new_w, new_h = self._target_size(h, w)
        results["img"] = imresize(img, (new_w, new_h), self.interpolation, self.backend)
        results["img_shape"] = (new_h, new_w)
        results["scale"] = (new_w, new_h)
        results["scale_factor"] = (new_w / w, new_h / h)
        results["keep_ratio"] = self.keep_ratio
        return results


@TRANSFORMS.register_module()
class ResizeEdge(BaseTransform):
    """Resize so that one edge has length ``scale``, keeping the aspect ratio (MMPretrain's).

    Args:
        scale (int): Target length of the edge.
        edge (str): ``'short'``, ``'long'``, ``'width'`` or ``'height'``. Defaults to 'short'.
        backend (str): ``'cv2'`` or ``'pillow'``. Defaults to 'cv2'.
        interpolation (str): Interpolation method. Defaults to 'bilinear'.
    """

    def __init__(self, scale: int, edge: str = "short", backend: str = "cv2", interpolation: str = "bilinear"):
        if edge not in ("short", "long", "width", "height"):
            raise ValueError(f"edge must be 'short', 'long', 'width' or 'height', got {edge!r}")
        _check_resize_args(interpolation, backend)
        self.scale = scale
        self.edge = edge
        self.backend = backend
        self.interpolation = interpolation

    def transform(self, results: dict) -> dict:
        img = results["img"]
        h, w = img.shape[:2]
        if (self.edge == "short" and w < h) or (self.edge == "long" and w > h) or self.edge == "width":
            new_w, new_h = self.scale, int(self.scale * h / w)
        else:
            new_w, new_h = int(self.scale * w / h), self.scale
        results["img"] = imresize(img, (new_w, new_h), self.interpolation, self.backend)
        results["img_shape"] = (new_h, new_w)
        results["scale"] = (new_w, new_h)
        results["scale_factor"] = (new_w / w, new_h / h)
        return results


@TRANSFORMS.register_module()
class RandomCrop(BaseTransform):
    """Crop a random ``crop_size`` window, after optional padding (MMPretrain's).

    Args:
        crop_size (int | Sequence[int]): Output ``(h, w)``; an int means square.
        padding (int | Sequence[int], optional): Padding added first: an int for all sides, 2 values
            (left/right, top/bottom) or 4 (left, top, right, bottom). Defaults to None.
        pad_if_needed (bool): Pad images smaller than ``crop_size`` (centred) instead of returning a
            smaller crop. Defaults to False.
        pad_val (Number | Sequence[Number]): Fill value for ``'constant'`` padding (one per channel
            allowed). Defaults to 0.
        padding_mode (str): ``'constant'``, ``'edge'``, ``'reflect'`` or ``'symmetric'`` (used for both
            kinds of padding). Defaults to 'constant'.
    """

    def __init__(self, crop_size: Union[int, Sequence[int]], padding: Optional[Union[int, Sequence[int]]] = None,
                 pad_if_needed: bool = False, pad_val: Union[Number, Sequence[Number]] = 0,
                 padding_mode: str = "constant"):
        if padding_mode not in _PAD_MODES:
            raise ValueError(f"padding_mode must be one of {', '.join(_PAD_MODES)}, got {padding_mode!r}")
        self.crop_size = _pair(crop_size, "crop_size")
        self.padding = None if padding is None else _padding_4(padding)
        self.pad_if_needed = pad_if_needed
        self.pad_val = pad_val
        self.padding_mode = padding_mode

    def transform(self, results: dict) -> dict:
        img = results["img"]
        if self.padding is not None:
            img = impad(img, self.padding, self.pad_val, self.padding_mode)
        target_h, target_w = self.crop_size
        if self.pad_if_needed:
            h_pad = math.ceil(max(0, target_h - img.shape[0]) / 2)
            w_pad = math.ceil(max(0, target_w - img.shape[1]) / 2)
            if h_pad or w_pad:
                img = impad(img, (w_pad, h_pad, w_pad, h_pad), self.pad_val, self.padding_mode)
        h, w = img.shape[:2]
        target_h, target_w = min(h, target_h), min(w, target_w)
        rng = get_rng(results)
        top = randint(rng, 0, h - target_h + 1)
        left = randint(rng, 0, w - target_w + 1)
        img = img[top:top + target_h, left:left + target_w]
        results["img"] = img
        results["img_shape"] = img.shape[:2]
        return results


@TRANSFORMS.register_module()
class RandomResizedCrop(BaseTransform):
    """Crop a random area and aspect ratio, then resize to ``scale`` (the Inception crop; MMPretrain's).

    Args:
        scale (int | Sequence[int]): Output ``(h, w)``; an int means square.
        crop_ratio_range (tuple[float, float]): Range of the crop area relative to the image.
            Defaults to (0.08, 1.0).
        aspect_ratio_range (tuple[float, float]): Range of the crop's aspect ratio (w/h), sampled
            log-uniformly. Defaults to (3/4, 4/3).
        max_attempts (int): Tries before falling back to a central crop. Defaults to 10.
        interpolation (str): Interpolation method. Defaults to 'bilinear'.
        backend (str): ``'cv2'`` or ``'pillow'``. Defaults to 'cv2'.
    """

    def __init__(self, scale: Union[int, Sequence[int]], crop_ratio_range: Tuple[float, float] = (0.08, 1.0),
                 aspect_ratio_range: Tuple[float, float] = (3. / 4., 4. / 3.), max_attempts: int = 10,
                 interpolation: str = "bilinear", backend: str = "cv2"):
        if crop_ratio_range[0] > crop_ratio_range[1] or aspect_ratio_range[0] > aspect_ratio_range[1]:
            raise ValueError("range should be of kind (min, max). But received crop_ratio_range "
                             f"{crop_ratio_range} and aspect_ratio_range {aspect_ratio_range}.")
        if not isinstance(max_attempts, int) or max_attempts < 0:
            raise ValueError("max_attempts must be an int >= 0")
        _check_resize_args(interpolation, backend)
        self.scale = _pair(scale, "scale")
        self.crop_ratio_range = tuple(crop_ratio_range)
        self.aspect_ratio_range = tuple(aspect_ratio_range)
        self.max_attempts = max_attempts
        self.interpolation = interpolation
        self.backend = backend

    def crop_params(self, h: int, w: int, rng) -> Tuple[int, int, int, int]:
        """``(top, left, crop_h, crop_w)`` of the crop for an ``h`` x ``w`` image."""
        area = h * w
        log_ratio = (math.log(self.aspect_ratio_range[0]), math.log(self.aspect_ratio_range[1]))
        for _ in range(self.max_attempts):
            target_area = rng.uniform(*self.crop_ratio_range) * area
            aspect_ratio = math.exp(rng.uniform(*log_ratio))
            target_w = int(round(math.sqrt(target_area * aspect_ratio)))
            target_h = int(round(math.sqrt(target_area / aspect_ratio)))
            if 0 < target_w <= w and 0 < target_h <= h:
                return randint(rng, 0, h - target_h + 1), randint(rng, 0, w - target_w + 1), target_h, target_w
        in_ratio = w / h  # fallback: the largest central crop within the aspect ratio range
        if in_ratio < self.aspect_ratio_range[0]:
            target_w, target_h = w, int(round(w / self.aspect_ratio_range[0]))
        elif in_ratio > self.aspect_ratio_range[1]:
            target_h, target_w = h, int(round(h * self.aspect_ratio_range[1]))
        else:
            target_h, target_w = h, w
        return (h - target_h) // 2, (w - target_w) // 2, target_h, target_w

    def transform(self, results: dict) -> dict:
        img = results["img"]
        top, left, ch, cw = self.crop_params(*img.shape[:2], get_rng(results))
        img = imresize(img[top:top + ch, left:left + cw], (self.scale[1], self.scale[0]), self.interpolation,
                       self.backend)
        results["img"] = img
        results["img_shape"] = img.shape[:2]
        return results


@TRANSFORMS.register_module()
class CenterCrop(BaseTransform):
    """Crop the central ``crop_size`` window (mmcv's; note ``crop_size`` is ``(w, h)`` here).

    Args:
        crop_size (int | tuple[int, int]): Output ``(w, h)``; an int means square.
        auto_pad (bool): Pad (bottom/right, with 0) images smaller than ``crop_size`` first; otherwise the
            crop is clipped to the image. Defaults to False.
    """

    def __init__(self, crop_size: Union[int, Tuple[int, int]], auto_pad: bool = False):
        self.crop_size = _pair(crop_size, "crop_size")
        self.auto_pad = auto_pad

    def transform(self, results: dict) -> dict:
        img = results["img"]
        crop_w, crop_h = self.crop_size
        h, w = img.shape[:2]
        if self.auto_pad and (h < crop_h or w < crop_w):
            img = impad(img, (0, 0, max(0, crop_w - w), max(0, crop_h - h)))
            h, w = img.shape[:2]
        top = max(0, int(round((h - crop_h) / 2.0)))
        left = max(0, int(round((w - crop_w) / 2.0)))
        img = img[top:top + crop_h, left:left + crop_w]
        results["img"] = img
        results["img_shape"] = img.shape[:2]
        return results


@TRANSFORMS.register_module()
class RandomFlip(BaseTransform):
    """Flip with probability ``prob`` (mmcv's ``RandomFlip`` for images).

    Sets ``flip`` (bool) and ``flip_direction`` (str or None).

    Args:
        prob (float | list[float], optional): Flip probability; with a list of directions, either one
            total probability (split evenly) or one per direction. Defaults to None (never flip).
        direction (str | list[str]): ``'horizontal'``, ``'vertical'`` or ``'diagonal'``, or a list of
            them. Defaults to 'horizontal'.
    """

    DIRECTIONS = ("horizontal", "vertical", "diagonal")

    def __init__(self, prob: Optional[Union[float, Sequence[float]]] = None,
                 direction: Union[str, Sequence[str]] = "horizontal"):
        directions = [direction] if isinstance(direction, str) else list(direction)
        for d in directions:
            if d not in self.DIRECTIONS:
                raise ValueError(f"direction must be one of {', '.join(self.DIRECTIONS)}, got {d!r}")
        if prob is None:
            probs = [0.0] * len(directions)
        elif isinstance(prob, Number):
            probs = [float(prob) / len(directions)] * len(directions)
        else:
            if isinstance(direction, str) or len(prob) != len(directions):
                raise ValueError("RandomFlip: a list of probs needs a list of directions of the same length")
            probs = [float(p) for p in prob]
        if any(p < 0 for p in probs) or sum(probs) > 1 + 1e-6:
            raise ValueError(f"RandomFlip: probabilities must be >= 0 and sum to <= 1, got {prob!r}")
        self.prob = prob
        self.direction = direction
        self._choices: List[Tuple[str, float]] = list(zip(directions, probs))

    def choose_direction(self, rng) -> Optional[str]:
        """A direction with its probability, or None (no flip)."""
        u, acc = rng.random(), 0.0
        for direction, p in self._choices:
            acc += p
            if u < acc:
                return direction
        return None

    def transform(self, results: dict) -> dict:
        direction = self.choose_direction(get_rng(results))
        results["flip"] = direction is not None
        results["flip_direction"] = direction
        if direction is not None:
            img = results["img"]
            if direction == "horizontal":
                img = img[:, ::-1]
            elif direction == "vertical":
                img = img[::-1]
            else:
                img = img[::-1, ::-1]
            results["img"] = img
        return results
