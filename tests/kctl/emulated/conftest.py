"""Fixtures for running rendered PyTorchJobs in :mod:`tests.support.operator_emulator`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.operator_emulator import REPO, OperatorEmulator, load_manifest


def render_train(*args: str) -> list[dict]:
    """The objects ``kctl train --dry-run ARGS`` prints (the real command line, run from the
    repository)."""
    out = subprocess.run([sys.executable, "-m", "kctl", "train", "--dry-run", *args], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return load_manifest(out.stdout)


@pytest.fixture
def emulate(tmp_path):
    """``emulate(objects, **options)``: an :class:`OperatorEmulator` working in ``tmp_path``
    (PVCs in ``tmp_path/pvc``, claim ``shared`` pre-created). Every emulator is shut down at the
    end, and none may leave a process behind."""
    made: list[OperatorEmulator] = []
    (tmp_path / "pvc" / "shared").mkdir(parents=True)

    def make(objects: list[dict], **options) -> OperatorEmulator:
        options.setdefault("pvc_root", tmp_path / "pvc")
        emulator = OperatorEmulator(objects, tmp_path / f"emulator-{len(made)}", **options)
        made.append(emulator)
        return emulator

    yield make
    for emulator in made:
        emulator.shutdown()
    assert [pid for emulator in made for pid in emulator.leftover_processes()] == []
