"""One training run: config + flags -> checks -> process group -> the trainer's Runner -> ``runner.train()``.

Everything that can be wrong with the command line, the config or the launch environment is checked
before torch is imported, the process group started or ``work_dir`` created. From then on, SIGTERM and
SIGINT stop the run at the end of an iteration with a checkpoint (:mod:`trainer.preemption`).
"""

from __future__ import annotations

import os.path as osp
import warnings

from trainer import performance, preemption
from trainer.amp import requested_dtype
from trainer.checkpoint import trusted_paths_from_env
from trainer.launch import read_launch_env
from trainer.mmpretrain_support import check_installed, config_file
from trainer.setup_cfg import (apply_args, check_data_paths, check_vis_backends, import_custom_modules,
                               load_config)


def train(args) -> None:
    """Train as ``python -m trainer`` with the parsed ``args`` (see :func:`trainer.cli.build_parser`).

    Raises:
        trainer.errors.TrainerError: A problem the user can act on (one line, no traceback).
    """
    cfg = load_config(config_file(args.config))  # `mmpretrain::x/y.py`: the installed package's config
    info = read_launch_env(args.launcher)
    apply_args(cfg, args, info.rank)
    check_installed(cfg)  # the package of its default_scope (MMPretrain: the [mmpretrain] extra)
    check_data_paths(cfg)
    check_vis_backends(cfg)
    requested_dtype()  # a bad TRAINER_AMP_DTYPE is reported before anything starts
    preemption.install()

    import torch

    from trainer.amp import configure_amp
    from trainer.checkpoint import install_trusted_loader
    from trainer.launch import init_process_group, leave_together
    from trainer.mmpretrain_support import check_torchvision
    from trainer.registry import RUNNERS, register_all_modules
    from trainer.report import amp_line, emit, start_line
    from trainer.scope import adapt_to_scope

    register_all_modules()  # the components, and the runtime's hooks and optimizer wrappers
    check_torchvision()  # mmengine imports it to log the environment
    import_custom_modules(cfg)
    cuda = torch.cuda.is_available()
    dtype = configure_amp(cfg, args.amp, cuda)
    if not cuda:  # pin_memory=True is the default (as MMPretrain); without a GPU it is a no-op
        warnings.filterwarnings("ignore", message=".*'pin_memory' argument is set as true but no accelerator")

    backend, device = init_process_group(info, cfg.get("env_cfg", {}).get("dist_cfg"))
    emit(start_line(info, backend, device))
    emit(amp_line(dtype))
    if info.distributed:
        configure_ddp(cfg, cuda)
    configure_runtime(cfg)
    add_runtime_hooks(cfg)
    adapt_to_scope(cfg)  # the runtime's parts in the config's scope; exact resume; unknown types

    resume_path = args.resume if args.resume not in (None, "auto") else None
    out_dir = ((cfg.get("default_hooks") or {}).get("checkpoint") or {}).get("out_dir")  # the run's own too
    install_trusted_loader([cfg.work_dir] + [p for p in (resume_path, out_dir) if p] + trusted_paths_from_env())
    emit(performance.speed_line(performance.configure(cfg, cuda)))
    preempted = finished = False
    try:
        runner = RUNNERS.build(cfg)
        runner.train()
        finished = True
    except preemption.Preempted:
        preempted = True  # the process leaves at once (cli.main); no teardown while peers exit too
        raise
    finally:
        if not preempted and torch.distributed.is_available() and torch.distributed.is_initialized():
            if finished:
                leave_together(backend)
            torch.distributed.destroy_process_group()


def configure_ddp(cfg, cuda: bool) -> None:
    """Distributed-only config: the DDP wrapper and buffer synchronisation.

    - Without CUDA, mmengine would pass ``device_ids=[LOCAL_RANK]`` to DDP, which DDP rejects for a CPU
      module: ``model_wrapper_cfg`` gets ``device_ids=None`` (type ``MMDistributedDataParallel`` unless
      the config names another wrapper).
    - ``SyncBuffersHook`` averages BatchNorm statistics over ranks after every epoch, so every rank
      validates, checkpoints and ends with the same weights.
    """
    if not cuda:
        wrapper = cfg.get("model_wrapper_cfg") or dict(
            type="MMDistributedDataParallel", broadcast_buffers=False,
            find_unused_parameters=cfg.get("find_unused_parameters", False))
        wrapper.setdefault("device_ids", None)
        cfg.model_wrapper_cfg = wrapper
    hooks = list(cfg.get("custom_hooks") or [])
    if not any(osp.basename(str(h.get("type", ""))).endswith("SyncBuffersHook") for h in hooks):
        hooks.append(dict(type="SyncBuffersHook"))
    cfg.custom_hooks = hooks


def configure_runtime(cfg) -> None:
    """Make the trainer's ``Runner`` (:mod:`trainer.runner`) the runner unless the config names a
    ``runner_type``, and its ``EpochBasedTrainLoop`` (:mod:`trainer.loops`) the loop of an epoch-based
    ``train_cfg`` that names no ``type``."""
    cfg.setdefault("runner_type", "Runner")
    train_cfg = cfg.get("train_cfg")
    if isinstance(train_cfg, dict) and "type" not in train_cfg and train_cfg.get("by_epoch", False):
        train_cfg.pop("by_epoch")
        train_cfg.type = "EpochBasedTrainLoop"


def add_runtime_hooks(cfg) -> None:
    """Add the runtime's hooks (:mod:`trainer.hooks`) to ``custom_hooks``: the contract lines
    (``FinalWeightsHook``, ``ScaledLrLogHook``), preemption (``PreemptionHook``) and per-iteration seeding
    (``IterationSeedHook``)."""
    base_lr = cfg.get("optim_wrapper", {}).get("optimizer", {}).get("lr")
    hooks = list(cfg.get("custom_hooks") or [])
    hooks += [dict(type="FinalWeightsHook"), dict(type="PreemptionHook"), dict(type="IterationSeedHook")]
    if base_lr is not None:
        hooks.append(dict(type="ScaledLrLogHook", base_lr=base_lr))
    cfg.custom_hooks = hooks
