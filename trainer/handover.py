"""Hand an object that holds tensors (a checkpoint) from one rank to every other over the process group.

A distributed resume reads the checkpoint file on rank 0 only and hands it to the other ranks with
:func:`hand_over`, so that they need no access to rank 0's ``work_dir``. Everything but the tensors
(the structure, numbers, strings, the message hub's numpy buffers) is pickled and sent in one
``broadcast_object_list``; then the tensors go as their bytes: each large one in a ``broadcast`` of its
own, from the tensor rank 0 loaded into one the receiver allocated, small ones together in buckets. No
rank holds more than the object, that small pickle and one bucket, where pickling the whole checkpoint
takes several copies of it on every rank (measured in ``bench/checkpoint_handover.py``).
"""

from __future__ import annotations

import io
import pickle


#: Tensors smaller than this go together, this many bytes at most in one broadcast (a broadcast costs ~1 ms
#: on gloo, however small); larger ones go alone, sent from and received into their own memory.
BUCKET_BYTES = 16 * 2**20


def hand_over(obj, device, src: int = 0):
    """Rank ``src``'s ``obj`` on every rank; every rank of the default group must call this together.

    Tensors of ``obj`` (strided, not quantized, of type ``torch.Tensor`` exactly) arrive with their
    values, dtype, shape and ``requires_grad``, contiguous, on ``device``; a tensor that ``obj`` holds
    in several places arrives as one tensor. Other objects (tensor subclasses included) arrive as pickle
    delivers them. Besides ``obj``, a rank holds at most the pickled structure and one bucket of
    :data:`BUCKET_BYTES`.

    Args:
        obj: The object, on rank ``src``; ignored elsewhere.
        device (str or torch.device): Where the receivers put the tensors, as ``torch.load``'s
            ``map_location`` (``'cpu'``, ``'cuda'``: the current GPU).
        src (int): The rank that has ``obj``. Defaults to 0.

    Returns:
        ``obj`` itself on rank ``src``, its copy elsewhere.
    """
    import torch
    from mmengine.dist import broadcast_object_list, get_rank
    from mmengine.dist.utils import get_comm_device

    sending = get_rank() == src
    tensors: list = []
    header = [None]
    if sending:
        stream = io.BytesIO()
        _Pickler(stream, tensors).dump(obj)
        header = [(stream.getvalue(), [(t.shape, t.dtype, t.requires_grad) for t in tensors])]
    broadcast_object_list(header, src=src)
    structure, specs = header[0]
    comm = get_comm_device()  # nccl sends from and into GPU memory, gloo CPU memory
    if not sending:
        tensors = [torch.empty(shape, dtype=dtype, device=comm) for shape, dtype, _ in specs]
    sizes = [t.numel() * t.element_size() for t in tensors]
    groups = _buckets(sizes)
    buffer = torch.empty(max([sum(sizes[i] for i in g) for g in groups if len(g) > 1], default=0),
                         dtype=torch.uint8, device=comm)  # every bucket's
    for group in groups:
        parts = [_as_bytes(tensors[i].to(comm).contiguous() if sending else tensors[i]) for i in group]
        if len(parts) == 1:
            torch.distributed.broadcast(parts[0], src=src)
            continue
        bucket = buffer[:sum(sizes[i] for i in group)]
        if sending:
            torch.cat(parts, out=bucket)
        torch.distributed.broadcast(bucket, src=src)
        if not sending:
            for part, piece in zip(parts, bucket.split([sizes[i] for i in group])):
                part.copy_(piece)
    if sending:
        return obj
    received = [t.to(device).requires_grad_(grad) for t, (_, _, grad) in zip(tensors, specs)]
    return _Unpickler(io.BytesIO(structure), received).load()


def _as_bytes(tensor):
    """A contiguous ``tensor``'s memory as a flat uint8 tensor (a view): any dtype goes as bytes."""
    import torch

    return tensor.reshape(-1).view(torch.uint8)


def _buckets(sizes: list[int]) -> list[list[int]]:
    """Indices of the tensors of ``sizes`` bytes, one list per broadcast: tensors smaller than
    :data:`BUCKET_BYTES` together in their order, up to that many bytes a list; larger ones alone; empty
    ones in none."""
    groups: list[list[int]] = []
    bucket: list[int] = []
    filled = 0
    for index, size in enumerate(sizes):
        if not size:
            continue
        if size >= BUCKET_BYTES:
            groups.append([index])
            continue
        if filled + size > BUCKET_BYTES:
            groups.append(bucket)
            bucket, filled = [], 0
        bucket.append(index)
        filled += size
    if bucket:
        groups.append(bucket)
    return groups


class _Pickler(pickle.Pickler):
    """Pickles everything but the tensors it can send as tensors, which it appends to ``tensors`` and
    names by their index there."""

    def __init__(self, stream, tensors: list):
        super().__init__(stream, protocol=pickle.HIGHEST_PROTOCOL)
        self._tensors = tensors
        self._index: dict[int, int] = {}

    def persistent_id(self, obj):
        import torch

        if type(obj) is not torch.Tensor or obj.layout != torch.strided or obj.is_quantized or obj.is_meta:
            return None
        if id(obj) not in self._index:
            self._index[id(obj)] = len(self._tensors)
            self._tensors.append(obj)
        return self._index[id(obj)]


class _Unpickler(pickle.Unpickler):
    """Unpickles what :class:`_Pickler` wrote, with the received tensors in their places."""

    def __init__(self, stream, tensors: list):
        super().__init__(stream)
        self._tensors = tensors

    def persistent_load(self, index):
        return self._tensors[index]
