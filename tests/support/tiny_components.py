"""A tiny model, dataset, metric and test hooks for the runtime tests (trained in well under a second).

Registered in the trainer's registries; test configs load them with
``custom_imports = dict(imports=['tests.support.tiny_components'])``. Imports torch: only the trainer
processes the tests start import it, never pytest itself.
"""

import os
import signal

import torch
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import BaseModel, is_model_wrapper
from torch import nn
from torch.utils.data import Dataset

from trainer.registry import DATASETS, HOOKS, METRICS, MODELS


@DATASETS.register_module()
class TinyDataset(Dataset):
    """``num_samples`` 8-dim points in two linearly separable classes (fixed by ``seed``).

    Args:
        num_samples (int): Dataset length. Defaults to 64.
        seed (int): Generator seed. Defaults to 0.
        data_root (str, optional): Unused; lets tests give the dataset a path. Defaults to None.
    """

    def __init__(self, num_samples=64, seed=0, data_root=None):
        gen = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(num_samples) % 2
        self.inputs = torch.randn(num_samples, 8, generator=gen) + (self.labels[:, None] * 2 - 1) * 1.5

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return dict(inputs=self.inputs[index], data_samples=self.labels[index])


@MODELS.register_module()
class TinyNet(BaseModel):
    """Linear -> BatchNorm -> ReLU -> Linear, 2 classes (BatchNorm gives it buffers to keep in sync)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU())
        self.head = nn.Linear(16, 2)

    def forward(self, inputs, data_samples=None, mode="tensor"):
        logits = self.head(self.body(inputs))
        if mode == "loss":
            return dict(loss=nn.functional.cross_entropy(logits.float(), data_samples))
        if mode == "predict":
            return [dict(pred=p, gt=g) for p, g in zip(logits.argmax(1), data_samples)]
        return logits


@METRICS.register_module()
class TinyAccuracy(BaseMetric):
    """Top-1 accuracy, reported as ``accuracy/top1`` (in percent) like the real classifier metric."""

    default_prefix = "accuracy"

    def process(self, data_batch, data_samples):
        self.results.extend(int(s["pred"] == s["gt"]) for s in data_samples)

    def compute_metrics(self, results):
        return dict(top1=100.0 * sum(results) / len(results))


@HOOKS.register_module()
class ProbeHook(Hook):
    """Print what the run really uses, for tests to grep::

        probe: train_dataloader pin_memory=True persistent_workers=False
        probe: forward dtype=torch.bfloat16

    (the DataLoader objects' settings, and the dtype of the classifier head's output in the first
    training iteration).
    """

    def before_train(self, runner):
        for name, loop in (("train_dataloader", runner.train_loop), ("val_dataloader", runner.val_loop)):
            if loop is not None:
                print(f"probe: {name} pin_memory={loop.dataloader.pin_memory} "
                      f"persistent_workers={loop.dataloader.persistent_workers}", flush=True)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self._handle = model.head.register_forward_hook(self._report)

    def _report(self, module, inputs, output):
        print(f"probe: forward dtype={output.dtype}", flush=True)
        self._handle.remove()


@HOOKS.register_module()
class KillAfterEpochHook(Hook):
    """SIGKILL this process (like a preempted node) right after epoch ``epoch`` was checkpointed.

    Args:
        epoch (int): The 1-based epoch after which to die.
    """

    priority = "LOWEST"  # after CheckpointHook (VERY_LOW) has saved the epoch

    def __init__(self, epoch):
        self.epoch = epoch

    def after_train_epoch(self, runner):
        if runner.epoch + 1 == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class ScalarReadsHook(Hook):
    """Count the reads of a tensor's value by the host (``aten::_local_scalar_dense``: ``.item()``,
    ``int(t)``, ``bool(t)``) in each whole training iteration (fetching the batch, every hook, the step;
    on a GPU each is a wait for the GPU) and print them at the end of training::

        probe: scalar reads per iteration [0, 0, 0]

    Counts from the end of one iteration's ``after_train_iter`` (this hook runs last) to the next's.
    """

    priority = "LOWEST"

    def __init__(self):
        self.counts = []
        self._mode = None

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self.counts.append(self._mode.reads)
        self._mode = _ScalarReads()
        self._mode.__enter__()

    def after_train_epoch(self, runner):
        if self._mode is not None:  # the epoch's end is not an iteration
            self._mode.__exit__(None, None, None)
            self._mode = None

    def after_train(self, runner):
        print(f"probe: scalar reads per iteration {self.counts}", flush=True)


class _ScalarReads(torch.utils._python_dispatch.TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.reads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.reads += 1
        return func(*args, **(kwargs or {}))
