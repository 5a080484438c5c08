"""``CrossEntropyLoss``: softmax, soft-target and sigmoid cross entropy (MMPretrain's arguments)."""

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from trainer.registry import MODELS

from .utils import convert_to_one_hot, weight_reduce_loss


def cross_entropy(pred: torch.Tensor, label: torch.Tensor, weight: Optional[torch.Tensor] = None,
                  reduction: str = "mean", avg_factor: Optional[float] = None,
                  class_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Softmax cross entropy with class indices ``label`` of shape ``(N,)``; ``weight`` is per sample."""
    loss = F.cross_entropy(pred, label, weight=class_weight, reduction="none")
    if weight is not None:
        weight = weight.float()
    return weight_reduce_loss(loss, weight=weight, reduction=reduction, avg_factor=avg_factor)


def soft_cross_entropy(pred: torch.Tensor, label: torch.Tensor, weight: Optional[torch.Tensor] = None,
                       reduction: str = "mean", avg_factor: Optional[float] = None,
                       class_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Cross entropy against per-class target probabilities ``label`` of shape ``(N, C)``."""
    loss = -label * F.log_softmax(pred, dim=-1)
    if class_weight is not None:
        loss = loss * class_weight
    loss = loss.sum(dim=-1)
    if weight is not None:
        weight = weight.float()
    return weight_reduce_loss(loss, weight=weight, reduction=reduction, avg_factor=avg_factor)


def binary_cross_entropy(pred: torch.Tensor, label: torch.Tensor, weight: Optional[torch.Tensor] = None,
                         reduction: str = "mean", avg_factor: Optional[float] = None,
                         class_weight: Optional[torch.Tensor] = None,
                         pos_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-class sigmoid cross entropy; class indices are turned into one-hot targets."""
    if pred.dim() != label.dim():
        label = convert_to_one_hot(label, pred.size(-1))
    loss = F.binary_cross_entropy_with_logits(pred, label.float(), weight=class_weight, pos_weight=pos_weight,
                                              reduction="none")
    if weight is not None:
        weight = weight.float().reshape(-1, 1)
    return weight_reduce_loss(loss, weight=weight, reduction=reduction, avg_factor=avg_factor)


@MODELS.register_module()
class CrossEntropyLoss(nn.Module):
    """Cross entropy loss.

    Args:
        use_sigmoid (bool): Per-class sigmoid (binary) cross entropy instead of softmax. Defaults to False.
        use_soft (bool): Targets are class probabilities ``(N, C)`` (e.g. label smoothing, mixup).
            Defaults to False.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``. Defaults to 'mean'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        class_weight (Sequence[float], optional): Weight of each class. Defaults to None.
        pos_weight (Sequence[float], optional): Weight of positive examples per class (sigmoid only).
            Defaults to None.
    """

    def __init__(self, use_sigmoid: bool = False, use_soft: bool = False, reduction: str = "mean",
                 loss_weight: float = 1.0, class_weight: Optional[Sequence[float]] = None,
                 pos_weight: Optional[Sequence[float]] = None):
        super().__init__()
        if use_sigmoid and use_soft:
            raise ValueError("use_sigmoid and use_soft could not be set simultaneously")
        self.use_sigmoid = use_sigmoid
        self.use_soft = use_soft
        self.reduction = reduction
        self.loss_weight = loss_weight
        self.class_weight = class_weight
        self.pos_weight = pos_weight

    def forward(self, cls_score: torch.Tensor, label: torch.Tensor, weight: Optional[torch.Tensor] = None,
                avg_factor: Optional[float] = None, reduction_override: Optional[str] = None) -> torch.Tensor:
        """Compute the loss.

        Args:
            cls_score (torch.Tensor): Logits ``(N, C)``.
            label (torch.Tensor): Class indices ``(N,)``, or ``(N, C)`` scores with ``use_soft`` /
                ``use_sigmoid``.
            weight (torch.Tensor, optional): Per-sample weights ``(N,)``. Defaults to None.
            avg_factor (float, optional): Divisor of the summed loss for ``'mean'``. Defaults to None.
            reduction_override (str, optional): Overrides ``reduction``. Defaults to None.
        """
        reduction = reduction_override or self.reduction
        class_weight = None if self.class_weight is None else cls_score.new_tensor(self.class_weight)
        if self.use_sigmoid:
            pos_weight = None if self.pos_weight is None else cls_score.new_tensor(self.pos_weight)
            loss = binary_cross_entropy(cls_score, label, weight, reduction, avg_factor, class_weight,
                                        pos_weight)
        elif self.use_soft:
            loss = soft_cross_entropy(cls_score, label, weight, reduction, avg_factor, class_weight)
        else:
            loss = cross_entropy(cls_score, label, weight, reduction, avg_factor, class_weight)
        return self.loss_weight * loss
