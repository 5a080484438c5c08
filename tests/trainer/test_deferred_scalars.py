"""Losses logged without a wait per iteration (trainer.deferred_scalars): the same history, statistics,
checkpoints and logs as mmengine's ``.item()`` per iteration."""

import copy
import pickle
from types import SimpleNamespace

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from tests.support.trainer_runtime import run_trainer, scalars, write_config
from trainer.deferred_scalars import DeferredHistoryBuffer, RuntimeInfoHook

VALUES = [2.5, 1.25, 0.75, 3.0, 0.5]


def _filled(values=VALUES):
    deferred, plain = DeferredHistoryBuffer(), HistoryBuffer()
    for value in values:
        deferred.update(torch.tensor(value))
        plain.update(value)
    return deferred, plain


def test_tensors_wait_until_the_history_is_read():
    deferred, plain = _filled()
    assert len(deferred._pending) == len(VALUES)  # nothing converted yet
    for method, args in (("mean", (2, )), ("max", ()), ("min", (3, )), ("current", ())):
        assert deferred.statistics(method, *args) == plain.statistics(method, *args)
    assert deferred._pending == []
    values, counts = deferred.data
    assert values.tolist() == VALUES and counts.tolist() == [1] * len(VALUES)


def test_numbers_and_tensors_keep_their_order():
    deferred = DeferredHistoryBuffer()
    deferred.update(torch.tensor(1.0))
    deferred.update(2.0)
    deferred.update(torch.tensor(3.0), count=2)
    assert deferred.data[0].tolist() == [1.0, 2.0, 3.0] and deferred.data[1].tolist() == [1, 1, 2]


def test_pending_tensors_are_bounded():
    deferred = DeferredHistoryBuffer()
    for i in range(DeferredHistoryBuffer.MAX_PENDING + 5):
        deferred.update(torch.tensor(float(i)))
    assert len(deferred._pending) == 5 and len(deferred._values) == DeferredHistoryBuffer.MAX_PENDING


def test_copies_and_pickles_are_plain_history_buffers():
    deferred, plain = _filled()
    for other in (copy.deepcopy(deferred), pickle.loads(pickle.dumps(deferred))):
        assert type(other) is HistoryBuffer
        assert other.data[0].tolist() == plain.data[0].tolist()
        assert other.data[0].dtype == plain.data[0].dtype and other.data[1].dtype == plain.data[1].dtype


def test_hook_defers_tensors_and_keeps_a_resumed_history():
    hub = MessageHub.get_instance("test_deferred_scalars")
    resumed = HistoryBuffer([9.0], [1])
    hub.log_scalars["train/loss"] = resumed  # as loaded from a checkpoint
    runner = SimpleNamespace(message_hub=hub)
    hook = RuntimeInfoHook()
    hook.after_train_iter(runner, 0, outputs=dict(loss=torch.tensor(1.5), lr_like=0.1))
    hook.after_train_iter(runner, 1, outputs=dict(loss=torch.tensor(0.5), lr_like=0.2))
    buffer = hub.get_scalar("train/loss")
    assert isinstance(buffer, DeferredHistoryBuffer) and len(buffer._pending) == 2
    assert buffer.data[0].tolist() == [9.0, 1.5, 0.5]
    assert hub.get_scalar("train/lr_like").data[0].tolist() == [0.1, 0.2]
    saved = hub.state_dict()["log_scalars"]["train/loss"]
    assert type(saved) is HistoryBuffer and saved.data[0].tolist() == [9.0, 1.5, 0.5]


def test_training_logs_and_checkpoints_every_loss(tmp_path):
    """A real run: every iteration's loss is in the checkpoint's message hub, and the logged means are
    the means of those losses (every 2 iterations, over the LogProcessor's window of 10)."""
    proc = run_trainer(write_config(tmp_path / "cfg"), "--work-dir", tmp_path / "wd", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = torch.load(tmp_path / "wd" / "epoch_2.pth", map_location="cpu", weights_only=False)
    losses = ckpt["message_hub"]["log_scalars"]["train/loss"]
    assert type(losses) is HistoryBuffer and len(losses.data[0]) == 16  # 2 epochs x 8 iterations
    logged = [record["loss"] for record in scalars(tmp_path / "wd") if "loss" in record]
    expected = [np.mean(losses.data[0][max(0, i - 10):i]) for i in range(2, 17, 2)]  # every 2, window 10
    np.testing.assert_allclose(logged, expected, rtol=1e-6)
