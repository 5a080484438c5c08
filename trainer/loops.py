"""``EpochBasedTrainLoop``: mmengine's epoch-based training loop, resumable in the middle of an epoch.

Registered in the trainer's ``LOOPS`` under mmengine's name; :func:`trainer.run.configure_runtime` makes
it the loop of every ``train_cfg = dict(by_epoch=True, ...)``.
"""

from __future__ import annotations

import torch
from mmengine.runner import EpochBasedTrainLoop as MMEpochBasedTrainLoop
from torch.utils.data import BatchSampler

from trainer.prefetch import prefetch_to_device
from trainer.registry import LOOPS


@LOOPS.register_module()
class EpochBasedTrainLoop(MMEpochBasedTrainLoop):
    """mmengine's ``EpochBasedTrainLoop`` (same arguments) that continues an interrupted epoch exactly.

    Besides mmengine's ``epoch`` and ``iter``, the loop knows :attr:`epoch_iter`, the batches of the
    current epoch done, which every checkpoint records (see :meth:`position`). Resumed from a checkpoint
    saved part-way through an epoch, :meth:`run_epoch` tells the sampler to skip the samples of the
    batches done, without loading them (:meth:`trainer.datasets.ResumableSampler.set_start`): the epoch
    goes on with the batch it would have trained next, counted as in an uninterrupted run
    (``Epoch(train) [E][k+1/L]``). That needs a sampler that can start part-way and the same batches as
    when the checkpoint was saved (:meth:`mid_epoch_problem`); otherwise
    :meth:`trainer.runner.Runner.load_or_resume` resumes from the epoch's start instead.

    Args:
        prefetch (bool): On CUDA, copy each batch's images to the GPU while the previous batch trains
            (:func:`trainer.prefetch.prefetch_to_device`); ignored without CUDA. Defaults to False
            (:func:`trainer.performance.configure` turns it on for CUDA runs).
        *args, **kwargs: mmengine's ``EpochBasedTrainLoop`` arguments.
    """

    def __init__(self, *args, prefetch: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._epoch_iter = 0
        self.prefetch = prefetch

    @property
    def epoch_iter(self) -> int:
        """Batches of the current epoch done (once the running iteration ends, while one runs)."""
        return self._epoch_iter

    @property
    def global_batch_size(self) -> int | None:
        """Samples per iteration over all ranks (None when the batch sampler is not a plain one)."""
        from mmengine.dist import get_world_size

        batch_sampler = self.dataloader.batch_sampler
        if type(batch_sampler) is not BatchSampler:
            return None
        return batch_sampler.batch_size * get_world_size()

    def position(self, epoch: int) -> dict:
        """What a checkpoint of a state with ``epoch`` epochs done records of this loop: ``epoch_iter``
        (the batches of the next epoch done: 0 at an epoch's end), ``epoch_length`` (batches per epoch)
        and ``global_batch_size``."""
        return dict(epoch_iter=self._epoch_iter if epoch == self._epoch else 0,
                    epoch_length=len(self.dataloader), global_batch_size=self.global_batch_size)

    def mid_epoch_problem(self, meta: dict) -> str | None:
        """Why the state of a checkpoint's ``meta`` cannot be continued exactly here; None when it can
        (at an epoch's start it always can)."""
        if not meta.get("epoch_iter"):
            return None
        batch_sampler = self.dataloader.batch_sampler
        sampler = getattr(batch_sampler, "sampler", None)
        if type(batch_sampler) is not BatchSampler or not hasattr(sampler, "set_start"):
            return (f"the train sampler {type(sampler or batch_sampler).__name__} cannot start part-way "
                    "through an epoch (ResumableSampler can)")
        saved = (meta.get("epoch_length"), meta.get("global_batch_size"))
        if saved != (len(self.dataloader), self.global_batch_size):
            return (f"its epochs have {saved[0]} iterations of {saved[1]} samples, this run's "
                    f"{len(self.dataloader)} of {self.global_batch_size}")
        return None

    def resume_position(self, meta: dict) -> None:
        """Take the position within the epoch from a resumed checkpoint's ``meta`` (mmengine's Runner
        restores ``epoch`` and ``iter``)."""
        self._epoch_iter = meta.get("epoch_iter", 0)

    def run_epoch(self) -> None:
        """Train one epoch, or the rest of an interrupted one."""
        self.runner.call_hook("before_train_epoch")
        self.runner.model.train()
        start = self._epoch_iter
        if start:
            self.dataloader.batch_sampler.sampler.set_start(start * self.dataloader.batch_sampler.batch_size)
            self.runner.logger.info(f"trainer: epoch {self._epoch + 1} continues at iteration {start + 1}/"
                                    f"{len(self.dataloader)}: the batches it trained before are skipped, "
                                    "not loaded")
        for idx, data_batch in enumerate(self._batches(), start):
            self.run_iter(idx, data_batch)
        self.runner.call_hook("after_train_epoch")
        self._epoch += 1
        self._epoch_iter = 0

    def _batches(self):
        """The dataloader's batches, prefetched to the GPU where :attr:`prefetch` asks for it."""
        if not (self.prefetch and torch.cuda.is_available()):
            return self.dataloader
        return prefetch_to_device(self.dataloader, torch.device("cuda", torch.cuda.current_device()))

    def run_iter(self, idx, data_batch) -> None:
        """Train batch ``idx`` of the epoch (0-based)."""
        self._epoch_iter = idx + 1
        super().run_iter(idx, data_batch)
