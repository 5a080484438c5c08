"""Fixtures for the runtime tests of ``python -m trainer`` (tests/trainer/test_*.py).

Runs happen in subprocesses (the command line is what is under test); pytest itself never imports
torch. The tiny config trains :mod:`tests.support.tiny_components` for 2 epochs in about a second.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

TINY_RUNTIME = """\
default_scope = 'trainer'
custom_imports = dict(imports=['tests.support.tiny_components'], allow_failed_imports=False)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=2),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)
log_processor = dict(by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
"""

TINY_CONFIG = """\
_base_ = ['./_base_/tiny_runtime.py']
model = dict(type='TinyNet')
train_dataloader = dict(batch_size=8, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=True),
                        dataset=dict(type='TinyDataset', num_samples=64))
val_dataloader = dict(batch_size=16, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                      dataset=dict(type='TinyDataset', num_samples=32, seed=1))
val_evaluator = dict(type='TinyAccuracy')
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
val_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9))
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[1], gamma=0.1)
auto_scale_lr = dict(base_batch_size=16)
"""


def write_config(directory: Path, body: str = TINY_CONFIG, name: str = "tiny.py") -> Path:
    """Write ``body`` as ``directory/name`` next to the tiny ``_base_/tiny_runtime.py``."""
    (directory / "_base_").mkdir(parents=True, exist_ok=True)
    (directory / "_base_" / "tiny_runtime.py").write_text(TINY_RUNTIME)
    path = directory / name
    path.write_text(textwrap.dedent(body))
    return path


@pytest.fixture
def tiny_config(tmp_path) -> Path:
    """The tiny config (2 epochs of TinyNet on 64 points, validation every epoch) in ``tmp_path/cfg``."""
    return write_config(tmp_path / "cfg")


def trainer_env(**extra: str) -> dict:
    """The environment of a trainer subprocess: CPU only, one thread, no launcher variables."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "OMPI_", "TRAINER_")) and k not in (
               "RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env.update(CUDA_VISIBLE_DEVICES="-1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.update(extra)
    return env


def run_trainer(*args, env: dict | None = None, cwd: Path = REPO, timeout: float = 300,
                module: str | None = "trainer") -> subprocess.CompletedProcess:
    """Run ``python -m MODULE ARGS`` (``python ARGS`` when ``module`` is None) and return the finished
    process (text stdout/stderr)."""
    command = [sys.executable] + (["-m", module] if module else []) + [str(a) for a in args]
    return subprocess.run(command, cwd=cwd, env=env or trainer_env(), capture_output=True, text=True,
                          timeout=timeout)


def free_port(low: int = 30000, high: int = 32000) -> int:
    """A TCP port in ``[low, high)`` that is free on 127.0.0.1 right now (random, so parallel runs differ)."""
    for port in random.sample(range(low, high), min(200, high - low)):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in [{low}, {high})")


def scalars(work_dir: Path) -> list[dict]:
    """The records of the run's ``vis_data/scalars.json`` files in ``work_dir`` (all runs, in order)."""
    records = []
    for path in sorted(Path(work_dir).glob("*/vis_data/scalars.json")):
        records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return records


def lines_with(text: str, prefix: str) -> list[str]:
    """The lines of ``text`` that contain ``prefix``."""
    return [line for line in text.splitlines() if prefix in line]
