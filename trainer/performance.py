"""Speed settings of a training step on the GPU: what each flag sets, what is on by default, and checks.

| setting | where it lives | default |
|---|---|---|
| fused optimizer step | ``optim_wrapper.optimizer.fused`` (torch) | on CUDA, for a torch optimizer that has one |
| non-blocking copies | ``ClsDataPreprocessor(non_blocking=...)`` (mmengine) | on |
| prefetch to the device | ``train_cfg.prefetch`` (:class:`trainer.loops.EpochBasedTrainLoop`) | on CUDA |
| channels-last | ``channels_last`` (``--channels-last``) | off |
| cuDNN benchmark | ``env_cfg.cudnn_benchmark`` (mmengine; ``--cudnn-benchmark``) | off |
| ``torch.compile`` | ``compile`` (mmengine; ``--compile``) | off |
| JPEG decoding on the GPU | ``LoadImageFromFile(imdecode_backend='nvjpeg')`` (``--gpu-decode``) | off |

The defaults are the settings that change no result beyond rounding and cost nothing where they do not
help: a fused optimizer step is one kernel instead of several per parameter group, and with fp16 loss
scaling it checks for infinite gradients on the GPU instead of waiting for the GPU every iteration; a
non-blocking copy lets the host go on queueing work; prefetching copies the next batch on a second
CUDA stream while the current one trains. The others can cost: channels-last is slower for models
without convolutions and, in fp32, for some convolutions; cuDNN benchmark autotunes every new input
size again (and a config that says ``cudnn_benchmark=False``, as MMPretrain's default runtime does, is
obeyed); compiling takes a minute or more before the first iteration; GPU decoding moves work from the
data workers to the GPU, which only pays when the workers cannot keep up.

Nothing here imports torch at module level: flags are applied before torch is imported.
"""

from __future__ import annotations

import sys

from trainer.errors import UsageError
from trainer.setup_cfg import loader_datasets

#: The ``imdecode_backend`` of ``LoadImageFromFile`` that decodes JPEGs on the GPU.
GPU_DECODER = "nvjpeg"


def add_arguments(parser) -> None:
    """Add the speed flags to the ``python -m trainer`` parser."""
    group = parser.add_argument_group("speed (GPU)")
    group.add_argument("--channels-last", action="store_true",
                       help="keep the model's 4-D weights and activations channels-last (NHWC): faster "
                       "convolutions on tensor cores, mostly with --amp (ignored, with a warning, for a model "
                       "without 2-D convolutions)")
    group.add_argument("--cudnn-benchmark", action="store_true",
                       help="let cuDNN time its algorithms for each new input size and keep the fastest "
                       "(env_cfg.cudnn_benchmark): for inputs of fixed size")
    group.add_argument("--compile", action="store_true",
                       help="torch.compile the training step (mmengine's `compile`; the first iterations "
                       "compile it, reported as `trainer: compile: ...`); where torch has no working compiler "
                       "backend, a warning and eager training")
    group.add_argument("--gpu-decode", action="store_true",
                       help="decode JPEGs on the GPU (nvJPEG through torchvision): the data workers only read "
                       "the files and choose the crops and flips, done after decoding on the GPU")


def apply_flags(cfg, args) -> None:
    """Set what the speed flags ask for in ``cfg`` (before ``--cfg-options``, which may override them).

    Raises:
        UsageError: ``--gpu-decode`` for a config whose pipelines load no image files.
    """
    if getattr(args, "channels_last", False):
        cfg.channels_last = True
    if getattr(args, "cudnn_benchmark", False):
        env_cfg = cfg.get("env_cfg") or {}
        env_cfg["cudnn_benchmark"] = True
        cfg.env_cfg = env_cfg
    if getattr(args, "compile", False) and not isinstance(cfg.get("compile"), dict):
        cfg.compile = True  # a dict already holds the user's torch.compile options
    if getattr(args, "gpu_decode", False):
        loaders = list(_image_loading_steps(cfg))
        if not loaders:
            raise UsageError("--gpu-decode: no LoadImageFromFile in the dataloaders' pipelines: nothing to decode")
        for step in loaders:
            step["imdecode_backend"] = GPU_DECODER


def _image_loading_steps(cfg):
    """Every ``LoadImageFromFile`` step of the dataloaders' pipelines (wrapped datasets included)."""
    for _, dataset in loader_datasets(cfg):
        for step in dataset.get("pipeline") or []:
            if isinstance(step, dict) and str(step.get("type", "")).rpartition(".")[2] == "LoadImageFromFile":
                yield step


