"""Loss reduction helpers."""

from typing import Optional

import torch


def weight_reduce_loss(loss: torch.Tensor, weight: Optional[torch.Tensor] = None, reduction: str = "mean",
                       avg_factor: Optional[float] = None) -> torch.Tensor:
    """Apply element-wise weights, then reduce.

    Args:
        loss (torch.Tensor): Element-wise loss.
        weight (torch.Tensor, optional): Element-wise weights, broadcast against ``loss``. Defaults to None.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``. Defaults to 'mean'.
        avg_factor (float, optional): With ``'mean'``, divide the sum by this instead of the element count
            (the heads pass the batch size). Defaults to None.

    Returns:
        torch.Tensor: The reduced loss.
    """
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    if weight is not None:
        loss = loss * weight
    if reduction == "none":
        return loss
    if avg_factor is None:
        return loss.mean() if reduction == "mean" else loss.sum()
    if reduction == "sum":
        raise ValueError('avg_factor can not be used with reduction="sum"')
    return loss.sum() / avg_factor


def convert_to_one_hot(targets: torch.Tensor, classes: int) -> torch.Tensor:
    """Class indices of shape ``(N, 1)`` or ``(N,)`` -> one-hot ``(N, classes)`` (long).

    On the CPU a label out of range is a ``ValueError``. On a GPU it is ``one_hot``'s device-side assert:
    reading the largest label on the host would wait for the GPU every iteration.
    """
    if targets.device.type == "cpu" and int(targets.max()) >= classes:
        raise ValueError(f"label {int(targets.max())} out of range for {classes} classes")
    return torch.nn.functional.one_hot(targets.reshape(-1).long(), classes)
