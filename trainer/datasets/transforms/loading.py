"""``LoadImageFromFile``."""

import os.path as osp
from typing import Optional

import cv2
import numpy as np
from PIL import Image

from trainer.registry import TRANSFORMS

from .base import BaseTransform
from .encoded_image import EncodedImage

_CV2_FLAGS = {"color": cv2.IMREAD_COLOR, "grayscale": cv2.IMREAD_GRAYSCALE, "unchanged": cv2.IMREAD_UNCHANGED}


@TRANSFORMS.register_module()
class LoadImageFromFile(BaseTransform):
    """Read ``results['img_path']`` into ``results['img']`` (HxWx3 uint8, BGR like mmcv; HxW if grayscale).

    Also sets ``img_shape`` and ``ori_shape`` to ``(h, w)``.

    Args:
        to_float32 (bool): Return a float32 image instead of uint8. Defaults to False.
        color_type (str): ``'color'``, ``'grayscale'`` or ``'unchanged'``. Defaults to 'color'.
        imdecode_backend (str): ``'cv2'``, ``'pillow'`` or ``'nvjpeg'``: read the file, decode it on the GPU
            in the data preprocessor (``results['img']`` is then an
            :class:`~trainer.datasets.transforms.encoded_image.EncodedImage`; color images only, as uint8).
            Defaults to 'cv2'.
        ignore_empty (bool): Return None (the dataset then picks another sample) when the file is
            missing, instead of raising. Defaults to False.
    """

    def __init__(self, to_float32: bool = False, color_type: str = "color", imdecode_backend: str = "cv2",
                 ignore_empty: bool = False):
        if color_type not in _CV2_FLAGS:
            raise ValueError(f"color_type must be one of {', '.join(_CV2_FLAGS)}, got {color_type!r}")
        if imdecode_backend not in ("cv2", "pillow", "nvjpeg"):
            raise ValueError(f"imdecode_backend must be 'cv2', 'pillow' or 'nvjpeg', got {imdecode_backend!r}")
        if imdecode_backend == "nvjpeg" and (color_type != "color" or to_float32):
            raise ValueError("imdecode_backend='nvjpeg' decodes color images as uint8: color_type must be "
                             "'color' and to_float32 False")
        self.to_float32 = to_float32
        self.color_type = color_type
        self.imdecode_backend = imdecode_backend
        self.ignore_empty = ignore_empty

    def _read(self, path: str) -> np.ndarray:
        if self.imdecode_backend == "nvjpeg":
            with open(path, "rb") as f:
                return EncodedImage.read(f.read(), path)
        if self.imdecode_backend == "cv2":
            img = cv2.imread(path, _CV2_FLAGS[self.color_type])
            if img is None:
                raise OSError(f"cannot decode image {path}")
            return img
        with Image.open(path) as pil:
            if self.color_type == "grayscale":
                return np.asarray(pil.convert("L"))
            if self.color_type == "color":
                return np.ascontiguousarray(np.asarray(pil.convert("RGB"))[..., ::-1])
            img = np.asarray(pil)
            if img.ndim == 3 and img.shape[2] >= 3:  # RGB(A) -> BGR(A), as cv2 reads it
                img = np.concatenate([img[..., 2::-1], img[..., 3:]], axis=2)
            return img

    def transform(self, results: dict) -> Optional[dict]:
        path = results["img_path"]
        if self.ignore_empty and not osp.isfile(path):
            return None
        img = self._read(path)
        if self.to_float32:
            img = img.astype(np.float32)
        results["img"] = img
        results["img_shape"] = img.shape[:2]
        results["ori_shape"] = img.shape[:2]
        return results
