"""The training operator's webhook rules (and kctl's value checks) on PyTorchJobs."""

from __future__ import annotations

import pytest

from kctl.validate.webhook import pytorchjob_problems

from .conftest import master_pod


def _found(job) -> dict:
    return {p.path: p.message for p in pytorchjob_problems(job)}


def test_a_valid_job_passes(job):
    assert _found(job) == {}


def test_master_replicas_must_be_given_explicitly(job):
    del job["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"]
    assert _found(job) == {"spec.pytorchReplicaSpecs.Master.replicas":
                           "must be set to 1 (the webhook checks before defaulting)"}


def test_master_replicas_must_be_one(job):
    job["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] = 2
    assert _found(job) == {"spec.pytorchReplicaSpecs.Master.replicas": "must be 1, got 2"}


def test_worker_replicas_at_least_one_when_set(job):
    job["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] = 0
    assert _found(job) == {"spec.pytorchReplicaSpecs.Worker.replicas":
                           "must be at least 1, got 0"}
    del job["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"]
    assert _found(job) == {}


@pytest.mark.parametrize("replica_type", ["Chief", "worker", "PS"])
def test_only_master_and_worker_replica_types(job, replica_type):
    replicas = job["spec"]["pytorchReplicaSpecs"]
    replicas[replica_type] = replicas.pop("Worker")
    assert _found(job) == {f"spec.pytorchReplicaSpecs.{replica_type}":
                           "replica type must be Master or Worker (case-sensitive)"}


def test_every_replica_needs_a_container_named_pytorch_with_an_image(job):
    containers = master_pod(job)["containers"]
    containers[0]["name"] = "trainer"
    del containers[0]["image"]
    assert _found(job) == {
        "spec.pytorchReplicaSpecs.Master.template.spec.containers":
            "needs a container named 'pytorch' (the operator runs and wires up that one)",
        "spec.pytorchReplicaSpecs.Master.template.spec.containers[0].image":
            "every container needs an image"}
    containers.clear()
    assert _found(job) == {"spec.pytorchReplicaSpecs.Master.template.spec.containers":
                           "needs at least one container"}


def test_elastic_policy_needs_a_worker_and_one_nproc_setting(job):
    del job["spec"]["pytorchReplicaSpecs"]["Worker"]
    job["spec"]["elasticPolicy"] = {"nProcPerNode": 8}
    assert _found(job) == {
        "spec.elasticPolicy": "needs a Worker replica",
        "spec.elasticPolicy.nProcPerNode": "cannot be set together with spec.nprocPerNode"}


@pytest.mark.parametrize("field, value, path", [
    ("managedBy", "me", "spec.runPolicy.managedBy"),
    ("cleanPodPolicy", "Sometimes", "spec.runPolicy.cleanPodPolicy"),
])
def test_run_policy_values(job, field, value, path):
    job["spec"]["runPolicy"][field] = value
    assert list(_found(job)) == [path]


@pytest.mark.parametrize("value, ok", [("auto", True), ("gpu", True), ("cpu", True),
                                       ("16", True), ("0", False), ("eight", False),
                                       ("-1", False), ("8 ", False)])
def test_nproc_per_node_values(job, value, ok):
    job["spec"]["nprocPerNode"] = value
    assert (_found(job) == {}) is ok


def test_restart_policy_values(job):
    job["spec"]["pytorchReplicaSpecs"]["Worker"]["restartPolicy"] = "Sometimes"
    assert list(_found(job)) == ["spec.pytorchReplicaSpecs.Worker.restartPolicy"]
