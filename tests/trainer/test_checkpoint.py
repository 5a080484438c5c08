"""trainer.checkpoint: loading on torch >= 2.6 (full unpickling only for trusted files), and the file
operations behind crash-safe saving and resuming (end-to-end: test_checkpoint_faults.py)."""

import os
import subprocess
import sys

import pytest

from tests.support.trainer_runtime import REPO, lines_with, run_trainer, trainer_env, write_config
from trainer.checkpoint import (is_trusted, numbered_files, point_to, read_pointer, remove_temporaries,
                                temporary_name, trusted_paths_from_env)


def test_trusted_locations(tmp_path):
    (tmp_path / "wd" / "sub").mkdir(parents=True)
    (tmp_path / "wd2").mkdir()
    (tmp_path / "wd" / "escape").symlink_to(tmp_path / "wd2")
    trusted = [str(tmp_path / "wd"), str(tmp_path / "given.pth")]
    assert is_trusted(str(tmp_path / "wd" / "epoch_1.pth"), trusted)
    assert is_trusted(str(tmp_path / "wd" / "sub" / ".." / "epoch_1.pth"), trusted)
    assert is_trusted(str(tmp_path / "given.pth"), trusted)
    assert not is_trusted(str(tmp_path / "wd2" / "epoch_1.pth"), trusted)  # a sibling with the same prefix
    assert not is_trusted(str(tmp_path / "wd" / "escape" / "epoch_1.pth"), trusted)  # symlink out of wd
    assert not is_trusted(str(tmp_path / "other.pth"), trusted)


def test_trusted_paths_from_env():
    assert trusted_paths_from_env({"TRAINER_TRUSTED_CHECKPOINTS": f"/a{os.pathsep}{os.pathsep}/b.pth"}) == [
        "/a", "/b.pth"]
    assert trusted_paths_from_env({}) == []


def test_pointer_is_replaced_whole(tmp_path):
    assert read_pointer(str(tmp_path)) is None
    point_to(str(tmp_path), "/run/epoch_1.pth")
    point_to(str(tmp_path), "/run/epoch_2.pth")
    assert read_pointer(str(tmp_path)) == "/run/epoch_2.pth"
    assert [p.name for p in tmp_path.iterdir()] == ["last_checkpoint"]  # no temporary file left


def test_only_unfinished_writes_count_as_temporaries(tmp_path):
    names = [temporary_name("epoch_2.pth"), ".last_checkpoint.17.tmp", ".notes.17.tmp", ".epoch_3.pth.tmp",
             "epoch_1.pth", "last_checkpoint"]
    for name in names:
        (tmp_path / name).write_text("x")
    remove_temporaries(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".epoch_3.pth.tmp", ".notes.17.tmp", "epoch_1.pth",
                                                         "last_checkpoint"]


def test_numbered_files_follow_the_hooks_template(tmp_path):
    for name in ("epoch_1.pth", "epoch_12.pth", "epoch_x.pth", "best_accuracy_epoch_3.pth", "iter_5.pth"):
        (tmp_path / name).write_text("x")
    (tmp_path / "epoch_4.pth").mkdir()
    assert numbered_files(str(tmp_path), "epoch_{}.pth") == {1: str(tmp_path / "epoch_1.pth"),
                                                             12: str(tmp_path / "epoch_12.pth")}
    assert numbered_files(str(tmp_path), "iter_{}.pth") == {5: str(tmp_path / "iter_5.pth")}
    assert numbered_files(str(tmp_path / "missing"), "epoch_{}.pth") == {}


MAKE_FILES = """
import sys, torch
full, weights, evil, marker = sys.argv[1:]
torch.save({'state_dict': torch.load(full, weights_only=False)['state_dict']}, weights)

class Evil:
    def __reduce__(self):
        return (open, (marker, 'w'))

torch.save({'state_dict': {}, 'meta': Evil()}, evil)
"""


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A full mmengine checkpoint (1 epoch of the tiny job), a weights-only copy and a malicious
    pickle, all outside the work_dir of the runs below; and where the malicious one would write."""
    tmp = tmp_path_factory.mktemp("ckpt")
    config = write_config(tmp / "cfg")
    proc = run_trainer(config, "--work-dir", tmp / "source", "--cfg-options", "train_cfg.max_epochs=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    foreign = tmp / "foreign"
    foreign.mkdir()
    (foreign / "full.pth").write_bytes((tmp / "source" / "epoch_1.pth").read_bytes())
    files = dict(config=config, full=foreign / "full.pth", weights=foreign / "weights.pth",
                 evil=foreign / "evil.pth", marker=tmp / "pwned")
    subprocess.run([sys.executable, "-c", MAKE_FILES, *(str(files[k]) for k in ("full", "weights", "evil", "marker"))],
                   cwd=REPO, env=trainer_env(), check=True)
    assert not files["marker"].exists()
    return files


def _load_from(checkpoints, tmp_path, name, env=None):
    return run_trainer(checkpoints["config"], "--work-dir", tmp_path / "wd", "--cfg-options",
                       f"load_from={checkpoints[name]}", "train_cfg.max_epochs=1", env=env)


def test_foreign_full_checkpoint_is_refused(checkpoints, tmp_path):
    proc = _load_from(checkpoints, tmp_path, "full")
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(f"trainer: error: refusing to unpickle checkpoint {checkpoints['full']}")
    assert "TRAINER_TRUSTED_CHECKPOINTS" in proc.stderr and "Traceback" not in proc.stderr
    assert not lines_with(proc.stdout, "final_weights_sha256")


def test_malicious_pickle_is_not_executed(checkpoints, tmp_path):
    proc = _load_from(checkpoints, tmp_path, "evil")
    assert proc.returncode == 1 and "refusing to unpickle checkpoint" in proc.stderr
    assert not checkpoints["marker"].exists()


def test_foreign_weights_only_checkpoint_loads(checkpoints, tmp_path):
    proc = _load_from(checkpoints, tmp_path, "weights")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert lines_with(proc.stdout, f"Load checkpoint from {checkpoints['weights']}")
    assert lines_with(proc.stdout, "final_weights_sha256=")


def test_trusted_by_env_loads_fully(checkpoints, tmp_path):
    env = trainer_env(TRAINER_TRUSTED_CHECKPOINTS=str(checkpoints["full"].parent))
    proc = _load_from(checkpoints, tmp_path, "full", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert lines_with(proc.stdout, f"Load checkpoint from {checkpoints['full']}")
