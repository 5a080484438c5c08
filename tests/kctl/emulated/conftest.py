"""Fixtures for running rendered PyTorchJobs and TrainJobs in the operator emulators
(:mod:`tests.support.operator_emulator`, :mod:`tests.support.trainjob_emulator`)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.support.operator_emulator import REPO, emulator_for, load_manifest
from tests.support.pod_runner import PodRunner


def render_train(*args: str) -> list[dict]:
    """The objects ``kctl train --dry-run ARGS`` prints (the real command line, run from the
    repository)."""
    out = subprocess.run([sys.executable, "-m", "kctl", "train", "--dry-run", *args], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return load_manifest(out.stdout)


def run_command_line(objects: list[dict], *args: str) -> subprocess.CompletedProcess:
    """``python -m tests.support.operator_emulator - ARGS`` with ``objects`` as the manifest on
    stdin."""
    return subprocess.run([sys.executable, "-m", "tests.support.operator_emulator", "-", *args],
                          input=yaml.safe_dump_all(objects), cwd=REPO, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def emulate(tmp_path):
    """``emulate(objects, **options)``: the emulator of the job in ``objects`` (PyTorchJob or
    TrainJob) working in ``tmp_path`` (PVCs in ``tmp_path/pvc``, claim ``shared`` pre-created).
    Every emulator is shut down at the end, and none may leave a process behind."""
    made: list[PodRunner] = []
    (tmp_path / "pvc" / "shared").mkdir(parents=True)

    def make(objects: list[dict], **options) -> PodRunner:
        options.setdefault("pvc_root", tmp_path / "pvc")
        emulator = emulator_for(objects, tmp_path / f"emulator-{len(made)}", **options)
        made.append(emulator)
        return emulator

    yield make
    for emulator in made:
        emulator.shutdown()
    assert [pid for emulator in made for pid in emulator.leftover_processes()] == []


def training_runtime(name: str, *, backoff_limit: int | None = None,
                     restart_policy: str | None = None,
                     kind: str = "ClusterTrainingRuntime") -> dict:
    """A ClusterTrainingRuntime (or TrainingRuntime, in namespace ``default``) like
    ``torch-distributed`` (one replicated job ``node``, one container ``node``), with the node
    Job's ``backoffLimit`` and the pods' ``restartPolicy`` when given."""
    job_spec: dict = {"template": {"spec": {"containers": [{"name": "node", "image": "python"}]}}}
    if backoff_limit is not None:
        job_spec["backoffLimit"] = backoff_limit
    if restart_policy is not None:
        job_spec["template"]["spec"]["restartPolicy"] = restart_policy
    metadata = {"name": name}
    if kind == "TrainingRuntime":
        metadata["namespace"] = "default"
    return {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": kind, "metadata": metadata,
            "spec": {"mlPolicy": {"numNodes": 1, "torch": {}},
                     "template": {"spec": {"replicatedJobs": [{
                         "name": "node",
                         "template": {"metadata": {"labels": {
                             "trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
                                      "spec": job_spec}}]}}}}


def trainjob(name: str = "t", *, runtime: str = "torch-distributed", pod_spec: dict | None = None,
             mounts: list[dict] | None = None, **trainer) -> dict:
    """A TrainJob against ClusterTrainingRuntime ``runtime`` with ``trainer`` as its
    ``spec.trainer`` and, when given, one runtime patch of the ``node`` pod: ``pod_spec`` (volumes,
    securityContext...) and the ``node`` container's ``mounts``."""
    spec: dict = {"runtimeRef": {"apiGroup": "trainer.kubeflow.org",
                                 "kind": "ClusterTrainingRuntime", "name": runtime},
                  "trainer": trainer}
    if pod_spec is not None or mounts is not None:
        patched = dict(pod_spec or {})
        if mounts is not None:
            patched["containers"] = [{"name": "node", "volumeMounts": mounts}]
        spec["runtimePatches"] = [{"manager": "tests.kctl.dev/emulated", "trainingRuntimeSpec": {
            "template": {"spec": {"replicatedJobs": [{
                "name": "node", "template": {"spec": {"template": {"spec": patched}}}}]}}}}]
    return {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
            "metadata": {"name": name}, "spec": spec}
