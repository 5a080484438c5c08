"""Hooks the runtime adds to every run (``custom_hooks``), registered in the trainer's ``HOOKS``."""

from __future__ import annotations

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from trainer.registry import HOOKS
from trainer.report import final_line, weights_sha256


@HOOKS.register_module()
class FinalWeightsHook(Hook):
    """Print ``trainer: rank=<r> final_weights_sha256=<hex>`` on every rank after training.

    Runs last (priority ``LOWEST``) in ``after_run``, over the unwrapped model's ``state_dict``.
    """

    priority = "LOWEST"

    def after_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        print(final_line(runner.rank, weights_sha256(model)), flush=True)


@HOOKS.register_module()
class ScaledLrLogHook(Hook):
    """Log the learning rate ``--auto-scale-lr`` produced, once the Runner has scaled it::

        trainer: auto-scale-lr base_lr=0.1 scaled_lr=0.05 (world_size×batch=32/base_batch_size=64)

    ``base_lr`` is the config's, ``scaled_lr`` the optimizer's initial learning rate after mmengine's
    Runner scaled it (first parameter group), read in ``before_run``: after scaling, before a resumed
    checkpoint replaces the optimizer state. Does nothing when ``auto_scale_lr.enable`` is off.

    Args:
        base_lr (float): The learning rate of the config's optimizer.
    """

    priority = "VERY_HIGH"

    def __init__(self, base_lr: float):
        self.base_lr = base_lr

    def before_run(self, runner) -> None:
        scale = runner.auto_scale_lr or {}
        if not scale.get("enable", False):
            return
        group = runner.optim_wrapper.optimizer.param_groups[0]
        scaled = group.get("initial_lr", group["lr"])
        batch = runner.world_size * runner.train_dataloader.batch_size
        runner.logger.info(f"trainer: auto-scale-lr base_lr={self.base_lr:g} scaled_lr={scaled:g} "
                           f"(world_size×batch={batch}/base_batch_size={scale['base_batch_size']})")
