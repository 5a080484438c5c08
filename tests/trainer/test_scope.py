"""trainer.scope in the default environment: a config of another scope gets the trainer's runtime parts and
exact resume, and a type no registry has is named with the scopes searched (``otherlib`` stands for a
library whose registries are not installed: its configs resolve in mmengine's registries)."""

import numpy as np
import pytest
from mmengine.config import Config

from trainer.datasets import SampleIndex
from trainer.datasets.transforms import SeedSampleRandomness
from trainer.errors import UsageError
from trainer.registry import register_all_modules
from trainer.scope import check_types, make_resume_exact, qualify_runtime_types

register_all_modules(init_default_scope=False)


def runtime_config(**extra) -> Config:
    return Config(dict(
        runner_type="Runner", train_cfg=dict(type="EpochBasedTrainLoop", max_epochs=1),
        optim_wrapper=dict(type="CpuBf16OptimWrapper", optimizer=dict(type="SGD", lr=0.1)),
        visualizer=dict(type="Visualizer"),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook"), logger=dict(type="LoggerHook"), other=None),
        custom_hooks=[dict(type="FinalWeightsHook"), dict(type="SyncBuffersHook")],
        train_dataloader=dict(sampler=dict(type="DefaultSampler", shuffle=True),
                              dataset=dict(type="ConcatDataset", pipeline=[dict(type="trainer.PackInputs")])), **extra))


def test_the_runtime_parts_are_the_trainers_in_another_scope():
    cfg = runtime_config()
    qualify_runtime_types(cfg, "otherlib")
    assert (cfg.runner_type, cfg.train_cfg.type, cfg.optim_wrapper.type, cfg.visualizer.type) == (
        "trainer.Runner", "trainer.EpochBasedTrainLoop", "trainer.CpuBf16OptimWrapper", "trainer.Visualizer")
    assert cfg.default_hooks.checkpoint.type == "trainer.CheckpointHook"  # mmengine's would be found
    assert cfg.default_hooks.logger.type == "LoggerHook"  # the trainer has none: mmengine's
    assert [h["type"] for h in cfg.custom_hooks] == ["trainer.FinalWeightsHook", "SyncBuffersHook"]
    assert cfg.train_dataloader.sampler.type == "DefaultSampler"  # make_resume_exact's business

    own = runtime_config()
    qualify_runtime_types(own, "trainer")
    assert own.runner_type == "Runner" and own.default_hooks.checkpoint.type == "CheckpointHook"


def test_exact_resume_in_another_scope():
    cfg = runtime_config()
    make_resume_exact(cfg, "otherlib")
    assert cfg.train_dataloader.sampler == dict(type="trainer.ResumableSampler", shuffle=True)
    assert cfg.train_dataloader.dataset.pipeline == [dict(type="trainer.SeedSampleRandomness"),
                                                     dict(type="trainer.PackInputs")]
    own = runtime_config()
    make_resume_exact(own, "trainer")
    assert own.train_dataloader.sampler.type == "DefaultSampler" and len(own.train_dataloader.dataset.pipeline) == 1


def test_sample_randomness_is_a_function_of_seed_epoch_and_index():
    seed = SeedSampleRandomness()

    def draw(index):
        seed(dict(sample_idx=index))
        return np.random.random()

    assert draw(SampleIndex(3, 0, 1)) == draw(SampleIndex(3, 0, 1))
    assert len({draw(SampleIndex(3, 0, 1)), draw(SampleIndex(3, 0, 2)), draw(SampleIndex(4, 0, 1)),
                draw(SampleIndex(3, 1, 1))}) == 4
    np.random.seed(7)
    expected = np.random.random()
    np.random.seed(7)
    assert draw(3) == expected  # a plain index (no seed, no epoch): the global state is left alone


@pytest.mark.parametrize("cfg, scope, message", [
    (dict(model=dict(type="ImageClassifier", backbone=dict(type="NoSuchNet"))), "trainer",
     "model.backbone.type: type 'NoSuchNet' is in no registry (scopes searched: trainer, mmengine)"),
    (dict(train_dataloader=dict(dataset=dict(type="Digits"))), "otherlib",
     "train_dataloader.dataset.type: type 'Digits' is in no registry (scopes searched: otherlib, mmengine); "
     "scope trainer has it: type='trainer.Digits'"),
    (dict(custom_hooks=[dict(type="elsewhere.Hook")]), "trainer",
     "custom_hooks.0.type: type 'elsewhere.Hook' is in no registry (scopes searched: elsewhere)"),
], ids=["own-scope", "hint", "scoped"])
def test_a_type_in_no_registry_is_named_with_the_scopes_searched(cfg, scope, message):
    with pytest.raises(UsageError) as info:
        check_types(Config(cfg), scope)
    assert str(info.value) == message


def test_a_qualified_config_of_another_scope_passes():
    cfg = runtime_config(model=dict(type="ImageClassifier", _scope_="trainer", backbone=dict(type="ResNet")))
    with pytest.raises(UsageError, match="'CpuBf16OptimWrapper' is in no registry"):
        check_types(cfg, "otherlib")
    qualify_runtime_types(cfg, "otherlib")
    make_resume_exact(cfg, "otherlib")
    check_types(cfg, "otherlib")
