"""``EncodedImage``: an image still to be decoded, on the GPU, with the crops, flips and resizes chosen for it.

With ``LoadImageFromFile(imdecode_backend='nvjpeg')`` (``--gpu-decode``) the data workers read each JPEG
file but do not decode it: the image travels as an :class:`EncodedImage` (the file's bytes and its size,
read from the header). The geometric transforms work on it as on a decoded image: ``img.shape``,
crops and flips by slicing (``img[top:bottom, left:right]``, ``img[:, ::-1]``) and
:func:`~trainer.datasets.transforms.processing.imresize` record what to do, with the same random choices
as for a decoded image. The data preprocessor then decodes the whole batch at once
(:func:`decode_images`: nvJPEG through ``torchvision.io.decode_jpeg`` on CUDA) and applies the recorded
operations to each image on the device.

Files that nvJPEG does not read as they are (not JPEG, CMYK, an EXIF orientation to apply) are decoded
in the worker as usual and carried as pixels, with the same recorded operations.
"""

from __future__ import annotations

import io
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

#: PIL's EXIF tag of the orientation (1 = as stored).
_EXIF_ORIENTATION = 0x0112
#: ``torch.nn.functional.interpolate`` modes of the interpolations that can be done after decoding.
RESIZE_MODES = {"nearest": "nearest", "bilinear": "bilinear", "bicubic": "bicubic", "area": "area"}


class EncodedImage:
    """A JPEG's bytes (or, for files nvJPEG does not take, the decoded BGR pixels) and the operations to
    apply after decoding.

    Args:
        data (np.ndarray): The file's bytes (1-D uint8), or HxWx3 uint8 BGR pixels.
        height (int): Height of the decoded image.
        width (int): Width of the decoded image.
        ops (tuple): Operations recorded so far (see :meth:`apply`). Defaults to ().
    """

    __slots__ = ("data", "height", "width", "ops")

    ndim = 3

    def __init__(self, data: np.ndarray, height: int, width: int, ops: tuple = ()):
        self.data = data
        self.height = height
        self.width = width
        self.ops = ops

    @classmethod
    def read(cls, raw: bytes, path: str = "") -> "EncodedImage":
        """The image of a file's bytes ``raw``: kept encoded when nvJPEG can decode it as it is (a
        baseline or progressive JPEG in RGB or grayscale, no EXIF rotation), else decoded here (cv2,
        BGR, as ``LoadImageFromFile`` does).

        Raises:
            OSError: The bytes are not an image.
        """
        try:
            with Image.open(io.BytesIO(raw)) as pil:
                width, height = pil.size
                as_is = (pil.format == "JPEG" and pil.mode in ("RGB", "L")
                         and pil.getexif().get(_EXIF_ORIENTATION, 1) == 1)
        except Exception:
            as_is = False
        if as_is:
            return cls(np.frombuffer(raw, np.uint8), height, width)
        pixels = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
        if pixels is None:
            raise OSError(f"cannot decode image {path}")
        return cls(pixels, *pixels.shape[:2])

    @property
    def encoded(self) -> bool:
        """Whether :attr:`data` holds the file's bytes (else decoded pixels)."""
        return self.data.ndim == 1

    @property
    def shape(self) -> Tuple[int, int, int]:
        """``(h, w, 3)`` of the image once the recorded operations are applied."""
        height, width = self.height, self.width
        for op in self.ops:
            if op[0] == "crop":
                height, width = op[3], op[4]
            elif op[0] == "resize":
                height, width = op[1], op[2]
        return height, width, 3

    def _with(self, op: tuple) -> "EncodedImage":
        return EncodedImage(self.data, self.height, self.width, self.ops + (op, ))

    def __getitem__(self, key) -> "EncodedImage":
        """Record a crop (``img[top:bottom, left:right]``) or a flip (``img[::-1]``, ``img[:, ::-1]``)."""
        keys = key if isinstance(key, tuple) else (key, )
        if len(keys) > 3 or not all(isinstance(k, slice) for k in keys) or (
                len(keys) == 3 and keys[2] != slice(None)):
            raise TypeError(f"EncodedImage: only crops and flips of the height and width, not {key!r}")
        image = self
        crop = []
        for axis, (k, size) in enumerate(zip(keys, self.shape[:2])):
            start, stop, step = k.indices(size)
            if step == -1 and (start, stop) == (size - 1, -1):
                image = image._with(("flip", axis))
                crop.append((0, size))
            elif step == 1:
                crop.append((start, max(start, stop)))
            else:
                raise TypeError(f"EncodedImage: only crops and whole flips, not {key!r}")
        height, width = self.shape[:2]
        crop += [(0, height), (0, width)][len(crop):]
        (top, bottom), (left, right) = crop
        if (top, bottom, left, right) != (0, height, 0, width):
            image = image._with(("crop", top, left, bottom - top, right - left))
        return image

    def resized(self, size: Tuple[int, int], interpolation: str = "bilinear") -> "EncodedImage":
        """Record a resize to ``size = (w, h)``.

        Raises:
            ValueError: An interpolation that is not done after decoding (``lanczos``).
        """
        if interpolation not in RESIZE_MODES:
            raise ValueError(f"interpolation {interpolation!r} cannot be used with GPU decoding "
                             f"(choose from {', '.join(RESIZE_MODES)})")
        return self._with(("resize", size[1], size[0], interpolation))

    def __reduce__(self):
        return EncodedImage, (self.data, self.height, self.width, self.ops)


def decode_images(images: Sequence[EncodedImage], device) -> List:
    """Decode ``images`` on ``device`` and apply their recorded operations.

    On CUDA the JPEG bytes are decoded together with nvJPEG (``torchvision.io.decode_jpeg``); elsewhere
    with OpenCV (what the tests use). Pixels decoded by the workers are copied over.

    Returns:
        list[torch.Tensor]: CHW uint8 tensors on ``device``, channels in RGB order.
    """
    import torch

    device = torch.device(device)
    decoded: List[Optional["torch.Tensor"]] = [None] * len(images)
    encoded = [i for i, image in enumerate(images) if image.encoded]
    if encoded and device.type == "cuda":
        from torchvision.io import ImageReadMode, decode_jpeg

        data = [torch.from_numpy(images[i].data.copy()) for i in encoded]
        for i, image in zip(encoded, decode_jpeg(data, mode=ImageReadMode.RGB, device=device)):
            decoded[i] = image
    for i, image in enumerate(images):
        if decoded[i] is None:
            pixels = cv2.imdecode(image.data, cv2.IMREAD_COLOR) if image.encoded else image.data
            decoded[i] = torch.from_numpy(np.ascontiguousarray(pixels[..., ::-1])).permute(2, 0, 1).to(device)
    return [apply_ops(tensor, image.ops) for tensor, image in zip(decoded, images)]


def apply_ops(image, ops: Sequence[tuple]):
    """Apply recorded operations to a CHW uint8 tensor: crops, flips, resizes (rounded back to uint8)."""
    import torch.nn.functional as F

    for op in ops:
        if op[0] == "crop":
            _, top, left, height, width = op
            image = image[:, top:top + height, left:left + width]
        elif op[0] == "flip":
            image = image.flip(-2 if op[1] == 0 else -1)
        else:
            _, height, width, interpolation = op
            mode = RESIZE_MODES[interpolation]
            extra = dict(align_corners=False) if mode in ("bilinear", "bicubic") else {}
            resized = F.interpolate(image[None].float(), size=(height, width), mode=mode, **extra)[0]
            image = resized.round_().clamp_(0, 255).to(image.dtype)
    return image
