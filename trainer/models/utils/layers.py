"""Layer builders for ``conv_cfg`` / ``norm_cfg`` dicts (the subset of mmcv's that the backbones use)."""

from typing import Optional, Tuple

import torch
from torch import nn

# type -> (layer class, abbreviation used in module names such as ``bn1``)
NORM_LAYERS = {
    "BN": (nn.BatchNorm2d, "bn"),
    "BN2d": (nn.BatchNorm2d, "bn"),
    "SyncBN": (nn.SyncBatchNorm, "bn"),
    "GN": (nn.GroupNorm, "gn"),
    "IN": (nn.InstanceNorm2d, "in"),
}
CONV_LAYERS = {"Conv": nn.Conv2d, "Conv2d": nn.Conv2d}


def build_norm_layer(cfg: dict, num_features: int, postfix: str = "") -> Tuple[str, nn.Module]:
    """Build a normalization layer from a config dict, as mmcv's ``build_norm_layer``.

    Args:
        cfg (dict): ``type`` is one of ``BN``, ``BN2d``, ``SyncBN``, ``GN`` (needs ``num_groups``) or ``IN``;
            ``requires_grad`` (default True) freezes the affine parameters when False; other keys
            (``eps``, ``momentum`` ...) go to the layer.
        num_features (int): Number of channels.
        postfix (str | int): Appended to the abbreviation to make the module name. Defaults to ''.

    Returns:
        tuple[str, nn.Module]: The name (e.g. ``bn1``) and the layer.
    """
    cfg = dict(cfg)
    layer_type = cfg.pop("type")
    if layer_type not in NORM_LAYERS:
        raise KeyError(f"Unrecognized norm type {layer_type!r}; available: {', '.join(NORM_LAYERS)}")
    layer_cls, abbr = NORM_LAYERS[layer_type]
    requires_grad = cfg.pop("requires_grad", True)
    cfg.setdefault("eps", 1e-5)
    if layer_type == "GN":
        layer = layer_cls(num_channels=num_features, **cfg)
    else:
        layer = layer_cls(num_features, **cfg)
    for param in layer.parameters():
        param.requires_grad = requires_grad
    return f"{abbr}{postfix}", layer


def build_conv_layer(cfg: Optional[dict], *args, **kwargs) -> nn.Module:
    """Build a convolution layer; ``cfg=None`` (the default everywhere) means ``nn.Conv2d``.

    Args:
        cfg (dict, optional): ``dict(type='Conv2d')`` or ``dict(type='Conv')``; other keys go to the layer.
        *args, **kwargs: Passed to the layer (in_channels, out_channels, kernel_size, ...).
    """
    cfg = dict(cfg or {"type": "Conv2d"})
    layer_type = cfg.pop("type")
    if layer_type not in CONV_LAYERS:
        raise KeyError(f"Unrecognized conv type {layer_type!r}; available: {', '.join(CONV_LAYERS)}")
    return CONV_LAYERS[layer_type](*args, **kwargs, **cfg)


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch of a sample with probability ``drop_prob``.

    Args:
        drop_prob (float): Probability of dropping a sample's branch in training. Defaults to 0.1.
    """

    def __init__(self, drop_prob: float = 0.1):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep_prob = 1 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep_prob)
        return x * mask / keep_prob
