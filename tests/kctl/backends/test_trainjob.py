"""The TrainJob backend: the fields only a TrainJob has (what every Kubernetes kind's pod holds
is in test_kubernetes.py, the golden manifests in test_golden.py)."""

from __future__ import annotations

import pytest

from kctl.backends import load_backend
from kctl.backends import trainjob as backend
from kctl.errors import UsageError
from tests.kctl.backends.kube_views import container, job_object, pod_spec
from tests.kctl.backends.kube_views import render as render_kind


def render(**options):
    return render_kind("TrainJob", **options)


def test_backend_is_found_by_its_kind():
    assert load_backend("trainjob") is backend.BACKEND
    assert backend.BACKEND.api_version == "trainer.kubeflow.org/v1alpha1"


@pytest.mark.parametrize("gpus, nodes, cpu_procs, procs", [(8, 1, 1, 8), (8, 4, 1, 8),
                                                           (0, 2, 3, 3), (0, 1, 1, 1)])
def test_nodes_and_processes_per_node_are_integers(gpus, nodes, cpu_procs, procs):
    trainer = job_object(render(gpus=gpus, nodes=nodes, cpu_procs=cpu_procs,
                                work_dir_pvc="w"))["spec"]["trainer"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (nodes, procs)


def test_runtime_is_torch_distributed_unless_named():
    spec = job_object(render())["spec"]
    assert spec["runtimeRef"] == {"apiGroup": "trainer.kubeflow.org",
                                  "kind": "ClusterTrainingRuntime", "name": "torch-distributed"}
    spec = job_object(render(runtime="torch-h100", runtime_kind="TrainingRuntime"))["spec"]
    assert spec["runtimeRef"] == {"apiGroup": "trainer.kubeflow.org", "kind": "TrainingRuntime",
                                  "name": "torch-h100"}


def test_the_pod_is_one_patch_of_the_node_job_and_env_goes_through_the_trainer():
    dryrun = render(gpus=0, work_dir_pvc="w")
    (patch,) = job_object(dryrun)["spec"]["runtimePatches"]
    assert patch["manager"] == "kctl.dev/kctl"  # a domain-prefixed path, as the CRD demands
    (node,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert node["name"] == "node"
    (patched,) = pod_spec(dryrun)["containers"]
    # the webhook refuses env on the `node` container; image, command and resources belong to
    # spec.trainer
    assert set(patched) == {"name", "securityContext", "volumeMounts"}
    assert patched["name"] == "node"
    names = [e["name"] for e in container(dryrun)["env"]]
    assert not [n for n in names if n.startswith("PET_")]  # the torch plugin's, reserved


def test_queue_creates_the_job_suspended():
    assert job_object(render(queue="team-a"))["spec"]["suspend"] is True
    assert "suspend" not in job_object(render())["spec"]


@pytest.mark.parametrize("nodes, limit", [(1, 48), (10, 48), (11, 47), (100, 47), (101, 46)])
def test_name_limit_follows_the_jobsets_pod_names(nodes, limit):
    assert backend.name_limit(nodes) == limit
    assert len(f"{'x' * limit}-node-0-{nodes - 1}-abcde") == 63
    assert job_object(render(name="x" * limit, nodes=nodes, work_dir_pvc="w"))
    with pytest.raises(UsageError, match=f"is {limit + 1} characters; a TrainJob of {nodes} "
                                         f"node.s. takes at most {limit} .the JobSet names pods"):
        render(name="x" * (limit + 1), nodes=nodes, work_dir_pvc="w")


@pytest.mark.parametrize("options, message", [
    (dict(gang=True), "--gang does not apply to a TrainJob: a TrainJob is gang-scheduled by its "
                      "runtime's podGroupPolicy"),
    (dict(priority_class="high"), "--priority-class does not apply to a TrainJob: "
                                  "runtimePatches cannot set priorityClassName"),
    (dict(max_restarts=2), "--max-restarts does not apply to a TrainJob: a TrainJob's restarts "
                           "are its runtime's Job backoffLimit"),
    (dict(runtime_kind="Runtime"), "--runtime-kind must be ClusterTrainingRuntime or "
                                   "TrainingRuntime, got 'Runtime'"),
    (dict(runtime="Torch_H100"), "--runtime: 'Torch_H100' is not a DNS-1123 subdomain"),
])
def test_options_a_trainjob_cannot_take_are_refused_with_the_reason(options, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        render(**options)
