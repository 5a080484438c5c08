"""Prefetch to the GPU (trainer.prefetch): batch k+1 is fetched and its copy queued on the copy stream before
batch k is handed out, and the training stream waits for the copy. CUDA's streams are stood in for here."""

import contextlib

import torch

from trainer import prefetch
from trainer.loops import EpochBasedTrainLoop


class FakeStream:
    def __init__(self, events, name):
        self.events, self.name = events, name

    def wait_stream(self, other):
        self.events.append(f"{self.name} waits for {other.name}")


def test_next_batch_is_copied_while_the_current_one_trains(monkeypatch):
    events = []
    copy, compute = FakeStream(events, "copy"), FakeStream(events, "compute")
    monkeypatch.setattr(torch.cuda, "Stream", lambda device: copy)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device: compute)

    @contextlib.contextmanager
    def on(stream):
        events.append(f"on {stream.name}")
        yield

    monkeypatch.setattr(torch.cuda, "stream", on)

    def loader():
        for k in range(3):
            events.append(f"fetch {k}")
            yield dict(inputs=torch.full((2, 3), k), data_samples=[f"sample {k}"])

    seen = []
    for batch in prefetch.prefetch_to_device(loader(), torch.device("cpu")):
        events.append(f"train {batch['data_samples'][0][-1]}")
        seen.append((batch["inputs"][0, 0].item(), batch["data_samples"]))
    assert seen == [(0, ["sample 0"]), (1, ["sample 1"]), (2, ["sample 2"])]
    assert events == ["fetch 0", "on copy",
                      "compute waits for copy", "fetch 1", "on copy", "train 0",
                      "compute waits for copy", "fetch 2", "on copy", "train 1",
                      "compute waits for copy", "train 2"]


def test_the_loop_prefetches_only_on_cuda():
    loop = EpochBasedTrainLoop.__new__(EpochBasedTrainLoop)
    loop.dataloader, loop.prefetch = ["batch"], True
    assert loop._batches() is loop.dataloader  # no CUDA here
