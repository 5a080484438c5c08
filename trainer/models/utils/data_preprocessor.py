"""``ClsDataPreprocessor``: batch, move to device, BGR->RGB, normalize (MMPretrain's, without batch augments);
and decode the images on the device where the data workers left them encoded (``--gpu-decode``)."""

import math
from numbers import Number
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor, stack_batch

from trainer.datasets.transforms.encoded_image import EncodedImage, decode_images
from trainer.registry import MODELS
from trainer.structures import DataSample


@MODELS.register_module()
class ClsDataPreprocessor(BaseDataPreprocessor):
    """Image pre-processor for classification.

    Stacks the per-sample ``uint8`` CHW tensors of a batch (padding them to a common size if they differ),
    moves the batch to the model's device, converts BGR to RGB, casts to float and normalizes; labels of
    the data samples move to the device too. Normalization runs on the batch, on the device: cheaper than
    per sample in the data workers. Encoded images (:class:`EncodedImage`, from
    ``LoadImageFromFile(imdecode_backend='nvjpeg')``) are decoded on the device first, with the crops,
    flips and resizes the pipeline chose for them.

    Args:
        mean (Sequence[Number], optional): Per-channel mean (R, G, B), in pixel units (0..255). Defaults to
            None: no normalization.
        std (Sequence[Number], optional): Per-channel standard deviation; required with ``mean``.
            Defaults to None.
        pad_size_divisor (int): Pad height and width up to a multiple of this. Defaults to 1.
        pad_value (Number): Value of the padded pixels. Defaults to 0.
        to_rgb (bool): Flip the channel order of 3-channel inputs (images are loaded BGR, like mmcv).
            Defaults to False.
        to_onehot (bool): Also set one-hot ``gt_score`` on the data samples (needs ``num_classes``).
            Defaults to False.
        num_classes (int, optional): Number of classes, for ``to_onehot``. Defaults to None.
        non_blocking (bool): Copy to the device without the host waiting for the copy (mmengine's
            argument): the host goes on queueing work. Safe for copies to the device, from pinned
            memory or not. Defaults to True (mmengine's default is False).
    """

    def __init__(self,
                 mean: Optional[Sequence[Number]] = None,
                 std: Optional[Sequence[Number]] = None,
                 pad_size_divisor: int = 1,
                 pad_value: Number = 0,
                 to_rgb: bool = False,
                 to_onehot: bool = False,
                 num_classes: Optional[int] = None,
                 non_blocking: bool = True):
        super().__init__(non_blocking=non_blocking)
        self.pad_size_divisor = pad_size_divisor
        self.pad_value = pad_value
        self.to_rgb = to_rgb
        self.to_onehot = to_onehot
        self.num_classes = num_classes
        if to_onehot and num_classes is None:
            raise ValueError("ClsDataPreprocessor: to_onehot=True needs num_classes.")
        if mean is not None:
            if std is None:
                raise ValueError("ClsDataPreprocessor: to normalize, give both mean and std.")
            self._enable_normalize = True
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1), False)
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(-1, 1, 1), False)
        else:
            self._enable_normalize = False

    def forward(self, data: dict, training: bool = False) -> dict:
        """Turn a collated batch into model inputs.

        Args:
            data (dict): ``inputs`` (a list of CHW tensors or of :class:`EncodedImage`, or one stacked NCHW
                tensor) and optionally ``data_samples`` (a list of :class:`DataSample`).
            training (bool): Unused (no batch augmentations). Defaults to False.

        Returns:
            dict: ``inputs`` (float NCHW tensor on the device) and ``data_samples``.
        """
        inputs = data["inputs"]
        bgr = True  # as loaded by cv2; decoding on the device gives RGB
        if isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], EncodedImage):
            inputs, bgr = decode_images(inputs, self.device), False
        if isinstance(inputs, torch.Tensor):
            inputs = self.cast_data(inputs)
        elif len({tuple(x.shape) for x in inputs}) == 1:
            inputs = self.cast_data(torch.stack(inputs))
        else:
            inputs = self.cast_data(stack_batch(list(inputs), 1, self.pad_value))
        if self.to_rgb == bgr and inputs.size(1) == 3:
            inputs = inputs.flip(1)
        inputs = inputs.float()
        if self._enable_normalize:
            inputs = (inputs - self.mean) / self.std
        if self.pad_size_divisor > 1:
            h, w = inputs.shape[-2:]
            pad_h = math.ceil(h / self.pad_size_divisor) * self.pad_size_divisor - h
            pad_w = math.ceil(w / self.pad_size_divisor) * self.pad_size_divisor - w
            inputs = F.pad(inputs, (0, pad_w, 0, pad_h), "constant", self.pad_value)

        data_samples = data.get("data_samples")
        if data_samples and isinstance(data_samples[0], DataSample) and "gt_label" in data_samples[0]:
            labels = torch.cat([s.gt_label for s in data_samples])
            if labels.device != self.device:  # one transfer for the whole batch
                labels = labels.to(self.device, non_blocking=True)
                for sample, label in zip(data_samples, labels.split([len(s.gt_label) for s in data_samples])):
                    sample.set_gt_label(label)
            if self.to_onehot:
                for sample in data_samples:
                    sample.set_gt_score(F.one_hot(sample.gt_label, self.num_classes).amax(0).float())
        return {"inputs": inputs, "data_samples": data_samples}
