"""``Runner``: mmengine's Runner with crash-safe checkpoints, and a resume that survives a bad checkpoint
and continues an interrupted epoch exactly.

Registered in the trainer's ``RUNNERS`` under mmengine's name; :func:`trainer.run.configure_runtime` makes
it the runner of every run whose config names no other ``runner_type``.
"""

from __future__ import annotations

import os
import os.path as osp

import torch
from mmengine.dist import all_gather_object, broadcast_object_list
from mmengine.fileio import LocalBackend, get_file_backend, join_path
from mmengine.hooks import CheckpointHook as MMCheckpointHook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner as MMRunner

from trainer.checkpoint import (CheckpointSaveError, UnreadableCheckpoint, commit, discard, handed_over,
                                numbered_files, one_line, read_checkpoint, read_pointer, remove_temporaries,
                                temporary_name)
from trainer.errors import TrainerError
from trainer.handover import hand_over
from trainer.hooks import PREEMPTED_TEMPLATE
from trainer.launch import any_rank
from trainer.loops import EpochBasedTrainLoop
from trainer.performance import to_channels_last
from trainer.registry import RUNNERS
from trainer.report import emit, resumed_line


@RUNNERS.register_module()
class Runner(MMRunner):
    """mmengine's ``Runner`` (same arguments) with:

    - **Crash-safe checkpoints** (:meth:`save_checkpoint`): rank 0 writes the file under a temporary
      name in its directory, flushes it to disk and renames it; a process killed at any moment leaves
      the previous checkpoints intact. Every rank waits until the file is in place. A failed write
      (disk full, read-only ``work_dir``) stops the run on every rank with one error line
      (:class:`CheckpointSaveError`, exit status 1) and leaves the previous checkpoints as they were.
    - **A resume that survives a bad checkpoint** (:meth:`load_or_resume`): ``--resume`` tries the
      checkpoints of the run newest first (``epoch_<N>.pth``, ``iter_<N>.pth``, the one
      ``last_checkpoint`` names); one that cannot be read is reported in one warning line and the
      previous one is used.
    - **Exact mid-epoch resume** with :class:`trainer.loops.EpochBasedTrainLoop`: checkpoints record
      the position within the epoch and, in distributed runs, every rank's model buffers (BatchNorm
      statistics, which ranks keep apart between the epoch-end averages of ``SyncBuffersHook``), each
      rank's given back on resume. A checkpoint saved part-way through an epoch that this run cannot
      continue exactly (see :meth:`~trainer.loops.EpochBasedTrainLoop.mid_epoch_problem`) is passed
      over, with a log line, for the one saved at that epoch's start.
    - **A resume that needs no shared storage**: only rank 0 reads checkpoint files (looks for them,
      reads the chosen one) and hands the checkpoint to the other ranks over the process group
      (:func:`trainer.handover.hand_over`); they resume from it as from the file, and need no access to
      rank 0's ``work_dir``. Remote checkpoints (``s3://`` ...) are read by every rank, as mmengine does.

    Rank 0 prints ``trainer: resumed from <path> at epoch=<E> iter=<I>`` after resuming (E epochs and I
    iterations done).

    With ``channels_last=True`` in the config (``--channels-last``) the model is made channels-last
    before it is wrapped (:func:`trainer.performance.to_channels_last`), and its weights are initialised
    as without it (:meth:`_init_model_weights`).
    """

    def __init__(self, *args, **kwargs) -> None:
        self._channels_last = False
        super().__init__(*args, **kwargs)
        self._latest: tuple | None = None  # (path, epoch, iter) of the newest full checkpoint

    def wrap_model(self, model_wrapper_cfg, model):
        """mmengine's ``wrap_model``, after making the model channels-last where the config asks for it
        (before DDP registers the parameters' layout)."""
        if self.cfg.get("channels_last", False):
            self._channels_last = to_channels_last(model)
        return super().wrap_model(model_wrapper_cfg, model)

    def _init_model_weights(self) -> None:
        """mmengine's weight initialisation, on the weights in their usual (contiguous) layout: torch's
        random fills run through memory in order, so channels-last weights would get the same random
        numbers in other places, and the run would start from other weights than without the flag."""
        if not self._channels_last:
            return super()._init_model_weights()
        self._unwrapped_model.to(memory_format=torch.contiguous_format)
        super()._init_model_weights()
        self._unwrapped_model.to(memory_format=torch.channels_last)

    # ---- checkpoints --------------------------------------------------------------------------------------------

    def save_checkpoint(self, out_dir: str, filename: str, file_client_args=None, save_optimizer: bool = True,
                        save_param_scheduler: bool = True, meta: dict | None = None, by_epoch: bool = True,
                        backend_args: dict | None = None) -> None:
        """mmengine's ``save_checkpoint`` (same arguments), crash-safe; call it on every rank.

        ``meta`` also gets the loop's position (``epoch_iter``, ``epoch_length``, ``global_batch_size``;
        see :meth:`trainer.loops.EpochBasedTrainLoop.position`). Local files are written as a temporary
        file, flushed, renamed to ``filename`` and the directory flushed; other storage (``s3://`` ...)
        as mmengine does.

        Raises:
            CheckpointSaveError: The write failed (on every rank).
        """
        meta = dict(meta or {})
        meta.setdefault("epoch", self.epoch + 1 if by_epoch else self.epoch)
        meta.setdefault("iter", self.iter if by_epoch else self.iter + 1)
        if isinstance(self._train_loop, EpochBasedTrainLoop):
            meta.update(self._train_loop.position(meta["epoch"]))
            if self.distributed and meta["epoch_iter"]:
                meta["rank_buffers"] = all_gather_object(self._buffers())
        args = (file_client_args, save_optimizer, save_param_scheduler, meta, by_epoch, backend_args)
        path = join_path(out_dir, filename, backend_args=backend_args)
        failure = None
        if self.rank == 0:
            try:
                if file_client_args is None and isinstance(get_file_backend(out_dir, backend_args=backend_args),
                                                           LocalBackend):
                    self._write_checkpoint(out_dir, filename, *args)
                else:
                    super().save_checkpoint(out_dir, filename, *args)
            except Exception as err:  # reported on every rank, so that none waits for the others
                reason = err.strerror if isinstance(err, OSError) and err.strerror else one_line(err)
                kept = read_pointer(self.work_dir)
                failure = f"cannot save checkpoint {path}: {reason}; " + (
                    f"the last good checkpoint ({kept}) is kept" if kept else "no checkpoint was saved before")
        if any_rank(failure is not None):
            raise CheckpointSaveError(failure or f"rank 0 could not save checkpoint {path}: stopping")
        if save_optimizer and save_param_scheduler:
            self._latest = (path, meta["epoch"], meta["iter"])

    def _write_checkpoint(self, out_dir: str, filename: str, *args) -> None:
        """Rank 0: write the checkpoint to ``.<filename>.<pid>.tmp`` with mmengine, then commit it."""
        os.makedirs(out_dir, exist_ok=True)
        remove_temporaries(out_dir)
        temporary = osp.join(out_dir, temporary_name(filename))
        try:
            super().save_checkpoint(out_dir, osp.basename(temporary), *args)
            commit(temporary, osp.join(out_dir, filename))
        except BaseException:
            discard(temporary)
            raise

    def checkpoint_of(self, epoch: int, iteration: int) -> str | None:
        """The checkpoint (with optimizer and scheduler state) saved or resumed of the state after
        ``epoch`` epochs and ``iteration`` iterations, if this run has one."""
        if self._latest is not None and self._latest[1:] == (epoch, iteration):
            return self._latest[0]
        return None

    # ---- resuming -----------------------------------------------------------------------------------------------

    def load_or_resume(self) -> None:
        """Load ``load_from``, or resume: from ``--resume PATH``, else from the newest usable checkpoint
        of the run (see the class docstring); with nothing to resume from, training starts afresh.

        Raises:
            UnreadableCheckpoint: ``--resume PATH`` cannot be read.
            TrainerError: ``--resume PATH`` was saved part-way through an epoch this run cannot
                continue exactly.
        """
        if self._has_loaded or not self._resume:
            return super().load_or_resume()
        choice = None
        if self.rank == 0:
            try:
                choice = self._choose_checkpoint()
            except Exception as err:  # raised below on every rank, so that none waits for the others
                choice = err
        if self.distributed:  # every rank resumes from rank 0's choice
            shared = [choice]
            broadcast_object_list(shared, src=0)
            choice = shared[0]
        if isinstance(choice, Exception):
            raise choice
        if choice is None:
            self.logger.info("trainer: no usable checkpoint to resume from: training starts at the beginning")
            return
        path, meta = choice
        if self._load_from is None:
            self.logger.info(f"Auto resumed from the latest checkpoint {path}.")
        if self.distributed and "://" not in path:
            with handed_over(path, self._hand_over(path)):
                self.resume(path)
        else:
            self.resume(path)
        if isinstance(self._train_loop, EpochBasedTrainLoop):
            self._train_loop.resume_position(meta)
        rank_buffers = meta.get("rank_buffers")
        if rank_buffers and len(rank_buffers) == self.world_size:
            self._unwrapped_model.load_state_dict(rank_buffers[self.rank], strict=False)
        self._use_resumed_seed()
        self._latest = (path, self.epoch, self.iter)
        self._has_loaded = True
        if self.rank == 0:
            emit(resumed_line(path, self.epoch, self.iter))

    def _choose_checkpoint(self):
        """Rank 0: ``(path, meta)`` of the checkpoint to resume from, None, or the error to raise on every
        rank."""
        explicit = self._load_from is not None
        for path in [self._load_from] if explicit else self._resume_candidates():
            if "://" in path:  # remote: mmengine loads it, unchecked
                return path, {}
            try:
                meta = read_checkpoint(path, map_location="cpu", mmap=True).get("meta") or {}
            except FileNotFoundError:
                if explicit:
                    return TrainerError(f"--resume: checkpoint not found: {path}")
                continue  # removed since it was listed
            except UnreadableCheckpoint as err:
                if explicit:
                    return err
                self.logger.warning(f"trainer: {err}: trying the previous checkpoint")
                continue
            problem = (self._train_loop.mid_epoch_problem(meta)
                       if isinstance(self._train_loop, EpochBasedTrainLoop) else None)
            if problem is None:
                return path, meta
            where = (f"{path} was saved part-way through epoch {meta['epoch'] + 1} "
                     f"(iteration {meta['epoch_iter']}/{meta.get('epoch_length')})")
            if explicit:
                return TrainerError(f"--resume: {where} and cannot be continued exactly: {problem} "
                                    "(resume from a checkpoint saved at the end of an epoch)")
            self.logger.warning(f"trainer: {where}, but {problem}: resuming from the start of that epoch")
        return None

    def _hand_over(self, path: str):
        """The checkpoint ``path`` on every rank: rank 0 reads it onto the device mmengine's ``resume``
        maps it to and hands it to the others, without ``meta['rank_buffers']`` (every rank has that
        from the choice).

        Raises:
            TrainerError: On every rank, when rank 0 cannot read the file.
        """
        from mmengine.device import get_device

        checkpoint = None
        if self.rank == 0:
            try:
                checkpoint = read_checkpoint(path, map_location=get_device())
                checkpoint.get("meta", {}).pop("rank_buffers", None)
            except Exception as err:  # raised below on every rank, so that none waits for the others
                checkpoint = err if isinstance(err, TrainerError) else TrainerError(  # a picklable one
                    f"cannot read checkpoint {path}: {one_line(err)}")
        checkpoint = hand_over(checkpoint, get_device())
        if isinstance(checkpoint, Exception):
            raise checkpoint
        return checkpoint

    def _resume_candidates(self) -> list[str]:
        """The run's checkpoints, newest first: in ``work_dir`` and the directory of the one
        ``last_checkpoint`` names, the CheckpointHook's ``epoch_<N>.pth`` (or its ``filename_tmpl``) and the
        preemption checkpoints ``iter_<N>.pth``, ordered by iterations done (an epoch's checkpoint before a
        preemption checkpoint of the same state); first a checkpoint only the pointer names (remote, or
        another ``filename_tmpl``)."""
        pointer = read_pointer(self.work_dir)
        directories = {self.work_dir}
        if pointer and "://" not in pointer:
            if osp.isfile(pointer):
                directories.add(osp.dirname(pointer))
            else:
                self.logger.warning(f"trainer: {self.work_dir}/last_checkpoint names {pointer}, which does not "
                                    "exist: looking for checkpoints in the work_dir")
                pointer = None
        hook = next((h for h in self.hooks if isinstance(h, MMCheckpointHook)), None)
        templates = {PREEMPTED_TEMPLATE: 1}
        if hook is not None:
            templates[hook.filename_tmpl] = len(self.train_dataloader) if hook.by_epoch else 1
        order = {}
        for directory in directories:
            for template, iterations in templates.items():
                for number, path in numbered_files(directory, template).items():
                    order[osp.abspath(path)] = (number * iterations, template != PREEMPTED_TEMPLATE)
        candidates = sorted(order, key=order.get, reverse=True)
        if pointer and ("://" in pointer or osp.abspath(pointer) not in order):
            candidates.insert(0, pointer)
        return candidates

    @property
    def _unwrapped_model(self):
        return self.model.module if is_model_wrapper(self.model) else self.model

    def _buffers(self) -> dict:
        """This rank's model buffers (BatchNorm running statistics ...), as CPU tensors."""
        model = self._unwrapped_model
        names = {name for name, _ in model.named_buffers()}
        return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if k in names}

    def _use_resumed_seed(self) -> None:
        """Give the train sampler the resumed seed: without ``randomness.seed`` the Runner drew a new one,
        which mmengine replaces by the checkpoint's only after the sampler was built with it."""
        from mmengine.dataset import DefaultSampler

        batch_sampler = self.train_dataloader.batch_sampler
        sampler = getattr(batch_sampler, "sampler", None)
        if isinstance(sampler, DefaultSampler):
            sampler.seed = self.seed
