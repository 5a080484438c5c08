"""Loading local checkpoints on torch >= 2.6, where ``torch.load`` defaults to ``weights_only=True``.

mmengine's checkpoints hold logging state (``HistoryBuffer``, numpy arrays) that only a full unpickle
restores, and a full unpickle runs code from the file. :func:`install_trusted_loader` replaces
mmengine's local-file loader: files in a trusted location (the run's own ``work_dir``, the checkpoint
given to ``--resume``, and the paths in ``TRAINER_TRUSTED_CHECKPOINTS``) are fully unpickled; any other
file loads weights-only, and one holding more than weights is refused with a one-line error.
"""

from __future__ import annotations

import os
import os.path as osp
import pickle

from trainer.errors import TrainerError

#: Checkpoint files or directories (separated by ``os.pathsep``) trusted in addition to work_dir and
#: the ``--resume`` checkpoint.
TRUSTED_ENV = "TRAINER_TRUSTED_CHECKPOINTS"

_trusted: list[str] = []


def trusted_paths_from_env(environ=os.environ) -> list[str]:
    """The entries of ``TRAINER_TRUSTED_CHECKPOINTS`` (empty when unset)."""
    return [p for p in environ.get(TRUSTED_ENV, "").split(os.pathsep) if p]


def is_trusted(filename: str, trusted: list[str] | None = None) -> bool:
    """Whether ``filename`` is, or lies under, one of the ``trusted`` paths (symlinks resolved).

    Args:
        filename (str): A checkpoint file.
        trusted (list[str], optional): Trusted files or directories. Defaults to the paths given to
            :func:`install_trusted_loader`.
    """
    real = osp.realpath(filename)
    for root in _trusted if trusted is None else trusted:
        root = osp.realpath(root)
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            return True
    return False


def load_from_local_trusted(filename: str, map_location=None):
    """Load a local checkpoint: fully if it is trusted, weights-only otherwise.

    Raises:
        FileNotFoundError: No such file.
        TrainerError: An untrusted file holds objects other than tensors and plain containers.
    """
    import torch

    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f"{filename} can not be found.")
    trusted = is_trusted(filename)
    try:
        return torch.load(filename, map_location=map_location, weights_only=not trusted)
    except pickle.UnpicklingError:
        if trusted:
            raise
        raise TrainerError(
            f"refusing to unpickle checkpoint {filename}: it holds more than weights and is not in a "
            f"trusted location (the run's work_dir, --resume PATH, {TRUSTED_ENV}); if you trust the "
            f"file, add it to {TRUSTED_ENV}") from None


def install_trusted_loader(trusted: list[str]) -> None:
    """Make ``trusted`` (files or directories) the trusted locations and register :func:`load_from_local_trusted`
    as mmengine's loader for local files (``CheckpointLoader`` scheme ``''``).

    Args:
        trusted (list[str]): Files or directories whose checkpoints may be fully unpickled.
    """
    from mmengine.runner import CheckpointLoader

    _trusted[:] = [osp.abspath(osp.expanduser(p)) for p in trusted]
    CheckpointLoader.register_scheme(prefixes="", loader=load_from_local_trusted, force=True)
