"""``LabelSmoothLoss`` (MMPretrain's arguments and modes)."""

from typing import Optional, Sequence

import torch
from torch import nn

from trainer.registry import MODELS

from .cross_entropy_loss import CrossEntropyLoss
from .utils import convert_to_one_hot


@MODELS.register_module()
class LabelSmoothLoss(nn.Module):
    r"""Cross entropy against smoothed one-hot targets.

    ``original``: :math:`y = (1 - \epsilon) \cdot onehot + \epsilon / C`.
    ``classy_vision``: the same with :math:`\epsilon' = \epsilon / (1 + \epsilon)`.
    ``multi_label``: positives :math:`1 - \epsilon`, negatives :math:`\epsilon`, sigmoid cross entropy.

    Args:
        label_smooth_val (float): The smoothing :math:`\epsilon`, in [0, 1).
        num_classes (int, optional): Number of classes; None takes it from the scores. Defaults to None.
        use_sigmoid (bool, optional): Sigmoid instead of softmax; None means False (True for
            ``multi_label``). Defaults to None.
        mode (str): ``'original'``, ``'classy_vision'`` or ``'multi_label'``. Defaults to 'original'.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``. Defaults to 'mean'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        class_weight (Sequence[float], optional): Weight of each class. Defaults to None.
        pos_weight (Sequence[float], optional): Weight of positives per class (sigmoid only).
            Defaults to None.
    """

    def __init__(self, label_smooth_val: float, num_classes: Optional[int] = None,
                 use_sigmoid: Optional[bool] = None, mode: str = "original", reduction: str = "mean",
                 loss_weight: float = 1.0, class_weight: Optional[Sequence[float]] = None,
                 pos_weight: Optional[Sequence[float]] = None):
        super().__init__()
        if not 0 <= label_smooth_val < 1:
            raise ValueError(f"LabelSmoothLoss accepts a float label_smooth_val in [0, 1), got "
                             f"{label_smooth_val}")
        if mode not in ("original", "classy_vision", "multi_label"):
            raise ValueError(f"LabelSmoothLoss mode must be 'original', 'classy_vision' or 'multi_label', "
                             f"got {mode!r}")
        self.num_classes = num_classes
        self.loss_weight = loss_weight
        self.label_smooth_val = label_smooth_val
        self.mode = mode
        self._eps = label_smooth_val / (1 + label_smooth_val) if mode == "classy_vision" else label_smooth_val
        if mode == "multi_label":
            use_sigmoid = True
        use_sigmoid = bool(use_sigmoid)
        self.ce = CrossEntropyLoss(use_sigmoid=use_sigmoid, use_soft=not use_sigmoid, reduction=reduction,
                                   class_weight=class_weight, pos_weight=pos_weight)

    def smooth_label(self, one_hot: torch.Tensor) -> torch.Tensor:
        """Smooth a one-hot-like ``(N, C)`` target according to ``mode``."""
        if self.mode == "multi_label":
            return torch.where(one_hot > 0, 1 - self._eps, self._eps).to(one_hot.dtype)
        return one_hot * (1 - self._eps) + self._eps / self.num_classes

    def forward(self, cls_score: torch.Tensor, label: torch.Tensor, weight: Optional[torch.Tensor] = None,
                avg_factor: Optional[float] = None, reduction_override: Optional[str] = None) -> torch.Tensor:
        """Compute the loss; ``label`` is class indices ``(N,)`` or a one-hot-like ``(N, C)`` tensor."""
        if self.num_classes is None:
            self.num_classes = cls_score.shape[1]
        elif self.num_classes != cls_score.shape[1]:
            raise ValueError(f"num_classes should equal cls_score.shape[1], but got num_classes "
                             f"{self.num_classes} and cls_score.shape[1] {cls_score.shape[1]}")
        if label.dim() == 1 or (label.dim() == 2 and label.shape[1] == 1):
            label = convert_to_one_hot(label, self.num_classes)
        label = label.float()
        if label.shape != cls_score.shape:
            raise ValueError(f"label shape {tuple(label.shape)} does not match cls_score shape "
                             f"{tuple(cls_score.shape)}")
        return self.loss_weight * self.ce(cls_score, self.smooth_label(label), weight=weight,
                                          avg_factor=avg_factor, reduction_override=reduction_override)