def configure(cfg, cuda: bool) -> dict:
    """Resolve the speed settings of a run (after the flags, the config and ``--cfg-options``) into
    ``cfg``, and return them for :func:`speed_line`.

    - Fused optimizer steps on CUDA, for a torch optimizer that has them, unless the optimizer config
      names ``fused`` or ``foreach``.
    - Prefetching to the device on CUDA, unless ``train_cfg.prefetch`` says otherwise (the trainer's
      epoch-based loop only).
    - The trainer's ``RuntimeInfoHook`` (losses logged without a wait per iteration,
      :mod:`trainer.deferred_scalars`), also in configs of another scope, unless the config names one.
    - ``compile``: checked; without a working backend, one warning line and eager training.
    - GPU decoding: checked; without CUDA or without torchvision's nvJPEG, one error line.

    Raises:
        UsageError: GPU decoding asked for where it cannot run.
    """
    from trainer.registry import SCOPE  # hooks and loop named so that configs of any scope find them

    default_hooks = cfg.get("default_hooks") or {}
    default_hooks.setdefault("runtime_info", dict(type=f"{SCOPE}.RuntimeInfoHook"))
    cfg.default_hooks = default_hooks
    settings = dict(channels_last=bool(cfg.get("channels_last", False)),
                    cudnn_benchmark=bool((cfg.get("env_cfg") or {}).get("cudnn_benchmark", False)))
    settings["fused_optimizer"] = _default_fused_optimizer(cfg, cuda)
    train_cfg = cfg.get("train_cfg") or {}
    if train_cfg.get("type") in ("EpochBasedTrainLoop", f"{SCOPE}.EpochBasedTrainLoop"):
        train_cfg.setdefault("prefetch", cuda)
        settings["prefetch"] = bool(train_cfg["prefetch"]) and cuda
    else:
        settings["prefetch"] = False
    compile_cfg = cfg.get("compile", None)
    if compile_cfg:
        problem = compile_problem(compile_cfg, cuda)
        if problem:
            sys.stderr.write(f"trainer: warning: --compile: {problem}: training without torch.compile\n")
            cfg.compile = False
        else:
            hooks = list(cfg.get("custom_hooks") or [])
            hooks.append(dict(type=f"{SCOPE}.CompileTimeHook"))
            cfg.custom_hooks = hooks
    settings["compile"] = bool(cfg.get("compile", False))
    decoders = {step.get("imdecode_backend", "cv2") for step in _image_loading_steps(cfg)}
    if GPU_DECODER in decoders:
        problem = gpu_decode_problem(cuda)
        if problem:
            raise UsageError(f"--gpu-decode (imdecode_backend='{GPU_DECODER}'): {problem}")
    settings["decode"] = "gpu" if GPU_DECODER in decoders else "cpu"
    return settings


def speed_line(settings: dict) -> str:
    """The line naming the resolved speed settings, e.g. ``trainer: speed channels_last=off ...``."""
    words = [f"{key}={'on' if value is True else 'off' if value is False else value}"
             for key, value in settings.items()]
    return "trainer: speed " + " ".join(words)


def _default_fused_optimizer(cfg, cuda: bool) -> bool:
    """Turn on the fused step of the config's torch optimizer on CUDA; return whether it is on."""
    import inspect

    import torch

    optimizer = (cfg.get("optim_wrapper") or {}).get("optimizer")
    if not isinstance(optimizer, dict):
        return False
    name = optimizer.get("type")
    cls = name if isinstance(name, type) else getattr(torch.optim, str(name).rpartition(".")[2], None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        return False  # not one of torch's
    if "fused" not in inspect.signature(cls).parameters:
        return False
    if cuda and "fused" not in optimizer and "foreach" not in optimizer:
        optimizer["fused"] = True
    return bool(optimizer.get("fused", False))


def compile_problem(compile_cfg, cuda: bool) -> str | None:
    """Why ``torch.compile`` with the config's ``compile`` options cannot work here; None when it can.

    Checks that torch has ``torch.compile`` and supports this Python, and for the default backend
    (inductor) the compiler it needs: Triton on CUDA, a C++ compiler on the CPU. Other backends are
    not checked.
    """
    import platform

    import torch

    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile (torch >= 2.0 has)"
    try:
        import torch._dynamo
        supported = torch._dynamo.is_dynamo_supported()
    except Exception as err:  # a broken install
        return f"torch.compile cannot start: {type(err).__name__}: {err}"
    if not supported:
        return f"torch {torch.__version__} cannot compile on Python {platform.python_version()}"
    backend = compile_cfg.get("backend", "inductor") if isinstance(compile_cfg, dict) else "inductor"
    if backend != "inductor":
        return None
    if cuda:
        try:
            from torch.utils._triton import has_triton
        except ImportError:
            return None  # a torch that does not say; the first iteration will tell
        return None if has_triton() else "the inductor backend needs Triton on CUDA (pip install triton)"
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
    except ImportError:
        return None
    try:
        get_cpp_compiler()
    except Exception:
        return "the inductor backend needs a C++ compiler on the CPU (g++ or clang++; or set CXX)"
    return None


def gpu_decode_problem(cuda: bool) -> str | None:
    """Why JPEGs cannot be decoded on the GPU here (no CUDA device, no torchvision, or a torchvision that
    cannot decode on CUDA); None when they can. Decodes one small JPEG on the GPU to find out."""
    if not cuda:
        return "no CUDA device is visible"
    try:
        import torchvision  # noqa: F401
        from torchvision.io import decode_jpeg
    except ImportError as err:
        return f"needs torchvision built for this torch ({err})"
    import cv2
    import numpy as np
    import torch

    ok, encoded = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    try:
        decode_jpeg([torch.from_numpy(encoded.reshape(-1))], device="cuda")
    except Exception as err:
        message = " ".join(str(err).split())[:200]
        return f"torchvision {torchvision.__version__} cannot decode JPEGs on CUDA: {type(err).__name__}: {message}"
    return None


def to_channels_last(model) -> bool:
    """Make ``model``'s 4-D parameters and buffers channels-last (in place); False, with a warning line,
    when it has no 2-D convolution to gain from it."""
    import torch

    if not any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        sys.stderr.write(f"trainer: warning: --channels-last: {type(model).__name__} has no 2-D convolution: "
                         "ignored\n")
        return False
    model.to(memory_format=torch.channels_last)
    return True

