"""Test support: a hook that breaks the trainer's surroundings at a chosen point of training.

A test config loads it with ``custom_imports = dict(imports=['tests.trainer.fault_hooks'])``.
"""

import subprocess

from mmengine.hooks import Hook

from trainer.registry import HOOKS


@HOOKS.register_module()
class ReadOnlyWorkDirHook(Hook):
    """Make ``work_dir`` immutable (``chattr +i``) when epoch ``epoch`` starts (1-based): no file can be
    created, renamed or removed in it any more, even by root (which ignores a 0555 mode); the files
    and folders already in it, the logs' included, stay writable. The test undoes it (``chattr -i``).

    Args:
        epoch (int): The epoch at whose start the directory becomes read-only.
    """

    def __init__(self, epoch: int):
        self.epoch = epoch

    def before_train_epoch(self, runner) -> None:
        if runner.epoch + 1 == self.epoch:
            subprocess.run(["chattr", "+i", runner.work_dir], check=True)
