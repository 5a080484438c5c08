"""``LinearClsHead``: one fully connected layer on the pooled feature."""

from typing import Optional, Tuple

import torch
from torch import nn

from trainer.registry import MODELS

from .cls_head import ClsHead


@MODELS.register_module()
class LinearClsHead(ClsHead):
    """Linear classifier head.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Channels of the input feature (512 for ResNet-18, 2048 for ResNet-50).
        init_cfg (dict, optional): Initialization. Defaults to
            ``dict(type='Normal', layer='Linear', std=0.01)``.
        **kwargs: :class:`ClsHead` arguments: ``loss`` (default
            ``dict(type='CrossEntropyLoss', loss_weight=1.0)``), ``topk`` (default ``(1, )``), ``cal_acc``
            (default False).
    """

    def __init__(self, num_classes: int, in_channels: int,
                 init_cfg: Optional[dict] = dict(type="Normal", layer="Linear", std=0.01), **kwargs):
        super().__init__(init_cfg=init_cfg, **kwargs)
        if num_classes <= 0:
            raise ValueError(f"num_classes={num_classes} must be a positive integer")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, feats: Tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Class scores (logits) of shape ``(N, num_classes)``."""
        return self.fc(self.pre_logits(feats))
