"""Every config loads with mmengine, every ``type`` in it resolves under the ``trainer`` scope, names
follow MMPretrain's ``{model}_{N}xb{B}_{dataset}`` convention, and a missing type is named in the error."""

import re
from pathlib import Path

import mmengine.runner  # noqa: F401  (registers mmengine's hooks, optimizers, schedulers, visualizers)
import pytest
from mmengine.config import Config

from trainer import registry as R

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (REPO / 'configs').rglob('*.py') if '_base_' not in p.parts)
BASES = sorted((REPO / 'configs' / '_base_').rglob('*.py'))

R.register_all_modules()


def registry_for(path):
    """The registry a ``type`` at this key path is built from (as mmengine's Runner does)."""
    top, last = path[0], path[-1]
    if top == 'model' or top == 'data_preprocessor':
        return R.MODELS
    if top.endswith('_dataloader'):
        if 'pipeline' in path:
            return R.TRANSFORMS
        return R.DATA_SAMPLERS if last == 'sampler' else R.DATASETS
    if top.endswith('_evaluator'):
        return R.METRICS
    if top in ('default_hooks', 'custom_hooks'):
        return R.HOOKS
    if top == 'optim_wrapper':
        return R.OPTIMIZERS if last == 'optimizer' else R.OPTIM_WRAPPERS
    if top == 'param_scheduler':
        return R.PARAM_SCHEDULERS
    if top in ('vis_backends', 'visualizer'):
        return R.VISBACKENDS if 'vis_backends' in path else R.VISUALIZERS
    if top.endswith('_pipeline'):
        return R.TRANSFORMS
    raise AssertionError(f'no registry known for a type at {".".join(map(str, path))}')


def types_in(node, path=()):
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            yield path, node['type']
        for key, value in node.items():
            yield from types_in(value, path + (key, ))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from types_in(value, path + (i, ))


@pytest.mark.parametrize('path', CONFIGS + BASES, ids=lambda p: str(p.relative_to(REPO / 'configs')))
def test_config_loads_and_every_type_resolves(path):
    cfg = Config.fromfile(str(path))
    found = list(types_in(cfg.to_dict()))
    assert found, 'a config without any type'
    for key_path, type_name in found:
        assert registry_for(key_path).get(type_name) is not None, f'{type_name} at {key_path}'


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_full_configs_are_complete_and_named_like_mmpretrain(path):
    cfg = Config.fromfile(str(path))
    assert cfg.default_scope == 'trainer'
    for key in ('model', 'train_dataloader', 'val_dataloader', 'val_evaluator', 'optim_wrapper',
                'param_scheduler', 'train_cfg', 'default_hooks', 'env_cfg', 'randomness'):
        assert key in cfg, key
    assert cfg.train_cfg.get('type', 'EpochBasedTrainLoop') == 'EpochBasedTrainLoop' and cfg.train_cfg.by_epoch
    gpus, batch = map(int, re.search(r'_(\d+)xb(\d+)_', path.name).groups())
    assert cfg.train_dataloader.batch_size == batch
    assert cfg.auto_scale_lr.base_batch_size == gpus * batch
    assert cfg.model.head.num_classes == cfg.data_preprocessor.num_classes


def test_runtime_defaults():
    cfg = Config.fromfile(str(REPO / 'configs' / '_base_' / 'default_runtime.py'))
    assert cfg.default_hooks.checkpoint == dict(type='CheckpointHook', interval=1, max_keep_ckpts=3, save_last=True)
    assert cfg.default_hooks.logger.interval <= 10
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    assert [b['type'] for b in cfg.visualizer.vis_backends] == ['LocalVisBackend']
    assert "dict(type='TensorboardVisBackend')" in (REPO / 'configs' / '_base_' / 'default_runtime.py').read_text()


@pytest.mark.parametrize('registry, cfg, name', [
    (R.MODELS, dict(type='ImageClassifier', backbone=dict(type='SwinTransformer', arch='tiny')), 'SwinTransformer'),
    (R.MODELS, dict(type='ImageClassifier', backbone=dict(type='ResNet', depth=18),
                    head=dict(type='LinearClsHead', num_classes=2, in_channels=512,
                              loss=dict(type='FocalLoss'))), 'FocalLoss'),
    (R.DATASETS, dict(type='ImageNet', data_root='data/imagenet'), 'ImageNet'),
    (R.TRANSFORMS, dict(type='RandAugment', policies='timm_increasing'), 'RandAugment'),
    (R.METRICS, dict(type='SingleLabelMetric'), 'SingleLabelMetric'),
])
def test_a_missing_mmpretrain_type_is_named(registry, cfg, name):
    with pytest.raises(KeyError) as info:
        registry.build(cfg)
    assert f'{name} is not in the trainer::' in str(info.value)
