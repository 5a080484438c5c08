"""End-to-end runs of ``python -m trainer``: logs, checkpoints, --resume, --no-validate, --auto-scale-lr,
the dataloader flags, and the main digits job."""

from pathlib import Path

import pytest

from tests.support.trainer_runtime import (REPO, TINY_CONFIG, lines_with, run_trainer, scalars, trainer_env,
                                           write_config)


def _ok(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _digest(stdout):
    (line,) = lines_with(stdout, "trainer: rank=0 final_weights_sha256=")
    return line.split("=")[-1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A straight 2-epoch run from a fresh directory with bare --resume (nothing to resume), and the same
    job killed (SIGKILL) after epoch 1 was checkpointed, then continued by auto --resume and by
    --resume PATH."""
    tmp = tmp_path_factory.mktemp("train")
    config = write_config(tmp / "cfg")
    straight = _ok(run_trainer(config, "--resume", cwd=tmp))
    killed = write_config(tmp / "cfg", TINY_CONFIG + "custom_hooks = [dict(type='KillAfterEpochHook', epoch=1)]\n",
                          name="tiny_killed.py")
    first = run_trainer(killed, "--work-dir", tmp / "split", "--resume")
    assert first.returncode == -9 and (tmp / "split" / "epoch_1.pth").is_file(), first.stderr[-3000:]
    auto = _ok(run_trainer(config, "--work-dir", tmp / "split", "--resume"))
    by_path = _ok(run_trainer(config, "--work-dir", tmp / "other", "--resume", tmp / "split" / "epoch_1.pth"))
    return dict(tmp=tmp, straight=straight, first=first.stdout, auto=auto, by_path=by_path)


def test_default_work_dir_layout_and_logs(runs):
    work_dir = runs["tmp"] / "work_dirs" / "tiny"
    assert (work_dir / "epoch_1.pth").is_file() and (work_dir / "epoch_2.pth").is_file()
    assert Path((work_dir / "last_checkpoint").read_text().strip()).name == "epoch_2.pth"
    (log,) = work_dir.glob("*/*.log")
    assert log.stem == log.parent.name  # work_dir/<timestamp>/<timestamp>.log
    iteration_lines = lines_with(log.read_text(), "Epoch(train) [2][8/8]")
    assert iteration_lines and all(k in iteration_lines[0] for k in ("lr: 1.0000e-02", "eta: ", "loss: "))
    assert [r["accuracy/top1"] for r in scalars(work_dir) if "accuracy/top1" in r] == [100.0, 100.0]


def test_contract_lines(runs):
    stdout = runs["straight"]
    assert lines_with(stdout, "trainer: launcher=none rank=0 local_rank=0 world_size=1 backend=none device=cpu")
    assert lines_with(stdout, "trainer: amp dtype=float32")
    assert len(_digest(stdout)) == 64


def test_bare_resume_with_nothing_saved_starts_at_epoch_1(runs):
    assert lines_with(runs["straight"], "Epoch(train) [1][2/8]")
    assert not lines_with(runs["straight"], "resumed epoch")


def test_auto_resume_continues_from_the_last_checkpoint(runs):
    auto = runs["auto"]
    assert lines_with(auto, f"Auto resumed from the latest checkpoint {runs['tmp'] / 'split' / 'epoch_1.pth'}")
    assert lines_with(auto, "resumed epoch: 1, iter: 8")
    assert not lines_with(auto, "Epoch(train) [1]")
    assert lines_with(auto, "Epoch(train) [2][8/8]  lr: 1.0000e-02")  # the scheduler's state came back
    # weights, optimizer momentum, scheduler and data order restored: same weights as the straight run
    assert not lines_with(runs["first"], "final_weights_sha256")
    assert _digest(auto) == _digest(runs["straight"])


def test_resume_from_a_path_continues_from_it(runs):
    by_path = runs["by_path"]
    assert lines_with(by_path, "resumed epoch: 1, iter: 8")
    assert not lines_with(by_path, "Epoch(train) [1]")
    assert _digest(by_path) == _digest(runs["straight"])
    assert (runs["tmp"] / "other" / "epoch_2.pth").is_file()


DIGITS_SHORT = """\
_base_ = ['{repo}/configs/resnet/resnet18_1xb64_digits.py']
# the main job without random augmentation (so that runs can be compared bit for bit), cut short
train_dataloader = dict(dataset=dict(indices=256, pipeline=[dict(type='PackInputs')]))
val_dataloader = dict(dataset=dict(indices=64))
train_cfg = dict(max_epochs=2)
"""
KILLED = """\
_base_ = ['./digits_short.py']
custom_imports = dict(imports=['tests.support.tiny_components'], allow_failed_imports=False)
custom_hooks = [dict(type='KillAfterEpochHook', epoch=1)]
"""


def test_main_job_resumes_after_a_kill_as_if_never_stopped(tmp_path):
    """The real model, optimizer (SGD, Nesterov, weight decay) and schedules (iteration-based warm-up,
    cosine): killed after epoch 1 and resumed, it ends with the weights of an uninterrupted run."""
    config = write_config(tmp_path, DIGITS_SHORT.format(repo=REPO), name="digits_short.py")
    killed = write_config(tmp_path, KILLED, name="digits_killed.py")
    straight = _ok(run_trainer(config, "--work-dir", tmp_path / "straight"))
    first = run_trainer(killed, "--work-dir", tmp_path / "split", "--resume")
    assert first.returncode == -9 and (tmp_path / "split" / "epoch_1.pth").is_file(), first.stderr[-3000:]
    resumed = _ok(run_trainer(config, "--work-dir", tmp_path / "split", "--resume"))
    assert lines_with(resumed, "resumed epoch: 1, iter: 4")
    assert not lines_with(resumed, "Epoch(train) [1]")
    assert _digest(resumed) == _digest(straight)


PROBED = TINY_CONFIG.replace("batch_size=8, num_workers=0", "batch_size=8, num_workers=1") + (
    "custom_hooks = [dict(type='ProbeHook')]\ntrain_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)\n")


@pytest.fixture(scope="module")
def flagged(tmp_path_factory):
    """One epoch with --no-validate --auto-scale-lr --no-pin-memory --no-persistent-workers, and one
    without these flags (one train worker; the val loader has none)."""
    tmp = tmp_path_factory.mktemp("flags")
    config = write_config(tmp / "cfg", PROBED)
    with_flags = _ok(run_trainer(config, "--work-dir", tmp / "flags", "--no-validate", "--auto-scale-lr",
                                 "--no-pin-memory", "--no-persistent-workers"))
    plain = _ok(run_trainer(config, "--work-dir", tmp / "plain"))
    return dict(tmp=tmp, with_flags=with_flags, plain=plain)


def test_no_validate_leaves_no_validation(flagged):
    assert not lines_with(flagged["with_flags"], "Epoch(val)")
    assert not [r for r in scalars(flagged["tmp"] / "flags") if "accuracy/top1" in r]
    assert [r["accuracy/top1"] for r in scalars(flagged["tmp"] / "plain") if "accuracy/top1" in r] == [100.0]


def test_auto_scale_lr_logs_and_uses_the_scaled_lr(flagged):
    out = flagged["with_flags"]
    assert lines_with(out, "trainer: auto-scale-lr base_lr=0.1 scaled_lr=0.05 "
                           "(world_size×batch=8/base_batch_size=16)")
    assert lines_with(out, "Epoch(train) [1][8/8]  lr: 5.0000e-02")
    assert not lines_with(flagged["plain"], "auto-scale-lr")
    assert lines_with(flagged["plain"], "Epoch(train) [1][8/8]  lr: 1.0000e-01")


def test_dataloader_defaults_reach_the_dataloaders(flagged):
    out = flagged["plain"]
    assert lines_with(out, "probe: train_dataloader pin_memory=True persistent_workers=True")
    assert lines_with(out, "probe: val_dataloader pin_memory=True persistent_workers=False")  # no workers


def test_dataloader_flags_reach_the_dataloaders(flagged):
    assert lines_with(flagged["with_flags"], "probe: train_dataloader pin_memory=False persistent_workers=False")


def test_tensorboard_switch(tmp_path):
    """With TensorboardVisBackend on, the run writes TensorBoard events, or (tensorboard not installed)
    stops before starting with one line saying what to install."""
    import importlib.util

    config = write_config(tmp_path / "cfg", TINY_CONFIG + (
        "visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend'), "
        "dict(type='TensorboardVisBackend')])\ntrain_cfg = dict(by_epoch=True, max_epochs=1)\n"))
    proc = run_trainer(config, "--work-dir", tmp_path / "wd")
    if importlib.util.find_spec("tensorboard") is None:
        assert proc.returncode == 1
        assert proc.stderr.strip() == ("trainer: error: visualizer: TensorboardVisBackend needs the tensorboard "
                                       "package: pip install tensorboard (or remove it from vis_backends)")
        assert not (tmp_path / "wd").exists()
    else:
        _ok(proc)
        assert list((tmp_path / "wd").glob("*/vis_data/events.out.tfevents.*"))
        assert [r["accuracy/top1"] for r in scalars(tmp_path / "wd") if "accuracy/top1" in r] == [100.0]


def test_main_digits_job_reaches_95_percent(tmp_path):
    config = REPO / "configs" / "resnet" / "resnet18_1xb64_digits.py"
    stdout = _ok(run_trainer(config, "--work-dir", tmp_path / "wd", timeout=1800,
                             env=trainer_env(OMP_NUM_THREADS="2")))
    top1 = [r["accuracy/top1"] for r in scalars(tmp_path / "wd") if "accuracy/top1" in r]
    assert lines_with(stdout, "accuracy/top1") and top1[-1] >= 95.0, top1
