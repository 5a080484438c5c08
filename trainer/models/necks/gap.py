"""``GlobalAveragePooling`` neck."""

from typing import Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import nn

from trainer.registry import MODELS


@MODELS.register_module()
class GlobalAveragePooling(BaseModule):
    """Average each feature map to one value per channel: ``(N, C, H, W)`` -> ``(N, C)``.

    Args:
        dim (int): Spatial dimensions of the input: 1, 2 or 3. Defaults to 2.
    """

    def __init__(self, dim: int = 2):
        super().__init__()
        if dim not in (1, 2, 3):
            raise ValueError(f"GlobalAveragePooling dim must be 1, 2 or 3, got {dim}")
        self.gap = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[dim](1)

    def forward(self, inputs: Union[torch.Tensor, Tuple[torch.Tensor, ...]]):
        """Pool one tensor, or each tensor of a tuple (then return a tuple)."""
        if isinstance(inputs, tuple):
            return tuple(self.gap(x).flatten(1) for x in inputs)
        if isinstance(inputs, torch.Tensor):
            return self.gap(inputs).flatten(1)
        raise TypeError("GlobalAveragePooling expects a tensor or a tuple of tensors")
