"""Hand an object that holds tensors (a checkpoint) from one rank to every other over the process group.

A distributed resume reads the checkpoint file on rank 0 only and hands it to the other ranks with
:func:`hand_over`, so that they need no access to rank 0's ``work_dir``. Everything but the tensors
(the structure, numbers, strings, the message hub's numpy buffers) is pickled and sent in one
``broadcast_object_list``; then each tensor goes as itself, one ``broadcast`` of its bytes from the
tensor rank 0 loaded into one the receiver allocated. No rank holds more than the object and that
small pickle, where pickling the whole checkpoint takes several copies of it on every rank (see
``bench/checkpoint_handover.py``).
"""

from __future__ import annotations

import io
import pickle


def hand_over(obj, device, src: int = 0):
    """Rank ``src``'s ``obj`` on every rank; every rank of the default group must call this together.

    Tensors of ``obj`` (strided, not quantized, of type ``torch.Tensor`` exactly) arrive with their
    values, dtype, shape and ``requires_grad``, contiguous, on ``device``; a tensor that ``obj`` holds
    in several places arrives as one tensor. Other objects (tensor subclasses included) arrive as pickle
    delivers them.

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
    for tensor in tensors:
        if tensor.numel():
            carrier = tensor.to(comm).contiguous() if sending else tensor
            torch.distributed.broadcast(carrier.reshape(-1).view(torch.uint8), src=src)  # any dtype, as bytes
    if sending:
        return obj
    received = [t.to(device).requires_grad_(grad) for t, (_, _, grad) in zip(tensors, specs)]
    return _Unpickler(io.BytesIO(structure), received).load()


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
