"""Rendering a job with a Kubernetes backend in tests, and reading the pod kctl asked for.

A PyTorchJob states its pod in each replica's template; a TrainJob splits it between
``spec.trainer`` (image, command, env, resources) and a runtime patch (volumes, mounts, security).
:func:`container` and :func:`pod_spec` put the pieces back together, so the tests of what every
kind's pod holds (``test_kubernetes.py``) read both the same way.
"""

from __future__ import annotations

from pathlib import Path

from kctl.backends import load_backend
from kctl.job import Job, Topology

REPO = Path(__file__).resolve().parents[3]
GOLDEN_CONFIG = REPO / "tests/kctl/golden/configs/resnet/resnet18_1xb64_digits.py"


def render(kind="PyTorchJob", config=GOLDEN_CONFIG, gpus=8, nodes=1, cpu_procs=1,
           trainer_args=(), name="digits", **options):
    job = Job(config=Path(config), topology=Topology.per_node(gpus, nodes, cpu_procs), name=name,
              trainer_args=tuple(trainer_args))
    return load_backend(kind.lower()).render(job, **options)


def objects(dryrun) -> dict:
    return {obj["kind"]: obj for obj in dryrun.request}


def job_object(dryrun) -> dict:
    return dryrun.request[-1]


def pod_spec(dryrun, replica_type="Master") -> dict:
    job = job_object(dryrun)
    if job["kind"] == "PyTorchJob":
        return job["spec"]["pytorchReplicaSpecs"][replica_type]["template"]["spec"]
    (patch,) = job["spec"]["runtimePatches"]
    (node,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    return node["template"]["spec"]["template"]["spec"]


def pod_labels(dryrun) -> dict:
    job = job_object(dryrun)
    if job["kind"] == "PyTorchJob":
        return job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["metadata"]["labels"]
    (patch,) = job["spec"]["runtimePatches"]
    (node,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    return node["template"]["spec"]["template"]["metadata"]["labels"]


def container(dryrun, replica_type="Master") -> dict:
    """The trainer container as the pod will run it."""
    (only,) = pod_spec(dryrun, replica_type)["containers"]
    job = job_object(dryrun)
    if job["kind"] == "PyTorchJob":
        return only
    trainer = job["spec"]["trainer"]
    merged = {**only, "image": trainer["image"], "command": trainer["command"],
              "env": trainer["env"]}
    if "resourcesPerNode" in trainer:
        merged["resources"] = trainer["resourcesPerNode"]
    return merged
