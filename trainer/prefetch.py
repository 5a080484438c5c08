"""Prefetch to the GPU: copy the next batch's images while the current batch trains."""

from __future__ import annotations

from typing import Iterable, Iterator

import torch


def prefetch_to_device(batches: Iterable, device: torch.device) -> Iterator:
    """Yield the batches of ``batches`` with their ``inputs`` already on ``device`` (CUDA).

    While batch ``k`` is handed out, batch ``k + 1`` is fetched and its ``inputs`` (a tensor, or a list
    of tensors) are copied on a second CUDA stream, from pinned memory without the host waiting. The
    training stream waits for that copy only when it reaches the batch, so the copy overlaps the work
    queued before it. Everything else in a batch (data samples, labels) is left as it is: the data
    preprocessor moves it, and moves nothing that is already on the device.

    Args:
        batches (Iterable): Batches of a DataLoader: dicts with ``inputs``.
        device (torch.device): The CUDA device.
    """
    stream = torch.cuda.Stream(device)

    def fetch(iterator):
        batch = next(iterator, None)
        if isinstance(batch, dict) and "inputs" in batch:
            with torch.cuda.stream(stream):
                batch = dict(batch, inputs=_to_device(batch["inputs"], device))
        return batch

    iterator = iter(batches)
    ready = fetch(iterator)
    while ready is not None:
        current = torch.cuda.current_stream(device)
        current.wait_stream(stream)
        if isinstance(ready, dict) and "inputs" in ready:
            _record(ready["inputs"], current)
        batch, ready = ready, fetch(iterator)
        yield batch


def _to_device(inputs, device):
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device, non_blocking=True)
    if isinstance(inputs, (list, tuple)):
        return type(inputs)(_to_device(x, device) for x in inputs)
    return inputs  # e.g. encoded JPEGs, decoded by the data preprocessor


def _record(inputs, stream) -> None:
    """Tell the caching allocator that ``stream`` uses ``inputs`` (allocated on the copy stream)."""
    if isinstance(inputs, torch.Tensor):
        if inputs.is_cuda:
            inputs.record_stream(stream)
    elif isinstance(inputs, (list, tuple)):
        for x in inputs:
            _record(x, stream)
