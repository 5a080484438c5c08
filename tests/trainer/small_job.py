"""Test support for tests/trainer/test_resume_exact.py and test_checkpoint_faults.py: a small real job,
a way to run it (and signal it) as a subprocess, and bit-for-bit comparisons of its results.

The job: the digits demo config with a 2-stage ResNet (random crops, drop path), 96 images, 6
iterations an epoch, 3 epochs, seed 0, on the CPU; about 5 s a run. Comparisons are bit for bit: the
``final_weights_sha256`` lines, and every tensor of a checkpoint (weights, buffers, optimizer state) with
``torch.equal``. The session fixture ``small_job`` (tests/trainer/conftest.py) trains it once,
uninterrupted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from tests.support.trainer_runtime import REPO, free_port, trainer_env

ITERS = 6  # per epoch
EPOCHS = 3
TIMEOUT = 300  # seconds a run may take (2 cores shared with other work)

SMALL_JOB = f"""\
_base_ = ['{REPO}/configs/resnet/resnet18_1xb64_digits.py']
# the demo job, small: a 2-stage ResNet on 96 images, 16 a step (6 iterations an epoch), 3 epochs; random
# crops (the digits pipeline) and drop path exercise the data's and the model's randomness
model = dict(backbone=dict(num_stages=2, strides=(1, 2), dilations=(1, 1), out_indices=(1, ), stem_channels=16,
                           base_channels=16, drop_path_rate=0.2),
             head=dict(in_channels=32))
train_dataloader = dict(batch_size=16, dataset=dict(indices=96))
val_dataloader = dict(dataset=dict(indices=32))
train_cfg = dict(max_epochs={EPOCHS})
default_hooks = dict(logger=dict(interval=1))
"""
ITER_LINE = re.compile(r"Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\]")
PREEMPTED = re.compile(r"^trainer: preempted at epoch=(\d+) iter=(\d+), saved (\S+)$", re.MULTILINE)
RESUMED = re.compile(r"^trainer: resumed from (\S+) at epoch=(\d+) iter=(\d+)$", re.MULTILINE)
SHA = re.compile(r"trainer: rank=(\d+) final_weights_sha256=([0-9a-f]{64})")


@dataclass
class Run:
    returncode: int
    output: str  # stdout and stderr, merged

    @property
    def shas(self) -> dict[int, str]:
        return {int(m[1]): m[2] for m in SHA.finditer(self.output)}

    def trained(self) -> list[tuple[int, int]]:
        """(epoch, iteration in epoch) of every ``Epoch(train)`` log line, in order."""
        return [(int(m[1]), int(m[2])) for m in ITER_LINE.finditer(self.output)]


def train(config: Path, work_dir: Path, signal_at: tuple | None = None, launcher: str | None = None,
          **popen) -> Run:
    """``python -m trainer CONFIG --work-dir WORK_DIR --resume`` (under ``torchrun --nproc-per-node 2`` with
    ``launcher='pytorch'``), to the end, or killed after TIMEOUT seconds. ``signal_at=(text, signum,
    pick)`` sends ``signum`` once a line containing ``text`` was printed, to the process ``pick(proc)``
    returns (``pick`` None: the process started). ``popen``: more ``subprocess.Popen`` arguments."""
    command = ["-m", "trainer", str(config), "--work-dir", str(work_dir), "--resume"]
    if launcher:
        command = ["-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()),
                   *command, "--launcher", launcher]
    proc = subprocess.Popen([sys.executable, *command], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=trainer_env(PYTHONUNBUFFERED="1"), **popen)
    watchdog = threading.Timer(TIMEOUT, proc.kill)
    watchdog.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if signal_at and signal_at[0] in line:
                _, signum, pick = signal_at
                (pick(proc) if pick else proc).send_signal(signum)
                signal_at = None
        proc.wait()
    finally:
        watchdog.cancel()
    return Run(proc.returncode, "".join(lines))


def ok(run: Run) -> Run:
    assert run.returncode == 0, run.output[-3000:]
    return run


COMPARE = r"""
import json, sys, torch
def tensors(path):
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    found = {"state_dict." + k: v for k, v in ckpt["state_dict"].items()}
    for key, state in ckpt["optimizer"]["state"].items():
        found.update({f"optimizer.{key}.{k}": v for k, v in state.items() if torch.is_tensor(v)})
    return found
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
print(json.dumps({"tensors": len(a), "differ": sorted(k for k in a.keys() | b.keys()
                                                      if k not in a or k not in b or not torch.equal(a[k], b[k]))}))
"""


def assert_same_checkpoint(reference: Path, other: Path) -> None:
    """Every tensor of the two checkpoints' weights, buffers and optimizer state is equal (torch.equal)."""
    proc = subprocess.run([sys.executable, "-c", COMPARE, str(reference), str(other)], capture_output=True,
                          text=True, env=trainer_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["tensors"] > 20 and report["differ"] == []


def train_reference(tmp: Path) -> dict:
    """Write the small job's config to ``tmp/small.py`` and train it uninterrupted in ``tmp/reference``:
    ``dict(config, work_dir, run, sha)``."""
    config = tmp / "small.py"
    config.write_text(SMALL_JOB)
    run = ok(train(config, tmp / "reference"))
    assert run.trained()[-1] == (EPOCHS, ITERS) and len(run.shas) == 1
    return dict(config=config, work_dir=tmp / "reference", run=run, sha=run.shas[0])


def variant(job, tmp_path, text: str) -> Path:
    """The small job plus ``text``, as ``tmp_path/variant.py``."""
    path = tmp_path / "variant.py"
    path.write_text(f"_base_ = ['{job['config']}']\n{text}")
    return path


def assert_same_answer(job, run: Run, work_dir: Path) -> None:
    """``run`` (in ``work_dir``) ended with the reference's weights: its sha256 line and final checkpoint."""
    assert run.shas == {0: job["sha"]}, run.output[-3000:]
    assert_same_checkpoint(job["work_dir"] / f"epoch_{EPOCHS}.pth", work_dir / f"epoch_{EPOCHS}.pth")




@dataclass
class Process:
    """A process known by its pid (``send_signal`` like ``subprocess.Popen``'s)."""

    pid: int

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)
