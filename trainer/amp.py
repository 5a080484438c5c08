"""``--amp``: automatic mixed precision on CUDA (float16) and on CPUs with native bfloat16.

mmengine's ``AmpOptimWrapper`` refuses to run on the CPU, and CPU autocast supports only bfloat16, which
is fast only where the CPU computes it natively (AVX512-BF16 or AMX; ~36x slower than float32 on an
AVX2-only CPU). So ``--amp`` means:

- CUDA: ``AmpOptimWrapper`` with dynamic loss scaling, float16.
- CPU with native bf16: :class:`trainer.optim_wrapper.CpuBf16OptimWrapper` (forward under
  ``torch.autocast('cpu', bfloat16)``).
- CPU without it: a warning, and float32.

``TRAINER_AMP_DTYPE`` overrides the choice: ``bf16`` (forces bfloat16, also on CPUs without native
support), ``fp16`` (CUDA only), ``fp32`` (mixed precision off) or ``auto`` (the default).
"""

from __future__ import annotations

import os
import sys

from trainer.errors import UsageError

DTYPE_ENV = "TRAINER_AMP_DTYPE"
_DTYPE_NAMES = {"auto": None, "bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16",
                "float16": "float16", "fp32": "float32", "float32": "float32"}


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU computes bfloat16 natively: x86 ``avx512_bf16`` or ``amx_bf16``, Arm ``bf16``
    (from ``cpuinfo``'s flags), else a capability of that name reported by torch."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            flags = set()
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    flags.update(value.split())
        return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    except OSError:
        import torch

        capability = torch.backends.cpu.get_cpu_capability().upper()
        return "BF16" in capability or "AMX" in capability


def requested_dtype(environ=os.environ) -> str | None:
    """The dtype asked for by ``TRAINER_AMP_DTYPE`` (``None`` for ``auto`` or unset).

    Raises:
        UsageError: An unknown value.
    """
    value = environ.get(DTYPE_ENV, "auto").strip().lower() or "auto"
    if value not in _DTYPE_NAMES:
        raise UsageError(f"{DTYPE_ENV}={value!r}: expected auto, bf16, fp16 or fp32")
    return _DTYPE_NAMES[value]


def configure_amp(cfg, amp: bool, cuda: bool, environ=os.environ) -> str:
    """Set ``cfg.optim_wrapper`` for ``--amp`` and return the dtype the forward pass will compute in.

    Args:
        cfg (mmengine.config.Config): The config (its ``optim_wrapper.type`` is ``OptimWrapper`` or
            ``AmpOptimWrapper``; :func:`trainer.setup_cfg.apply_args` checks that).
        amp (bool): Whether ``--amp`` was given (a config whose ``optim_wrapper`` is an
            ``AmpOptimWrapper`` counts as ``--amp``).
        cuda (bool): Whether training runs on a CUDA device.
        environ (Mapping): Where ``TRAINER_AMP_DTYPE`` is read. Defaults to ``os.environ``.

    Returns:
        str: ``float16``, ``bfloat16`` or ``float32``.

    Raises:
        UsageError: ``TRAINER_AMP_DTYPE=fp16`` on the CPU.
    """
    wrapper = cfg.optim_wrapper
    amp = amp or wrapper.get("type", "OptimWrapper") == "AmpOptimWrapper"
    if not amp:
        return "float32"
    dtype = requested_dtype(environ)
    if cuda:
        dtype = dtype or wrapper.get("dtype") or "float16"
    elif dtype == "float16":
        raise UsageError(f"{DTYPE_ENV}=fp16: CPU autocast supports only bf16")
    elif dtype is None:
        if cpu_has_native_bf16():
            dtype = "bfloat16"
        else:
            sys.stderr.write(f"trainer: warning: --amp: this CPU has no native bfloat16 (AVX512-BF16 or AMX), "
                             f"where bfloat16 is slower than float32; training in float32 "
                             f"({DTYPE_ENV}=bf16 forces bfloat16)\n")
            dtype = "float32"
    if cuda and dtype != "float32":
        wrapper.type = "AmpOptimWrapper"
        wrapper.setdefault("loss_scale", "dynamic")
        wrapper.dtype = dtype
        return dtype
    for key in ("loss_scale", "dtype", "use_fsdp"):  # AmpOptimWrapper-only arguments
        wrapper.pop(key, None)
    wrapper.type = "CpuBf16OptimWrapper" if dtype == "bfloat16" else "OptimWrapper"
    return dtype
