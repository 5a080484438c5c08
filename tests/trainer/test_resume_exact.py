"""Nothing lost, same answer: a run stopped (SIGKILL, SIGTERM, SIGINT) at an epoch boundary or part-way
through an epoch, then resumed with ``--resume``, ends with exactly the weights of the same run
uninterrupted (the small digits job of tests/trainer/small_job.py, compared bit for bit)."""

import signal
from pathlib import Path

import pytest

from tests.support.local_launch import descendants
from tests.support.trainer_runtime import lines_with
from tests.trainer.small_job import (EPOCHS, ITERS, PREEMPTED, RESUMED, Process, assert_same_answer,
                                     assert_same_checkpoint, ok, train, variant)


# ---- stopped and resumed ----------------------------------------------------------------------------------------

def test_sigkill_at_an_epoch_boundary(small_job, tmp_path):
    killed = variant(small_job, tmp_path, "custom_imports = dict(imports=['tests.support.tiny_components'])\n"
                                    "custom_hooks = [dict(type='KillAfterEpochHook', epoch=1)]\n")
    first = train(killed, tmp_path / "wd")
    assert first.returncode == -signal.SIGKILL and not first.shas
    resumed = ok(train(small_job["config"], tmp_path / "wd"))
    assert RESUMED.findall(resumed.output) == [(str(tmp_path / "wd" / "epoch_1.pth"), "1", str(ITERS))]
    assert resumed.trained()[0] == (2, 1)
    assert_same_answer(small_job, resumed, tmp_path / "wd")


def test_sigkill_mid_epoch_resumes_from_the_epoch_checkpoint(small_job, tmp_path):
    first = train(small_job["config"], tmp_path / "wd", signal_at=("Epoch(train) [2][3/6]", signal.SIGKILL, None))
    assert first.returncode == -signal.SIGKILL and (2, 3) in first.trained()
    resumed = ok(train(small_job["config"], tmp_path / "wd"))
    assert RESUMED.findall(resumed.output) == [(str(tmp_path / "wd" / "epoch_1.pth"), "1", str(ITERS))]
    assert resumed.trained()[0] == (2, 1)  # the iterations after the checkpoint are trained again, once
    assert_same_answer(small_job, resumed, tmp_path / "wd")


@pytest.mark.parametrize("signum, workers", [(signal.SIGTERM, 0), (signal.SIGINT, 2)],
                         ids=["SIGTERM", "SIGINT-workers"])
def test_signal_mid_epoch_saves_and_resumes_exactly(small_job, tmp_path, signum, workers):
    """SIGTERM (or SIGINT) part-way through epoch 2: the iteration running ends, a checkpoint of it is
    saved, exit 143; the resumed run trains the rest of epoch 2 (skipping, not loading, what was done)
    and ends where the uninterrupted run did. With 2 persistent DataLoader workers as well: the
    augmentation does not depend on which process loads a sample."""
    config = variant(small_job, tmp_path, f"train_dataloader = dict(num_workers={workers}, persistent_workers=True)\n"
                     if workers else "")
    first = train(config, tmp_path / "wd", signal_at=("Epoch(train) [2][2/6]", signum, None))
    assert first.returncode == 143, first.output[-3000:]
    ((epoch, iteration, path),) = PREEMPTED.findall(first.output)
    done = int(iteration)
    assert epoch == "1" and ITERS + 2 <= done < 2 * ITERS and path == str(tmp_path / "wd" / f"iter_{done}.pth")
    assert first.trained()[-1] == (2, done - ITERS)  # the iteration running when the signal came finished
    assert (tmp_path / "wd" / "last_checkpoint").read_text() == path and not first.shas

    resumed = ok(train(config, tmp_path / "wd"))
    assert RESUMED.findall(resumed.output) == [(path, "1", str(done))]
    assert lines_with(resumed.output, f"trainer: epoch 2 continues at iteration {done - ITERS + 1}/{ITERS}")
    assert resumed.trained()[0] == (2, done - ITERS + 1)  # no batch of epoch 2 is trained twice
    assert first.trained() + resumed.trained() == small_job["run"].trained()
    assert_same_answer(small_job, resumed, tmp_path / "wd")
    assert not (tmp_path / "wd" / f"iter_{done}.pth").exists()  # superseded by the epoch checkpoints


