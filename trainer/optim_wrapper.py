"""Optimizer wrappers of the trainer, registered in its ``OPTIM_WRAPPERS`` (chosen by :mod:`trainer.amp`)."""

from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper

from trainer.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CpuBf16OptimWrapper(OptimWrapper):
    """An ``OptimWrapper`` whose forward runs under ``torch.autocast('cpu', dtype=torch.bfloat16)``.

    bfloat16 has float32's exponent range, so no loss scaling is needed; parameters, gradients and
    optimizer state stay float32. Takes the same arguments as ``OptimWrapper``.
    """

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast("cpu", dtype=torch.bfloat16):
            yield
