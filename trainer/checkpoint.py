"""Checkpoint files: trusted loading, crash-safe writing, and finding the ones to resume from.

Loading, on torch >= 2.6 where ``torch.load`` defaults to ``weights_only=True``: mmengine's checkpoints
hold logging state (``HistoryBuffer``, numpy arrays) that only a full unpickle restores, and a full
unpickle runs code from the file. :func:`install_trusted_loader` replaces mmengine's local-file loader:
files in a trusted location (the run's own ``work_dir``, the checkpoint given to ``--resume``, and the
paths in ``TRAINER_TRUSTED_CHECKPOINTS``) are fully unpickled; any other file loads weights-only, and one
holding more than weights is refused with a one-line error. A file that cannot be read at all (truncated,
corrupt) raises :class:`UnreadableCheckpoint`. Within :func:`handed_over`, loading the file rank 0 read and
handed to every rank returns that checkpoint instead of reading the file.

Writing: a file is written under a temporary name in its final directory (:func:`temporary_name`),
flushed to disk, renamed over the final name (:func:`commit`) and the directory entry flushed, so a
process killed at any moment leaves either the previous file or the new one, never half of one. The
``last_checkpoint`` pointer is written the same way (:func:`point_to`), after the checkpoint.
"""

from __future__ import annotations

import os
import os.path as osp
import pickle
import re
import zipfile
from contextlib import contextmanager

from trainer.errors import TrainerError

#: Checkpoint files or directories (separated by ``os.pathsep``) trusted in addition to work_dir and
#: the ``--resume`` checkpoint.
TRUSTED_ENV = "TRAINER_TRUSTED_CHECKPOINTS"

#: mmengine's pointer to the latest checkpoint, in work_dir.
POINTER = "last_checkpoint"
#: Temporary files of unfinished writes: ``.<final name>.<pid>.tmp``.
_TEMPORARY = re.compile(r"^\.(.+)\.(\d+)\.tmp$")

_trusted: list[str] = []
_handed: dict[str, object] = {}  # {path: checkpoint} within handed_over()


class UnreadableCheckpoint(TrainerError):
    """A checkpoint file that exists but cannot be loaded (truncated, corrupt, not a checkpoint)."""


class CheckpointSaveError(TrainerError):
    """A checkpoint or the pointer to it could not be written (disk full, read-only directory ...)."""


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
    """Load a local checkpoint: fully if it is trusted, weights-only otherwise; the checkpoint handed over
    for ``filename`` within :func:`handed_over`.

    Raises:
        FileNotFoundError: No such file.
        TrainerError: An untrusted file holds objects other than tensors and plain containers.
        UnreadableCheckpoint: The file cannot be loaded.
    """
    if filename in _handed:
        return _handed[filename]
    return read_checkpoint(filename, map_location)


@contextmanager
def handed_over(filename: str, checkpoint):
    """Within, mmengine's loading of the local checkpoint ``filename`` (:func:`load_from_local_trusted`)
    returns ``checkpoint`` instead of reading the file: what rank 0 read and handed over
    (:func:`trainer.handover.hand_over`) to ranks that may not see the file."""
    _handed[filename] = checkpoint
    try:
        yield
    finally:
        del _handed[filename]


def read_checkpoint(filename: str, map_location=None, mmap: bool = False):
    """:func:`load_from_local_trusted`; ``mmap=True`` maps the tensors' storage from the file instead of
    reading it (a cheap look at ``meta``).

    Raises:
        FileNotFoundError: No such file.
        TrainerError: An untrusted file holds objects other than tensors and plain containers.
        UnreadableCheckpoint: The file cannot be loaded.
    """
    import torch

    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f"{filename} can not be found.")
    trusted = is_trusted(filename)
    mmap = mmap and zipfile.is_zipfile(filename)  # torch maps only its zip format (else: the real error)
    try:
        return torch.load(filename, map_location=map_location, weights_only=not trusted, mmap=mmap)
    except pickle.UnpicklingError as err:
        if trusted:
            raise UnreadableCheckpoint(f"checkpoint {filename} is unreadable: {one_line(err)}") from None
        raise TrainerError(
            f"refusing to unpickle checkpoint {filename}: it holds more than weights and is not in a "
            f"trusted location (the run's work_dir, --resume PATH, {TRUSTED_ENV}); if you trust the "
            f"file, add it to {TRUSTED_ENV}") from None
    except Exception as err:  # truncated or garbled: torch raises RuntimeError, EOFError, KeyError ...
        raise UnreadableCheckpoint(f"checkpoint {filename} is unreadable: {one_line(err)}") from None


