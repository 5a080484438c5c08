"""Classification losses."""

from .cross_entropy_loss import CrossEntropyLoss, binary_cross_entropy, cross_entropy, soft_cross_entropy
from .label_smooth_loss import LabelSmoothLoss
from .utils import convert_to_one_hot, weight_reduce_loss

__all__ = [
    "CrossEntropyLoss", "LabelSmoothLoss", "binary_cross_entropy", "convert_to_one_hot", "cross_entropy",
    "soft_cross_entropy", "weight_reduce_loss",
]
