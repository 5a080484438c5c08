"""``PackInputs``: turn a sample dict into the model's ``inputs`` tensor and a :class:`DataSample`."""

from typing import Sequence

import numpy as np
import torch
from PIL import Image

from trainer.registry import TRANSFORMS
from trainer.structures import DataSample

from .base import BaseTransform
from .encoded_image import EncodedImage


@TRANSFORMS.register_module()
class PackInputs(BaseTransform):
    """Pack a sample for the model (MMPretrain's).

    ``inputs`` is ``results[input_key]`` as a CHW tensor of the image's dtype (uint8 stays uint8: the
    data preprocessor casts and normalizes whole batches); ``data_samples`` is a :class:`DataSample` with
    ``gt_label`` / ``gt_score`` when present, the ``algorithm_keys`` as data fields and the ``meta_keys``
    as meta information.

    Args:
        input_key (str): Key of the image. Defaults to 'img'.
        algorithm_keys (Sequence[str]): Extra keys to copy as data fields. Defaults to ().
        meta_keys (Sequence[str]): Keys to copy as meta information. Defaults to
            ``('sample_idx', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
            'flip_direction')``.
    """

    DEFAULT_META_KEYS = ("sample_idx", "img_path", "ori_shape", "img_shape", "scale_factor", "flip",
                         "flip_direction")

    def __init__(self, input_key: str = "img", algorithm_keys: Sequence[str] = (),
                 meta_keys: Sequence[str] = DEFAULT_META_KEYS):
        self.input_key = input_key
        self.algorithm_keys = tuple(algorithm_keys)
        self.meta_keys = tuple(meta_keys)

    @staticmethod
    def format_input(value):
        """An image (HxW, HxWxC array, PIL image or tensor) or a list of them -> CHW tensor(s); an
        :class:`EncodedImage` stays as it is (the data preprocessor decodes it)."""
        if isinstance(value, EncodedImage):
            return value
        if isinstance(value, (list, tuple)):
            return [PackInputs.format_input(v) for v in value]
        if isinstance(value, Image.Image):
            value = np.asarray(value)
        if isinstance(value, np.ndarray):
            if value.ndim == 2:
                value = value[..., None]
            return torch.from_numpy(np.ascontiguousarray(value.transpose(2, 0, 1)))
        if isinstance(value, torch.Tensor):
            return value
        raise TypeError(f"Unsupported input type {type(value)}.")

    def transform(self, results: dict) -> dict:
        packed = {}
        if self.input_key in results:
            packed["inputs"] = self.format_input(results[self.input_key])
        sample = DataSample()
        if "gt_label" in results:
            sample.set_gt_label(results["gt_label"])
        if "gt_score" in results:
            sample.set_gt_score(results["gt_score"])
        for key in self.algorithm_keys:
            if key in results:
                sample.set_field(results[key], key)
        sample.set_metainfo({k: results[k] for k in self.meta_keys if k in results})
        packed["data_samples"] = sample
        return packed
