"""``CompileTimeHook``: how long ``torch.compile`` made the first iterations of a compiled training step take.

:func:`trainer.performance.configure` adds it to every run whose training step is compiled (``--compile``).
"""

from __future__ import annotations

import time

from mmengine.hooks import Hook

from trainer.registry import HOOKS
from trainer.report import emit


@HOOKS.register_module()
class CompileTimeHook(Hook):
    """Report how long the first iterations of a compiled training step took, on rank 0::

        trainer: compile: iterations 1-3 took 41.20 s, 3.10 s, 0.09 s; torch.compile compiled for 44.05 s

    ``torch.compile`` compiles on the first call and again where a guard fails (the optimizer's state
    appears after the first step), so the first iterations hold the compile time. The last figure is
    torch's own count, where this torch tells it. Waits for the GPU at the ends of those iterations only.

    Args:
        iterations (int): How many first iterations to time. Defaults to 3.
    """

    def __init__(self, iterations: int = 3):
        self.iterations = iterations
        self.times: list = []
        self._start = 0.0

    @staticmethod
    def _now() -> float:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        return time.perf_counter()

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if len(self.times) < self.iterations:
            self._start = self._now()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if len(self.times) >= self.iterations:
            return
        self.times.append(self._now() - self._start)
        if len(self.times) == self.iterations and runner.rank == 0:
            line = (f"trainer: compile: iterations 1-{self.iterations} took "
                    + ", ".join(f"{t:.2f} s" for t in self.times))
            compiled = _compile_seconds()
            emit(line + (f"; torch.compile compiled for {compiled:.2f} s" if compiled is not None else ""))


def _compile_seconds() -> float | None:
    """Seconds torch.compile has spent compiling in this process, where torch tells it."""
    try:
        from torch._dynamo.utils import calculate_time_spent

        return float(calculate_time_spent()["total_wall_time"])
    except Exception:  # a private API: absent or different in other torch versions
        return None
