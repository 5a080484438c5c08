"""Checkpoints survive faults (the small digits job of tests/trainer/small_job.py, real OS failures):

- SIGKILL while a checkpoint is being written leaves the previous checkpoint and pointer intact, and the
  resumed run ends as the uninterrupted one;
- a truncated or corrupt checkpoint found at resume time is reported in one line, and the previous one
  is used;
- a full disk (a small tmpfs: ENOSPC; or a file-size limit: EFBIG) or a read-only work_dir (``chattr
  +i``, which stops root too) at save time stop the run with one error line, exit status 1, and leave
  the last good checkpoint as it was.
"""

import os
import resource
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.trainer_runtime import lines_with
from tests.trainer.small_job import (ITERS, RESUMED, assert_same_answer, assert_same_checkpoint, ok, train,
                                     variant)


def test_sigkill_while_saving_keeps_the_previous_checkpoint(small_job, tmp_path):
    """tests/trainer/slow_save.py makes writes slow; the trainer is killed once epoch 2's checkpoint is
    partly on disk."""
    slow = variant(small_job, tmp_path, "custom_imports = dict(imports=['tests.trainer.slow_save'])\n")
    wd = tmp_path / "wd"
    first = train(slow, wd, signal_at=(f"slow-save: writing {wd}/.epoch_2.pth.", signal.SIGKILL, None))
    assert first.returncode == -signal.SIGKILL, first.output[-3000:]
    (partial,) = wd.glob(".epoch_2.pth.*.tmp")
    assert 0 < partial.stat().st_size < (wd / "epoch_1.pth").stat().st_size
    assert not (wd / "epoch_2.pth").exists()
    assert (wd / "last_checkpoint").read_text() == str(wd / "epoch_1.pth")

    resumed = ok(train(small_job["config"], wd))
    assert RESUMED.findall(resumed.output) == [(str(wd / "epoch_1.pth"), "1", str(ITERS))]
    assert_same_answer(small_job, resumed, wd)
    assert not list(wd.glob(".*.tmp"))  # the next save cleared the killed write's leftover


@pytest.fixture(scope="module")
def killed_after_epoch_2(small_job, tmp_path_factory) -> Path:
    """A work_dir with epoch_1.pth and epoch_2.pth: the job SIGKILLed after saving epoch 2."""
    tmp = tmp_path_factory.mktemp("killed")
    killed = variant(small_job, tmp, "custom_imports = dict(imports=['tests.support.tiny_components'])\n"
                                     "custom_hooks = [dict(type='KillAfterEpochHook', epoch=2)]\n")
    run = train(killed, tmp / "wd")
    assert run.returncode == -signal.SIGKILL and (tmp / "wd" / "epoch_2.pth").is_file(), run.output[-3000:]
    return tmp / "wd"


