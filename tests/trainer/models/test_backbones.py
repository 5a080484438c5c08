"""ResNet / ResNet_CIFAR: output shapes, stage selection, freezing, MMPretrain parameter names."""

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from trainer.models import ResNet, ResNet_CIFAR
from trainer.registry import MODELS, register_all_modules

register_all_modules()


def test_resnet18_all_stages_at_224():
    model = ResNet(depth=18, out_indices=(0, 1, 2, 3)).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 224, 224))
    assert [tuple(o.shape) for o in outs] == [(1, 64, 56, 56), (1, 128, 28, 28), (1, 256, 14, 14), (1, 512, 7, 7)]
    assert model.feat_dim == 512


def test_resnet50_is_bottleneck_with_2048_features():
    model = ResNet(depth=50).eval()
    with torch.no_grad():
        (out, ) = model(torch.rand(1, 3, 64, 64))
    assert tuple(out.shape) == (1, 2048, 2, 2)
    # the parameter count of a ResNet-50 trunk (no fc): 23.5M
    assert sum(p.numel() for p in model.parameters()) == 23_508_032


def test_resnet_cifar_keeps_small_images_large():
    model = MODELS.build(dict(type='ResNet_CIFAR', depth=18, out_indices=(0, 3))).eval()
    with torch.no_grad():
        first, last = model(torch.rand(2, 3, 8, 8))
    assert tuple(first.shape) == (2, 64, 8, 8)   # 3x3 stride-1 stem, no max pooling
    assert tuple(last.shape) == (2, 512, 1, 1)
    assert not hasattr(model, 'maxpool') and model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)


def test_state_dict_names_follow_mmpretrain():
    keys = set(ResNet(depth=50).state_dict())
    for key in ('conv1.weight', 'bn1.running_mean', 'layer1.0.conv3.weight', 'layer1.0.bn3.weight',
                'layer1.0.downsample.0.weight', 'layer1.0.downsample.1.weight', 'layer4.2.bn2.bias'):
        assert key in keys


def test_zero_init_residual_zeroes_last_norm_of_each_block():
    model = ResNet_CIFAR(depth=18)
    model.init_weights()
    assert all(torch.all(blk.norm2.weight == 0) for name in model.res_layers for blk in getattr(model, name))
    assert torch.all(model.norm1.weight == 1)


def test_frozen_stages_and_norm_eval():
    model = ResNet(depth=18, frozen_stages=1, norm_eval=True)
    model.train()
    assert not any(p.requires_grad for p in model.conv1.parameters())
    assert not any(p.requires_grad for p in model.layer1.parameters())
    assert all(p.requires_grad for p in model.layer2.parameters())
    assert all(not m.training for m in model.modules() if isinstance(m, _BatchNorm))


def test_deep_stem_avg_down_and_caffe_style():
    model = ResNet(depth=50, deep_stem=True, avg_down=True, style='caffe', num_stages=2, strides=(1, 2),
                   dilations=(1, 1), out_indices=(-1, )).eval()
    with torch.no_grad():
        (out, ) = model(torch.rand(1, 3, 64, 64))
    assert tuple(out.shape) == (1, 512, 8, 8)
    assert model.layer2[0].conv1.stride == (2, 2)  # caffe: stride on the first 1x1 conv
    assert isinstance(model.layer2[0].downsample[0], torch.nn.AvgPool2d)


def test_group_norm_and_bad_arguments():
    model = ResNet_CIFAR(depth=18, norm_cfg=dict(type='GN', num_groups=8)).eval()
    assert isinstance(model.norm1, torch.nn.GroupNorm)
    with pytest.raises(KeyError, match='invalid depth 19'):
        ResNet(depth=19)
    with pytest.raises(ValueError, match='out_indices'):
        ResNet(depth=18, out_indices=(4, ))
    with pytest.raises(KeyError, match="Unrecognized norm type 'XN'"):
        ResNet(depth=18, norm_cfg=dict(type='XN'))
