"""Valid objects to break: the golden manifests of ``kctl train`` (tests/kctl/golden/pytorchjob)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from kctl.validate.manifest import load_documents

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "pytorchjob"


def golden(case: str = "gpu_2x8") -> dict:
    """The golden manifest's objects by kind (fresh copies)."""
    docs = load_documents((GOLDEN / f"{case}.yaml").read_text())
    return {doc["kind"]: copy.deepcopy(doc) for doc in docs}


@pytest.fixture
def job() -> dict:
    """A valid 2-node PyTorchJob (Master + 1 Worker)."""
    return golden()["PyTorchJob"]


@pytest.fixture
def config_map() -> dict:
    return golden()["ConfigMap"]


@pytest.fixture
def pvc() -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "work-dirs", "namespace": "research"},
            "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "nfs",
                     "resources": {"requests": {"storage": "100Gi"}}}}


def master_pod(job: dict) -> dict:
    return job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]


DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def trainjob() -> dict:
    """The facts' 2 x 8-GPU TrainJob (trainer v2.3.0), a fresh copy."""
    (job,) = load_documents((DATA / "trainjob-2x8gpu.yaml").read_text())
    return job


def node_pod(job: dict, patch: int = 0) -> dict:
    """The pod spec a TrainJob's runtime patch sets on the ``node`` replicated job."""
    return job["spec"]["runtimePatches"][patch]["trainingRuntimeSpec"]["template"]["spec"][
        "replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
