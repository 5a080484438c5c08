"""The lines every rank prints to stdout, which launchers and tests grep (the trainer's output contract).

- at start: ``trainer: launcher=<l> rank=<r> local_rank=<lr> world_size=<w> backend=<gloo|nccl|none>
  device=<cpu|cuda:N>``
- the dtype of the forward pass: ``trainer: amp dtype=<float32|float16|bfloat16>``
- at the end of training: ``trainer: rank=<r> final_weights_sha256=<hex>``
- rank 0, after resuming: ``trainer: resumed from <path> at epoch=<E> iter=<I>``
- rank 0, when preempted (SIGTERM/SIGINT; exit status 143): ``trainer: preempted at epoch=<E> iter=<I>,
  saved <path>``

``E`` counts the epochs done, ``I`` the iterations done over all epochs. Each line is written with one
``write`` (see :func:`emit`), so the lines of ranks sharing one pipe never run into each other.
"""

from __future__ import annotations

import hashlib
import sys


def emit(line: str) -> None:
    """Write ``line`` and its newline to stdout in one write, and flush (``print`` writes the newline
    separately, and under ``python -u`` another rank's output can land between the two)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


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


def resumed_line(path: str, epoch: int, iteration: int) -> str:
    """Rank 0's line after resuming from ``path`` (``epoch`` epochs and ``iteration`` iterations done)."""
    return f"trainer: resumed from {path} at epoch={epoch} iter={iteration}"


def preempted_line(epoch: int, iteration: int, path: str) -> str:
    """Rank 0's line when a signal stopped training, once the checkpoint ``path`` is saved."""
    return f"trainer: preempted at epoch={epoch} iter={iteration}, saved {path}"
