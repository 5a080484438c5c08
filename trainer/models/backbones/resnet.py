"""ResNet backbones (MMPretrain's ``ResNet`` arguments and parameter names)."""

from typing import Optional, Sequence

import torch
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from trainer.registry import MODELS

from ..utils import DropPath, build_conv_layer, build_norm_layer


class BasicBlock(BaseModule):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        expansion (int): ``out_channels / mid_channels``. Defaults to 1.
        stride (int): Stride of the first convolution. Defaults to 1.
        dilation (int): Dilation of the convolutions. Defaults to 1.
        downsample (nn.Module, optional): Projection of the identity branch. Defaults to None.
        style (str): Unused by this block (kept for a common signature). Defaults to 'pytorch'.
        with_cp (bool): Recompute the block in backward to save memory. Defaults to False.
        conv_cfg (dict, optional): Convolution layer config. Defaults to None (``nn.Conv2d``).
        norm_cfg (dict): Normalization layer config. Defaults to ``dict(type='BN')``.
        drop_path_rate (float): Stochastic depth rate of the residual branch. Defaults to 0.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self, in_channels: int, out_channels: int, expansion: int = 1, stride: int = 1,
                 dilation: int = 1, downsample: Optional[nn.Module] = None, style: str = "pytorch",
                 with_cp: bool = False, conv_cfg: Optional[dict] = None, norm_cfg: dict = dict(type="BN"),
                 drop_path_rate: float = 0.0, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.expansion = expansion
        self.mid_channels = out_channels // expansion
        self.with_cp = with_cp
        self.norm1_name, norm1 = build_norm_layer(norm_cfg, self.mid_channels, postfix=1)
        self.norm2_name, norm2 = build_norm_layer(norm_cfg, out_channels, postfix=2)
        self.conv1 = build_conv_layer(conv_cfg, in_channels, self.mid_channels, 3, stride=stride,
                                      padding=dilation, dilation=dilation, bias=False)
        self.add_module(self.norm1_name, norm1)
        self.conv2 = build_conv_layer(conv_cfg, self.mid_channels, out_channels, 3, padding=1, bias=False)
        self.add_module(self.norm2_name, norm2)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 1e-6 else nn.Identity()

    @property
    def norm1(self) -> nn.Module:
        return getattr(self, self.norm1_name)

    @property
    def norm2(self) -> nn.Module:
        return getattr(self, self.norm2_name)

    def _inner_forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.drop_path(out) + identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(self._inner_forward, x, use_reentrant=False)
        else:
            out = self._inner_forward(x)
        return self.relu(out)


