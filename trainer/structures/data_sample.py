"""``DataSample``: the per-image annotation and prediction record, as in MMPretrain."""

from typing import Sequence, Union

import numpy as np
import torch
from mmengine.structures import BaseDataElement

LABEL_TYPE = Union[torch.Tensor, np.ndarray, Sequence, int]
SCORE_TYPE = Union[torch.Tensor, np.ndarray, Sequence]

#: CPU tensors of a data sample up to this size are pickled by value, inside the pickle. Between
#: processes (a DataLoader worker handing a batch to the training process) torch otherwise sends every
#: tensor through a shared-memory segment and a file descriptor of its own: measured for batches of 64
#: one-element labels, that took 10 ms of the training process's CPU per batch and halved the workers'
#: throughput; by value, 1.5 ms.
BY_VALUE_BYTES = 64 * 1024
_BY_VALUE_DTYPES = frozenset({torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
                              torch.float16, torch.float32, torch.float64})


class _ByValue:
    """A small CPU tensor of a pickled :class:`DataSample`: its values as a numpy array."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        self.array = array

    def __reduce__(self):
        return _ByValue, (self.array,)


def _by_value(value) -> bool:
    return (type(value) is torch.Tensor and value.device.type == "cpu" and value.layout == torch.strided
            and not value.requires_grad and value.dtype in _BY_VALUE_DTYPES
            and value.numel() * value.element_size() <= BY_VALUE_BYTES)


def format_label(value: LABEL_TYPE) -> torch.Tensor:
    """Convert a label to a 1-D ``torch.long`` tensor of class indices.

    Args:
        value (torch.Tensor | np.ndarray | Sequence | int): One index (``3``) or several (``[1, 4]``).

    Returns:
        torch.Tensor: Shape ``(num_labels,)``, e.g. ``tensor([3])``.
    """
    if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 0:
        value = int(value.item())
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value).to(torch.long)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        value = torch.tensor(value, dtype=torch.long)
    elif isinstance(value, int):
        value = torch.tensor([value], dtype=torch.long)
    elif not isinstance(value, torch.Tensor):
        raise TypeError(f"Type {type(value)} is not an available label type.")
    if value.ndim != 1:
        raise ValueError(f"The dims of the label should be 1, got {value.ndim}.")
    return value


def format_score(value: SCORE_TYPE) -> torch.Tensor:
    """Convert scores (one per class) to a 1-D float tensor.

    Args:
        value (torch.Tensor | np.ndarray | Sequence): Scores of shape ``(num_classes,)``.

    Returns:
        torch.Tensor: Shape ``(num_classes,)``.
    """
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value).float()
    elif isinstance(value, Sequence) and not isinstance(value, str):
        value = torch.tensor(value).float()
    elif not isinstance(value, torch.Tensor):
        raise TypeError(f"Type {type(value)} is not an available score type.")
    if value.ndim != 1:
        raise ValueError(f"The dims of the score should be 1, got {value.ndim}.")
    return value


class DataSample(BaseDataElement):
    """Annotation and prediction of one image (MMPretrain's ``DataSample``).

    Fields (all optional): ``gt_label`` (1-D long tensor), ``gt_score`` (1-D float tensor, e.g. one-hot),
    ``pred_label`` (1-D long tensor), ``pred_score`` (1-D float tensor, softmax). Meta information such as
    ``img_path``, ``ori_shape``, ``img_shape``, ``num_classes`` goes in ``metainfo``.

    Pickled (e.g. from a DataLoader worker), small CPU tensors travel by value (:data:`BY_VALUE_BYTES`).
    """

    def __getstate__(self) -> dict:
        return {key: _ByValue(value.numpy()) if _by_value(value) else value
                for key, value in self.__dict__.items()}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({key: torch.from_numpy(value.array) if isinstance(value, _ByValue) else value
                              for key, value in state.items()})

    def set_gt_label(self, value: LABEL_TYPE) -> "DataSample":
        """Set ``gt_label`` from an int, sequence, array or tensor of class indices."""
        self.set_field(format_label(value), "gt_label", dtype=torch.Tensor)
        return self

    def set_gt_score(self, value: SCORE_TYPE) -> "DataSample":
        """Set ``gt_score`` (one score per class, e.g. one-hot); records ``num_classes`` in metainfo."""
        return self._set_score("gt_score", value)

    def set_pred_label(self, value: LABEL_TYPE) -> "DataSample":
        """Set ``pred_label`` from an int, sequence, array or tensor of class indices."""
        self.set_field(format_label(value), "pred_label", dtype=torch.Tensor)
        return self

    def set_pred_score(self, value: SCORE_TYPE) -> "DataSample":
        """Set ``pred_score`` (one score per class); records ``num_classes`` in metainfo."""
        return self._set_score("pred_score", value)

    def _set_score(self, name: str, value: SCORE_TYPE) -> "DataSample":
        score = format_score(value)
        if "num_classes" in self and score.size(0) != self.num_classes:
            raise ValueError(f"The length of {name} ({score.size(0)}) should equal num_classes "
                             f"({self.num_classes}).")
        self.set_field(score, name, dtype=torch.Tensor)
        if "num_classes" not in self:
            self.set_metainfo({"num_classes": score.size(0)})
        return self