@pytest.mark.parametrize("damage", ["truncated", "zeroed"])
def test_unreadable_checkpoint_resumes_from_the_previous_one(small_job, killed_after_epoch_2, tmp_path, damage):
    wd = tmp_path / "wd"
    shutil.copytree(killed_after_epoch_2, wd)
    (wd / "last_checkpoint").write_text(str(wd / "epoch_2.pth"))
    latest = wd / "epoch_2.pth"
    size = latest.stat().st_size
    latest.write_bytes(latest.read_bytes()[:size // 2] if damage == "truncated" else bytes(size))

    resumed = ok(train(small_job["config"], wd))
    (warning,) = lines_with(resumed.output, " is unreadable: ")
    assert warning.endswith(f"trainer: checkpoint {latest} is unreadable: " + {
        "truncated": "RuntimeError: PytorchStreamReader failed reading zip archive: failed finding central directory",
        "zeroed": "KeyError: \"filename 'storages' not found\""}[damage] + ": trying the previous checkpoint")
    assert RESUMED.findall(resumed.output) == [(str(wd / "epoch_1.pth"), "1", str(ITERS))]
    assert_same_answer(small_job, resumed, wd)


# ---- failed saves ---------------------------------------------------------------------------------------------

def _work_dir_after_epoch_1(small_job, wd: Path) -> None:
    """``wd`` as a run stopped after epoch 1 leaves it: the reference's epoch_1.pth and the pointer."""
    wd.mkdir(exist_ok=True)
    shutil.copy(small_job["work_dir"] / "epoch_1.pth", wd / "epoch_1.pth")
    (wd / "last_checkpoint").write_text(str(wd / "epoch_1.pth"))


def _assert_stopped_keeping_epoch_1(small_job, run, wd: Path, reason: str) -> None:
    assert run.returncode == 1, run.output[-3000:]
    assert lines_with(run.output, "trainer: error:") == [
        f"trainer: error: cannot save checkpoint {wd}/epoch_2.pth: {reason}; the last good checkpoint "
        f"({wd}/epoch_1.pth) is kept"]
    assert "Traceback" not in run.output and "Logging error" not in run.output
    assert run.trained()[-1] == (2, ITERS) and not run.shas
    assert not list(wd.glob("epoch_2*")) and not list(wd.glob(".*"))  # nothing half-written
    assert (wd / "last_checkpoint").read_text() == str(wd / "epoch_1.pth")
    assert_same_checkpoint(small_job["work_dir"] / "epoch_1.pth", wd / "epoch_1.pth")


@pytest.fixture
def small_tmpfs():
    """A tmpfs of 640 KiB (about 1.6 checkpoints of the job), mounted for the test; skipped where mounting
    is not permitted."""
    mountpoint = Path(tempfile.mkdtemp(prefix="trainer-tmpfs-"))
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=640k", "tmpfs", str(mountpoint)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        mountpoint.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)
        mountpoint.rmdir()


def test_full_disk_stops_with_one_error_and_keeps_the_last_checkpoint(small_job, small_tmpfs):
    wd = small_tmpfs / "wd"
    _work_dir_after_epoch_1(small_job, wd)
    run = train(small_job["config"], wd)
    _assert_stopped_keeping_epoch_1(small_job, run, wd, "No space left on device")


def _limit_file_size() -> None:
    """In the child: files may not grow past 128 KiB (logs stay below; a checkpoint is ~390 KiB), and a
    write past it fails with EFBIG instead of killing the process with SIGXFSZ."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (128 * 1024, 128 * 1024))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_file_size_limit_stops_with_one_error_and_keeps_the_last_checkpoint(small_job, tmp_path):
    wd = tmp_path / "wd"
    _work_dir_after_epoch_1(small_job, wd)
    run = train(small_job["config"], wd, preexec_fn=_limit_file_size)
    _assert_stopped_keeping_epoch_1(small_job, run, wd, "File too large")


def _can_make_immutable(directory: Path) -> bool:
    probe = directory / "probe"
    probe.mkdir()
    made = subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode == 0
    if made:
        subprocess.run(["chattr", "-i", str(probe)], check=True)
    probe.rmdir()
    return made and os.geteuid() == 0


def test_read_only_work_dir_stops_with_one_error_and_keeps_the_last_checkpoint(small_job, tmp_path):
    """tests/trainer/fault_hooks.py makes work_dir immutable (``chattr +i``) when epoch 2 starts. (A 0555
    mode would not stop root, and the interpreter here is not usable by an unprivileged user.)"""
    if not _can_make_immutable(tmp_path):
        pytest.skip("chattr +i needs root (CAP_LINUX_IMMUTABLE) and a filesystem that supports it")
    config = variant(small_job, tmp_path, "custom_imports = dict(imports=['tests.trainer.fault_hooks'])\n"
                                          "custom_hooks = [dict(type='ReadOnlyWorkDirHook', epoch=2)]\n")
    wd = tmp_path / "wd"
    try:
        run = train(config, wd)
    finally:
        subprocess.run(["chattr", "-i", str(wd)], check=True)
    _assert_stopped_keeping_epoch_1(small_job, run, wd, "Operation not permitted")
