"""One training run: config + flags -> checks -> process group -> mmengine Runner -> ``runner.train()``.

Everything that can be wrong with the command line, the config or the launch environment is checked
before torch is imported, the process group started or ``work_dir`` created.
"""

from __future__ import annotations

import os.path as osp
import warnings

from trainer.amp import requested_dtype
from trainer.checkpoint import trusted_paths_from_env
from trainer.launch import read_launch_env
from trainer.setup_cfg import (apply_args, check_data_paths, check_vis_backends, import_custom_modules,
                               load_config)


def train(args) -> None:
    """Train as ``python -m trainer`` with the parsed ``args`` (see :func:`trainer.cli.build_parser`).

    Raises:
        trainer.errors.TrainerError: A problem the user can act on (one line, no traceback).
    """
    cfg = load_config(args.config)
    apply_args(cfg, args)
    check_data_paths(cfg)
    check_vis_backends(cfg)
    info = read_launch_env(args.launcher)
    requested_dtype()  # a bad TRAINER_AMP_DTYPE is reported before anything starts

    import torch
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from trainer.amp import configure_amp
    from trainer.checkpoint import install_trusted_loader
    from trainer.launch import init_process_group
    from trainer.registry import register_all_modules
    from trainer.report import amp_line, start_line

    register_all_modules()  # the components, and the runtime's hooks and optimizer wrappers
    import_custom_modules(cfg)
    cuda = torch.cuda.is_available()
    dtype = configure_amp(cfg, args.amp, cuda)
    if not cuda:  # pin_memory=True is the default (as MMPretrain); without a GPU it is a no-op
        warnings.filterwarnings("ignore", message=".*'pin_memory' argument is set as true but no accelerator")

    backend, device = init_process_group(info, cfg.get("env_cfg", {}).get("dist_cfg"))
    print(start_line(info, backend, device), flush=True)
    print(amp_line(dtype), flush=True)
    if info.distributed:
        configure_ddp(cfg, cuda)
    add_runtime_hooks(cfg)

    resume_path = args.resume if args.resume not in (None, "auto") else None
    install_trusted_loader([cfg.work_dir] + ([resume_path] if resume_path else []) + trusted_paths_from_env())
    try:
        runner = RUNNERS.build(cfg) if "runner_type" in cfg else Runner.from_cfg(cfg)
        runner.train()
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
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


def add_runtime_hooks(cfg) -> None:
    """Add the hooks that print the contract lines (:mod:`trainer.hooks`) to ``custom_hooks``."""
    base_lr = cfg.get("optim_wrapper", {}).get("optimizer", {}).get("lr")
    hooks = list(cfg.get("custom_hooks") or [])
    hooks.append(dict(type="FinalWeightsHook"))
    if base_lr is not None:
        hooks.append(dict(type="ScaledLrLogHook", base_lr=base_lr))
    cfg.custom_hooks = hooks
