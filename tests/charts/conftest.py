"""Running the real Helm binary on charts/kctl, isolated from the user's Helm and kube config."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kctl.validate.manifest import load_documents

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kctl"
DEMO_CONFIG = ROOT / "configs" / "resnet" / "resnet18_1xb64_digits.py"


class Helm:
    """``helm`` with its config, cache and data folders in a temporary folder and no cluster."""

    def __init__(self, binary: Path, home: Path):
        self.binary = binary
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_DATA_HOME": str(home / "data"),
            "KUBECONFIG": str(home / "no-kubeconfig"),
        }

    def run(self, *args: str, chart: Path = CHART, check: bool = False
            ) -> subprocess.CompletedProcess:
        argv = [str(self.binary), *[str(chart) if a == "CHART" else str(a) for a in args]]
        proc = subprocess.run(argv, capture_output=True, text=True, env=self.env, cwd=ROOT,
                              timeout=120)
        if check and proc.returncode:
            pytest.fail(f"helm {' '.join(args)} failed:\n{proc.stderr}")
        return proc

    def template(self, release: str, *args: str, namespace: str = "ml", chart: Path = CHART
                 ) -> list[dict]:
        """``helm template RELEASE CHART -n NAMESPACE ARGS``, parsed into objects."""
        proc = self.run("template", release, str(chart), "-n", namespace, *args, chart=chart,
                        check=True)
        return load_documents(proc.stdout)


@pytest.fixture(scope="session")
def helm(helm_bin, tmp_path_factory) -> Helm:
    return Helm(helm_bin, tmp_path_factory.mktemp("helm-home"))