def one_line(err: BaseException) -> str:
    """``<ExceptionType>: <first sentence of the message>``, on one line."""
    message = " ".join(str(err).split()).split(". ")[0]  # torch adds sentences about reporting bugs
    return f"{type(err).__name__}: {message}" if message else type(err).__name__


def install_trusted_loader(trusted: list[str]) -> None:
    """Make ``trusted`` (files or directories) the trusted locations and register :func:`load_from_local_trusted`
    as mmengine's loader for local files (``CheckpointLoader`` scheme ``''``).

    Args:
        trusted (list[str]): Files or directories whose checkpoints may be fully unpickled.
    """
    from mmengine.runner import CheckpointLoader

    _trusted[:] = [osp.abspath(osp.expanduser(p)) for p in trusted]
    CheckpointLoader.register_scheme(prefixes="", loader=load_from_local_trusted, force=True)


# ---- crash-safe writing --------------------------------------------------------------------------------------

def temporary_name(filename: str) -> str:
    """The name a file is written under before :func:`commit` renames it: ``.<filename>.<pid>.tmp``."""
    return f".{filename}.{os.getpid()}.tmp"


def fsync_dir(directory: str) -> None:
    """Flush ``directory``'s entries (a rename in it) to disk."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(temporary: str, final: str) -> None:
    """Flush ``temporary`` to disk, rename it to ``final`` (atomic in one directory) and flush the directory.

    Raises:
        OSError: The flush or the rename failed (``temporary`` is left in place).
    """
    fd = os.open(temporary, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, final)
    fsync_dir(osp.dirname(osp.abspath(final)))


def discard(path: str) -> None:
    """Remove ``path`` if it exists (a temporary file of a failed write)."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def remove_temporaries(directory: str) -> None:
    """Remove the temporary files of writes that never finished in ``directory`` (a killed process's).

    Only one process (rank 0 of the job) writes into a run's directories, so every such file is stale.
    """
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        match = _TEMPORARY.match(name)
        if match and (match[1].endswith(".pth") or match[1] == POINTER):
            discard(osp.join(directory, name))


def point_to(work_dir: str, checkpoint: str) -> None:
    """Make ``work_dir/last_checkpoint`` name ``checkpoint`` (mmengine's pointer), crash-safe.

    Raises:
        OSError: The pointer could not be written (the previous one is left intact).
    """
    final = osp.join(work_dir, POINTER)
    temporary = osp.join(work_dir, temporary_name(POINTER))
    try:
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(checkpoint)
        commit(temporary, final)
    except OSError:
        discard(temporary)
        raise


def read_pointer(work_dir: str) -> str | None:
    """The checkpoint ``work_dir/last_checkpoint`` names, or None (no pointer, or an empty one)."""
    try:
        with open(osp.join(work_dir, POINTER), encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


# ---- finding checkpoints -------------------------------------------------------------------------------------

def numbered_files(directory: str, template: str) -> dict[int, str]:
    """``{N: path}`` of the files in local ``directory`` named as CheckpointHook's ``template`` names
    checkpoint N (``'epoch_{}.pth'`` -> ``epoch_3.pth``); empty when the directory does not exist."""
    prefix, _, suffix = template.partition("{}")
    pattern = re.compile(re.escape(prefix) + r"(\d+)" + re.escape(suffix))
    try:
        names = os.listdir(directory)
    except OSError:  # missing, or not a local directory
        return {}
    found = {}
    for name in names:
        match = pattern.fullmatch(name)
        if match and osp.isfile(osp.join(directory, name)):
            found[int(match[1])] = osp.join(directory, name)
    return found
