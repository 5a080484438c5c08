"""The lines every rank prints to stdout, which launchers and tests grep (the trainer's output contract).

- at start: ``trainer: launcher=<l> rank=<r> local_rank=<lr> world_size=<w> backend=<gloo|nccl|none>
  device=<cpu|cuda:N>``
- the dtype of the forward pass: ``trainer: amp dtype=<float32|float16|bfloat16>``
- at the end of training: ``trainer: rank=<r> final_weights_sha256=<hex>``
"""

from __future__ import annotations

import hashlib


def start_line(info, backend: str, device: str) -> str:
    """The start line of a rank; ``info`` is a :class:`trainer.launch.LaunchInfo`."""
    return (f"trainer: launcher={info.launcher} rank={info.rank} local_rank={info.local_rank} "
            f"world_size={info.world_size} backend={backend} device={device}")


def amp_line(dtype: str) -> str:
    """The line naming the dtype the forward pass computes in."""
    return f"trainer: amp dtype={dtype}"


def weights_sha256(model) -> str:
    """sha256 over ``model.state_dict()``'s tensors in key order: the bytes of each tensor's
    contiguous CPU copy."""
    import torch

    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def final_line(rank: int, sha256: str) -> str:
    """The end-of-training line of a rank."""
    return f"trainer: rank={rank} final_weights_sha256={sha256}"
