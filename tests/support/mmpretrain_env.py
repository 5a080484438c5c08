"""The second Python environment: MMPretrain's own configs run in it (fixture ``mmpretrain_python``).

MMPretrain imports torchvision, and PyPI's torchvision wheels are CUDA builds that do not load beside
the CPU torch of the default environment. A CUDA build of torch with its torchvision does load on a
machine without a GPU (it trains on the CPU), so the tests of MMPretrain's configs run in a virtual
environment of their own, installed exactly as ``docs/mmpretrain.md`` says (:data:`INSTALL`):
torch 2.14.1 + torchvision 0.29.1, then this project with its ``[trainer,mmpretrain,test]`` extras,
then mmcv-lite without its dependencies.

It is built once (about 2 minutes and 5.8 GB here) and kept under
``~/.cache/kctl-tests/mmpretrain-venv/<key>`` (``$XDG_CACHE_HOME`` is honoured), where ``<key>``
changes with the install commands, ``constraints.txt``, ``pyproject.toml`` and the Python version.
The project is installed editable from the checkout that built it, but every subprocess gets the
checkout under test first on ``PYTHONPATH``, so checkouts share one environment. A lock keeps two
sessions from building it at once; a build that did not finish is started again. How long the build took (or
that the cached one was reused) is printed on the terminal when the first test needs it. The tests
that use it are marked ``mmpretrain`` (``-m 'not mmpretrain'`` deselects them).

Tests run the trainer, ``python -m kctl`` and tools in subprocesses with that interpreter
(:func:`mmpretrain_env`): the default environment never imports torchvision or MMPretrain.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.helm import cache_dir

REPO = Path(__file__).resolve().parents[2]

#: The install, as docs/mmpretrain.md gives it (after ``python3 -m venv .venv && . .venv/bin/activate``).
INSTALL = (
    "pip install torch==2.14.1 torchvision==0.29.1",
    "pip install -c constraints.txt -e '.[trainer,mmpretrain,test]'",
    "pip install --no-deps -c constraints.txt mmcv-lite",
)
#: Seconds the build may take (pip reads 5.5 GB from the local package mirror).
BUILD_TIMEOUT = 1800


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "mmpretrain: runs in the MMPretrain environment (fixture mmpretrain_python; built on first "
        "use, about 2 minutes and 5.8 GB; deselect with -m 'not mmpretrain')")


def pytest_collection_modifyitems(items):
    for item in items:
        if "mmpretrain_python" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.mmpretrain)


def environment_key() -> str:
    """What the cached environment depends on, hashed."""
    digest = hashlib.sha256()
    for part in (*INSTALL, sys.version):
        digest.update(part.encode() + b"\0")
    for name in ("constraints.txt", "pyproject.toml"):
        digest.update((REPO / name).read_bytes())
    return digest.hexdigest()[:16]


def _build(folder: Path) -> None:
    """Create the virtual environment in ``folder`` and run :data:`INSTALL` in it, from the repository."""
    if folder.exists():
        shutil.rmtree(folder)
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, capture_output=True, text=True)
    env = {**os.environ, "PATH": f"{folder / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
           "VIRTUAL_ENV": str(folder), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    for command in INSTALL:
        proc = subprocess.run(f"{command} --quiet", shell=True, cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=BUILD_TIMEOUT)
        if proc.returncode:
            pytest.fail(f"building the MMPretrain environment: `{command}` failed:\n{proc.stderr[-3000:]}",
                        pytrace=False)
    # yapf (mmengine's config dumper) rebuilds its grammar cache in ~/.cache/YAPF when its grammar file is
    # newer than the cache, as it is after an install: processes started side by side would race on it
    subprocess.run([str(folder / "bin" / "python"), "-c", "import yapf.yapflib.yapf_api"], check=True)


def mmpretrain_venv(report=print) -> Path:
    """The cached environment's folder, built first if needed; ``report`` gets one line saying which."""
    folder = cache_dir("mmpretrain-venv") / environment_key()
    folder.parent.mkdir(parents=True, exist_ok=True)
    ready = folder / "kctl-tests-ready"
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session building it: wait for it
        if ready.is_file():
            report(f"MMPretrain environment: reusing {folder} (built in {ready.read_text().strip()})")
            return folder
        start = time.monotonic()
        _build(folder)
        took = f"{time.monotonic() - start:.0f} s"
        ready.write_text(took + "\n")
        report(f"MMPretrain environment: built {folder} in {took}")
    return folder


@pytest.fixture(scope="session")
def mmpretrain_python(request) -> Path:
    """The interpreter of the MMPretrain environment (built or reused; see the module docstring)."""
    lines = []
    folder = mmpretrain_venv(lines.append)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # on the terminal, not into the test's captured output
            for line in lines:
                reporter.write_line(line)
    return folder / "bin" / "python"


def mmpretrain_env(python: Path, **extra: str) -> dict[str, str]:
    """The environment of a subprocess of the MMPretrain environment: its ``bin`` first on ``PATH``
    (``torchrun``), the repository importable, CPU only, one thread, no launch variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "OMPI_", "TRAINER_", "PET_")) and k not in (
               "RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "NNODES", "NODE_RANK",
               "PORT", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PATH=f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONPATH=str(REPO),
               CUDA_VISIBLE_DEVICES="-1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env