class Bottleneck(BaseModule):
    """1x1 -> 3x3 -> 1x1 convolutions with a residual connection (ResNet-50/101/152).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        expansion (int): ``out_channels / mid_channels``. Defaults to 4.
        stride (int): Stride of the block. Defaults to 1.
        dilation (int): Dilation of the 3x3 convolution. Defaults to 1.
        downsample (nn.Module, optional): Projection of the identity branch. Defaults to None.
        style (str): ``'pytorch'`` puts the stride on the 3x3 convolution, ``'caffe'`` on the first 1x1.
            Defaults to 'pytorch'.
        with_cp (bool): Recompute the block in backward to save memory. Defaults to False.
        conv_cfg (dict, optional): Convolution layer config. Defaults to None (``nn.Conv2d``).
        norm_cfg (dict): Normalization layer config. Defaults to ``dict(type='BN')``.
        drop_path_rate (float): Stochastic depth rate of the residual branch. Defaults to 0.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self, in_channels: int, out_channels: int, expansion: int = 4, stride: int = 1,
                 dilation: int = 1, downsample: Optional[nn.Module] = None, style: str = "pytorch",
                 with_cp: bool = False, conv_cfg: Optional[dict] = None, norm_cfg: dict = dict(type="BN"),
                 drop_path_rate: float = 0.0, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if style not in ("pytorch", "caffe"):
            raise ValueError(f"style must be 'pytorch' or 'caffe', got {style!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.expansion = expansion
        self.mid_channels = out_channels // expansion
        self.with_cp = with_cp
        conv1_stride, conv2_stride = (1, stride) if style == "pytorch" else (stride, 1)
        self.norm1_name, norm1 = build_norm_layer(norm_cfg, self.mid_channels, postfix=1)
        self.norm2_name, norm2 = build_norm_layer(norm_cfg, self.mid_channels, postfix=2)
        self.norm3_name, norm3 = build_norm_layer(norm_cfg, out_channels, postfix=3)
        self.conv1 = build_conv_layer(conv_cfg, in_channels, self.mid_channels, 1, stride=conv1_stride,
                                      bias=False)
        self.add_module(self.norm1_name, norm1)
        self.conv2 = build_conv_layer(conv_cfg, self.mid_channels, self.mid_channels, 3, stride=conv2_stride,
                                      padding=dilation, dilation=dilation, bias=False)
        self.add_module(self.norm2_name, norm2)
        self.conv3 = build_conv_layer(conv_cfg, self.mid_channels, out_channels, 1, bias=False)
        self.add_module(self.norm3_name, norm3)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 1e-6 else nn.Identity()

    @property
    def norm1(self) -> nn.Module:
        return getattr(self, self.norm1_name)

    @property
    def norm2(self) -> nn.Module:
        return getattr(self, self.norm2_name)

    @property
    def norm3(self) -> nn.Module:
        return getattr(self, self.norm3_name)

    def _inner_forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        return self.drop_path(out) + identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(self._inner_forward, x, use_reentrant=False)
        else:
            out = self._inner_forward(x)
        return self.relu(out)


class ResLayer(nn.Sequential):
    """One stage: ``num_blocks`` blocks, the first one with ``stride`` and a projection if shapes change.

    Args:
        block (type): ``BasicBlock`` or ``Bottleneck``.
        num_blocks (int): Number of blocks.
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        expansion (int): Block expansion.
        stride (int): Stride of the first block. Defaults to 1.
        avg_down (bool): Downsample the projection with an average pool before a stride-1 1x1 conv.
            Defaults to False.
        conv_cfg (dict, optional): Convolution layer config. Defaults to None.
        norm_cfg (dict): Normalization layer config. Defaults to ``dict(type='BN')``.
        **kwargs: Passed to every block (dilation, style, with_cp, drop_path_rate).
    """

    def __init__(self, block: type, num_blocks: int, in_channels: int, out_channels: int, expansion: int,
                 stride: int = 1, avg_down: bool = False, conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type="BN"), **kwargs):
        downsample = None
        if stride != 1 or in_channels != out_channels:
            layers = []
            conv_stride = stride
            if avg_down and stride != 1:
                conv_stride = 1
                layers.append(nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False))
            layers.append(build_conv_layer(conv_cfg, in_channels, out_channels, 1, stride=conv_stride,
                                           bias=False))
            layers.append(build_norm_layer(norm_cfg, out_channels)[1])
            downsample = nn.Sequential(*layers)
        blocks = [block(in_channels, out_channels, expansion=expansion, stride=stride, downsample=downsample,
                        conv_cfg=conv_cfg, norm_cfg=norm_cfg, **kwargs)]
        blocks += [block(out_channels, out_channels, expansion=expansion, stride=1, conv_cfg=conv_cfg,
                         norm_cfg=norm_cfg, **kwargs) for _ in range(1, num_blocks)]
        super().__init__(*blocks)


@MODELS.register_module()
class ResNet(BaseModule):
    """ResNet backbone (`Deep Residual Learning <https://arxiv.org/abs/1512.03385>`_), for 224x224 inputs.

    Args:
        depth (int): One of 18, 34, 50, 101, 152.
        in_channels (int): Input image channels. Defaults to 3.
        stem_channels (int): Output channels of the stem. Defaults to 64.
        base_channels (int): Middle channels of the first stage. Defaults to 64.
        expansion (int, optional): Block expansion; None uses the block's (1 basic, 4 bottleneck).
            Defaults to None.
        num_stages (int): Number of stages, 1 to 4. Defaults to 4.
        strides (Sequence[int]): Stride of the first block of each stage. Defaults to ``(1, 2, 2, 2)``.
        dilations (Sequence[int]): Dilation of each stage. Defaults to ``(1, 1, 1, 1)``.
        out_indices (Sequence[int]): Stages whose output is returned. Defaults to ``(3, )``.
        style (str): ``'pytorch'`` or ``'caffe'`` (where bottlenecks put their stride).
            Defaults to 'pytorch'.
        deep_stem (bool): Replace the 7x7 stem conv by three 3x3 convs. Defaults to False.
        avg_down (bool): Average-pool before the projection when downsampling. Defaults to False.
        frozen_stages (int): Freeze the stem and this many stages (no grad, norm in eval mode); -1
            freezes nothing. Defaults to -1.
        conv_cfg (dict, optional): Convolution layer config. Defaults to None (``nn.Conv2d``).
        norm_cfg (dict): Normalization layer config. Defaults to ``dict(type='BN', requires_grad=True)``.
        norm_eval (bool): Keep the BatchNorm layers in eval mode (frozen statistics) while training.
            Defaults to False.
        with_cp (bool): Gradient checkpointing of every block. Defaults to False.
        zero_init_residual (bool): Zero the last norm of each block so it starts as identity.
            Defaults to True.
        init_cfg (dict | list[dict]): Initialization. Defaults to Kaiming for ``Conv2d`` and constant 1
            for norm layers.
        drop_path_rate (float): Stochastic depth rate of every block. Defaults to 0.
    """

    arch_settings = {
        18: (BasicBlock, (2, 2, 2, 2)),
        34: (BasicBlock, (3, 4, 6, 3)),
        50: (Bottleneck, (3, 4, 6, 3)),
        101: (Bottleneck, (3, 4, 23, 3)),
        152: (Bottleneck, (3, 8, 36, 3)),
    }

    def __init__(self,
                 depth: int,
                 in_channels: int = 3,
                 stem_channels: int = 64,
                 base_channels: int = 64,
                 expansion: Optional[int] = None,
                 num_stages: int = 4,
                 strides: Sequence[int] = (1, 2, 2, 2),
                 dilations: Sequence[int] = (1, 1, 1, 1),
                 out_indices: Sequence[int] = (3, ),
                 style: str = "pytorch",
                 deep_stem: bool = False,
                 avg_down: bool = False,
                 frozen_stages: int = -1,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type="BN", requires_grad=True),
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 zero_init_residual: bool = True,
                 init_cfg=[
                     dict(type="Kaiming", layer=["Conv2d"]),
                     dict(type="Constant", val=1, layer=["_BatchNorm", "GroupNorm"]),
                 ],
                 drop_path_rate: float = 0.0):
        super().__init__(init_cfg)
        if depth not in self.arch_settings:
            raise KeyError(f"invalid depth {depth} for resnet (choose from {sorted(self.arch_settings)})")
        if not 1 <= num_stages <= 4:
            raise ValueError(f"num_stages must be 1..4, got {num_stages}")
        if not len(strides) == len(dilations) == num_stages:
            raise ValueError("strides and dilations need one entry per stage")
        out_indices = tuple(out_indices)
        for i in out_indices:
            if not -num_stages <= i < num_stages:
                raise ValueError(f"out_indices {out_indices} out of range for {num_stages} stages")
        self.depth = depth
        self.num_stages = num_stages
        self.out_indices = tuple(i % num_stages for i in out_indices)
        self.deep_stem = deep_stem
        self.frozen_stages = frozen_stages
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg
        self.norm_eval = norm_eval
        self.zero_init_residual = zero_init_residual
        self.block, stage_blocks = self.arch_settings[depth]
        self.expansion = expansion or (1 if self.block is BasicBlock else 4)

        self._make_stem_layer(in_channels, stem_channels)
        self.res_layers = []
        _in_channels = stem_channels
        _out_channels = base_channels * self.expansion
        for i, num_blocks in enumerate(stage_blocks[:num_stages]):
            layer = ResLayer(self.block, num_blocks, _in_channels, _out_channels, self.expansion,
                             stride=strides[i], dilation=dilations[i], style=style, avg_down=avg_down,
                             with_cp=with_cp, conv_cfg=conv_cfg, norm_cfg=norm_cfg,
                             drop_path_rate=drop_path_rate)
            self.add_module(f"layer{i + 1}", layer)
            self.res_layers.append(f"layer{i + 1}")
            _in_channels = _out_channels
            _out_channels *= 2
        self.feat_dim = _in_channels
        self._freeze_stages()

    @property
    def norm1(self) -> nn.Module:
        return getattr(self, self.norm1_name)

    def _make_stem_layer(self, in_channels: int, stem_channels: int) -> None:
        if self.deep_stem:
            convs = []
            for cin, cout, stride in ((in_channels, stem_channels // 2, 2),
                                      (stem_channels // 2, stem_channels // 2, 1),
                                      (stem_channels // 2, stem_channels, 1)):
                convs += [build_conv_layer(self.conv_cfg, cin, cout, 3, stride=stride, padding=1, bias=False),
                          build_norm_layer(self.norm_cfg, cout)[1], nn.ReLU(inplace=True)]
            self.stem = nn.Sequential(*convs)
        else:
            self.conv1 = build_conv_layer(self.conv_cfg, in_channels, stem_channels, 7, stride=2, padding=3,
                                          bias=False)
            self.norm1_name, norm1 = build_norm_layer(self.norm_cfg, stem_channels, postfix=1)
            self.add_module(self.norm1_name, norm1)
            self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def _forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x) if self.deep_stem else self.relu(self.norm1(self.conv1(x)))
        return self.maxpool(x)

    def _stem_modules(self) -> list:
        return [self.stem] if self.deep_stem else [self.conv1, self.norm1]

    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0:
            for m in self._stem_modules():
                m.eval()
                for param in m.parameters():
                    param.requires_grad = False
        for i in range(1, self.frozen_stages + 1):
            m = getattr(self, f"layer{i}")
            m.eval()
            for param in m.parameters():
                param.requires_grad = False

    def init_weights(self) -> None:
        """Apply ``init_cfg``, then zero the last norm of every block if ``zero_init_residual``."""
        super().init_weights()
        if isinstance(self.init_cfg, dict) and self.init_cfg["type"] == "Pretrained":
            return  # keep the loaded weights as they are
        if self.zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    constant_init(m.norm3, 0)
                elif isinstance(m, BasicBlock):
                    constant_init(m.norm2, 0)

    def forward(self, x: torch.Tensor) -> tuple:
        """Return the outputs of the stages in ``out_indices``, as a tuple of NCHW tensors."""
        x = self._forward_stem(x)
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True) -> "ResNet":
        """Switch train/eval mode, keeping frozen stages (and all BatchNorm if ``norm_eval``) in eval."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