def test_without_a_resumable_sampler_a_stopped_epoch_is_trained_again_whole(small_job, tmp_path):
    """mmengine's DefaultSampler cannot start part-way through an epoch: the resumed run says so and
    resumes from the checkpoint of the epoch's start, so that no batch of the epoch counts twice."""
    config = variant(small_job, tmp_path, "train_dataloader = dict(sampler=dict(type='DefaultSampler'))\n")
    wd = tmp_path / "wd"
    first = train(config, wd, signal_at=("Epoch(train) [2][2/6]", signal.SIGTERM, None))
    assert first.returncode == 143, first.output[-3000:]
    ((_, done, path),) = PREEMPTED.findall(first.output)
    resumed = ok(train(config, wd))
    assert lines_with(resumed.output, f"trainer: {path} was saved part-way through epoch 2 (iteration "
                                      f"{int(done) - ITERS}/{ITERS}), but the train sampler DefaultSampler cannot "
                                      "start part-way through an epoch (ResumableSampler can): resuming from the "
                                      "start of that epoch")
    assert RESUMED.findall(resumed.output) == [(str(wd / "epoch_1.pth"), "1", str(ITERS))]
    assert resumed.trained() == [(epoch, i) for epoch in (2, 3) for i in range(1, ITERS + 1)]


def test_signal_during_the_epoch_checkpoint_stops_at_the_epoch_boundary(small_job, tmp_path):
    """SIGTERM while epoch 1's checkpoint is being written (slowed down by tests/trainer/slow_save.py):
    the save finishes, validation runs, and the run stops before epoch 2 with that checkpoint as the
    one it names: no second save."""
    slow = variant(small_job, tmp_path, "custom_imports = dict(imports=['tests.trainer.slow_save'])\n")
    wd = tmp_path / "wd"
    first = train(slow, wd, signal_at=(f"slow-save: writing {wd}/.epoch_1.pth.", signal.SIGTERM, None))
    assert first.returncode == 143, first.output[-3000:]
    assert PREEMPTED.findall(first.output) == [("1", str(ITERS), str(wd / "epoch_1.pth"))]
    assert lines_with(first.output, "Epoch(val) [1]") and first.trained()[-1] == (1, ITERS)
    assert [p.name for p in wd.glob("*.pth")] == ["epoch_1.pth"]
    resumed = ok(train(small_job["config"], wd))
    assert RESUMED.findall(resumed.output) == [(str(wd / "epoch_1.pth"), "1", str(ITERS))]
    assert_same_answer(small_job, resumed, wd)


def test_two_ranks_one_signalled_stop_together_and_resume_exactly(small_job, tmp_path):
    """torchrun, 2 ranks: SIGTERM to rank 1 only. Both stop after the same iteration, both exit 143; the
    resumed run ends with the uninterrupted 2-rank run's weights on both ranks (BatchNorm statistics,
    which each rank keeps apart within an epoch, included)."""
    reference = ok(train(small_job["config"], tmp_path / "reference", launcher="pytorch"))
    assert len(set(reference.shas.values())) == 1 and len(reference.shas) == 2

    def rank1(proc):
        for pid in descendants(proc.pid):
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"RANK=1" in environ and b"LOCAL_RANK=1" in environ:
                return Process(pid)
        raise AssertionError("rank 1 not found")

    first = train(small_job["config"], tmp_path / "wd", launcher="pytorch",
                  signal_at=("Epoch(train) [2][2/3]", signal.SIGTERM, rank1))
    assert first.returncode != 0 and first.output.count("exitcode  : 143") == 2, first.output[-3000:]
    ((epoch, done, path),) = PREEMPTED.findall(first.output)
    resumed = ok(train(small_job["config"], tmp_path / "wd", launcher="pytorch"))
    assert RESUMED.findall(resumed.output) == [(path, epoch, done)]
    assert resumed.shas == reference.shas
    assert_same_checkpoint(tmp_path / "reference" / f"epoch_{EPOCHS}.pth", tmp_path / "wd" / f"epoch_{EPOCHS}.pth")
