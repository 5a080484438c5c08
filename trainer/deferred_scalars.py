"""Training losses logged without waiting for the GPU every iteration.

mmengine's ``RuntimeInfoHook`` puts each iteration's losses into the ``MessageHub`` with ``.item()``,
which waits until the GPU has finished the iteration: meanwhile the host queues nothing, and then the
GPU idles while the host runs the hooks, fetches the next batch and launches its first kernels. The
trainer's :class:`RuntimeInfoHook` (same name, so configs need no change) keeps the loss tensors in a
:class:`DeferredHistoryBuffer` until the history is read (the ``LoggerHook`` every ``interval``
iterations, a checkpoint, any hook that asks), then converts them in order: one wait per read instead
of one per iteration, and the same values, logs and checkpoints as before.
"""

from __future__ import annotations

import torch
from mmengine.hooks import RuntimeInfoHook as MMRuntimeInfoHook
from mmengine.logging import HistoryBuffer

from trainer.registry import HOOKS


class DeferredHistoryBuffer(HistoryBuffer):
    """mmengine's ``HistoryBuffer`` that also takes one-element tensors and converts them only when its
    history is read (or :attr:`MAX_PENDING` are waiting).

    Every read goes through ``_log_history`` / ``_count_history`` (``data``, ``mean``, ``max``, ``min``,
    ``current``, custom statistics), which convert what is pending first. Pickled or deep-copied (a
    checkpoint's ``message_hub``), it becomes a plain ``HistoryBuffer`` of the same values.
    """

    #: Tensors kept at most before they are converted anyway (one small block of GPU memory each).
    MAX_PENDING = 100

    def __init__(self, log_history=(), count_history=(), max_length: int = 1000000):
        self._pending: list = []
        super().__init__(list(log_history), list(count_history), max_length)

    @classmethod
    def of(cls, buffer: HistoryBuffer | None) -> "DeferredHistoryBuffer":
        """A deferred buffer holding ``buffer``'s history (an empty one for None)."""
        if buffer is None:
            return cls()
        values, counts = buffer.data
        return cls(values.tolist(), counts.tolist(), buffer.max_length)

    @property
    def _log_history(self):
        self._convert_pending()
        return self._values

    @_log_history.setter
    def _log_history(self, values) -> None:
        self._values = values

    @property
    def _count_history(self):
        self._convert_pending()
        return self._counts

    @_count_history.setter
    def _count_history(self, counts) -> None:
        self._counts = counts

    def update(self, log_val, count: int = 1) -> None:
        """Append ``log_val`` (a number, or a one-element tensor converted later) with ``count``."""
        if isinstance(log_val, torch.Tensor):
            self._pending.append((log_val.detach(), count))
            if len(self._pending) >= self.MAX_PENDING:
                self._convert_pending()
        else:
            super().update(log_val, count)  # reads the history: what is pending goes first

    def _convert_pending(self) -> None:
        pending, self._pending = self._pending, []
        for value, count in pending:  # the first .item() waits for the GPU, the others find their values there
            super().update(value.item(), count)

    def __reduce__(self):
        values, counts = self.data
        return HistoryBuffer, (values.tolist(), counts.tolist(), self.max_length)


@HOOKS.register_module()
class RuntimeInfoHook(MMRuntimeInfoHook):
    """mmengine's ``RuntimeInfoHook`` (same name and arguments) whose training outputs (the losses) go
    into the ``MessageHub`` as :class:`DeferredHistoryBuffer` entries: no wait for the GPU per iteration.
    """

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if outputs is None:
            return
        hub = runner.message_hub
        for key, value in outputs.items():
            name = f"train/{key}"
            if not (isinstance(value, torch.Tensor) and value.numel() == 1):
                hub.update_scalar(name, value)  # numbers, and mmengine's error for anything else
                continue
            buffer = hub.log_scalars.get(name)
            if not isinstance(buffer, DeferredHistoryBuffer):  # new, or loaded from a checkpoint
                buffer = hub.log_scalars[name] = DeferredHistoryBuffer.of(buffer)
            hub._set_resumed_keys(name, True)  # as update_scalar does: saved in checkpoints
            buffer.update(value)
