"""Hooks of the runtime, registered in the trainer's ``HOOKS``.

- :class:`CheckpointHook` replaces mmengine's under the same name (configs need no change): the
  ``last_checkpoint`` pointer is written crash-safe, after the checkpoint.
- Added to every run by :func:`trainer.run.add_runtime_hooks`: :class:`FinalWeightsHook`,
  :class:`PreemptionHook`, :class:`IterationSeedHook`, and :class:`ScaledLrLogHook` when the optimizer
  has a learning rate.
"""

from __future__ import annotations

from mmengine.fileio import join_path
from mmengine.hooks import CheckpointHook as MMCheckpointHook
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from trainer import preemption
from trainer.checkpoint import CheckpointSaveError, numbered_files, point_to
from trainer.launch import any_rank
from trainer.registry import HOOKS
from trainer.report import emit, final_line, preempted_line, weights_sha256
from trainer.seeding import seed_global_generators

#: File name of the checkpoint a preempted run saves after iteration N (mmengine's name for it).
PREEMPTED_TEMPLATE = "iter_{}.pth"


def on_rank_0(runner, action) -> None:
    """Run ``action`` (a file operation) on rank 0 while the other ranks wait.

    Raises:
        CheckpointSaveError: On every rank, when ``action`` failed with an OSError.
    """
    failure = None
    if runner.rank == 0:
        try:
            action()
        except OSError as err:
            failure = f"cannot write {err.filename or runner.work_dir}: {err.strerror or err}"
    if any_rank(failure is not None):
        raise CheckpointSaveError(failure or "rank 0 could not update the checkpoints: stopping")


@HOOKS.register_module()
class CheckpointHook(MMCheckpointHook):
    """mmengine's ``CheckpointHook`` (same arguments), crash-safe.

    - The checkpoint is written by :meth:`trainer.runner.Runner.save_checkpoint`: rank 0 writes a
      temporary file and renames it; every rank waits until it is in place.
    - Then rank 0 updates ``last_checkpoint`` the same way, so the pointer only ever names a
      complete file.
    - Only then is the oldest checkpoint beyond ``max_keep_ckpts`` removed (mmengine removes it before
      saving), and the checkpoints a preempted run saved before this one (``iter_<N>.pth``, see
      :class:`PreemptionHook`). The other ranks wait; a failure stops every rank
      (:class:`trainer.checkpoint.CheckpointSaveError`).
    """

    def _save_checkpoint_with_step(self, runner, step, meta):
        dropped = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                dropped = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info("keep_ckpt_ids", list(self.keep_ckpt_ids))

        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info("last_ckpt", self.last_ckpt)
        runner.save_checkpoint(self.out_dir, filename, self.file_client_args, save_optimizer=self.save_optimizer,
                               save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
                               backend_args=self.backend_args, **self.args)
        on_rank_0(runner, lambda: self._point_and_clean(runner, dropped, meta["iter"]))

    def _point_and_clean(self, runner, dropped: int | None, iteration: int) -> None:
        point_to(runner.work_dir, self.last_ckpt)
        if dropped is not None:
            self._remove(self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(dropped)))
        if self.filename_tmpl != PREEMPTED_TEMPLATE:  # else they are this hook's own, counted above
            for done, path in numbered_files(self.out_dir, PREEMPTED_TEMPLATE).items():
                if done < iteration:
                    self._remove(path)

    def _remove(self, path: str) -> None:
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # checkpoints saved by DeepSpeed are directories
            self.file_backend.rmtree(path)


@HOOKS.register_module()
class PreemptionHook(Hook):
    """Stop every rank at the same iteration after SIGTERM or SIGINT, with a checkpoint (exit 143).

    After every training iteration, and before every epoch (a signal that came during the previous
    epoch's checkpoint or validation), the ranks agree whether any of them received a signal
    (:func:`trainer.launch.any_rank`, one all-reduce of an integer). If so, rank 0 saves the state
    reached (``iter_<N>.pth``, N = iterations done, in the CheckpointHook's ``out_dir``; or names the
    checkpoint just saved of that state), points ``last_checkpoint`` at it, and prints::

        trainer: preempted at epoch=<epochs done> iter=<iterations done>, saved <path>

    and every rank raises :class:`trainer.preemption.Preempted`. Runs last (priority ``LOWEST``): the
    iteration's log line, scheduler step and checkpoint come first.
    """

    priority = "LOWEST"

    def before_train_epoch(self, runner) -> None:
        if any_rank(preemption.requested()):
            self._stop(runner, runner.epoch, runner.iter)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if any_rank(preemption.requested()):
            self._stop(runner, runner.epoch, runner.iter + 1)

    def _stop(self, runner, epoch: int, iteration: int) -> None:
        path = runner.checkpoint_of(epoch, iteration)
        if path is None:
            hook = next((h for h in runner.hooks if isinstance(h, MMCheckpointHook)), None)
            out_dir = hook.out_dir if hook is not None else runner.work_dir
            filename = PREEMPTED_TEMPLATE.format(iteration)
            backend_args = getattr(hook, "backend_args", None)
            runner.save_checkpoint(out_dir, filename, backend_args=backend_args,
                                   meta=dict(epoch=epoch, iter=iteration))
            path = join_path(out_dir, filename, backend_args=backend_args)

        def point():
            point_to(runner.work_dir, path)
            emit(preempted_line(epoch, iteration, path))

        on_rank_0(runner, point)  # and no rank exits before the pointer names the checkpoint
        raise preemption.Preempted(path)


@HOOKS.register_module()
class IterationSeedHook(Hook):
    """Seed Python's, numpy's and torch's global generators before every training iteration from
    ``(randomness seed, iteration)`` (and the rank, with ``randomness.diff_rank_seed``).

    Randomness drawn in the training step (dropout, drop path, batch augments) is then a function of the
    seed and the iteration, as it is in the uninterrupted run when a run resumes at any iteration.
    Per-sample augmentation has its own generator (:class:`trainer.datasets.ResumableSampler`).
    Runs first (priority ``VERY_HIGH``).
    """

    priority = "VERY_HIGH"

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        key = [runner.seed, runner.iter]
        if runner._randomness_cfg.get("diff_rank_seed", False):
            key.append(runner.rank)
        seed_global_generators(key)


@HOOKS.register_module()
class FinalWeightsHook(Hook):
    """Print ``trainer: rank=<r> final_weights_sha256=<hex>`` on every rank after training.

    Runs last (priority ``LOWEST``) in ``after_run``, over the unwrapped model's ``state_dict``.
    """

    priority = "LOWEST"

    def after_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        emit(final_line(runner.rank, weights_sha256(model)))


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
