"""``ResNet_CIFAR``: ResNet for small images (32x32 CIFAR, 8x8 digits)."""

import torch
from torch import nn

from trainer.registry import MODELS

from ..utils import build_conv_layer, build_norm_layer
from .resnet import ResNet


@MODELS.register_module()
class ResNet_CIFAR(ResNet):  # noqa: N801 (MMPretrain's name)
    """ResNet with a 3x3 stride-1 stem and no max pooling, so small images keep their resolution.

    On a 32x32 input the four stages see 32, 16, 8 and 4 pixels (the ImageNet stem would leave 8).

    Args:
        depth (int): One of 18, 34, 50, 101, 152.
        deep_stem (bool): Not supported by this variant; must be False. Defaults to False.
        **kwargs: Every other :class:`ResNet` argument.
    """

    def __init__(self, depth: int, deep_stem: bool = False, **kwargs):
        if deep_stem:
            raise ValueError("ResNet_CIFAR does not support deep_stem")
        super().__init__(depth, deep_stem=False, **kwargs)

    def _make_stem_layer(self, in_channels: int, stem_channels: int) -> None:
        self.conv1 = build_conv_layer(self.conv_cfg, in_channels, stem_channels, 3, stride=1, padding=1,
                                      bias=False)
        self.norm1_name, norm1 = build_norm_layer(self.norm_cfg, stem_channels, postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.relu = nn.ReLU(inplace=True)

    def _forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.norm1(self.conv1(x)))
