"""The PyTorchJob backend: the fields only a PyTorchJob has (what every Kubernetes kind's pod
holds is in test_kubernetes.py, the golden manifests in test_golden.py)."""

from __future__ import annotations

import pytest

from kctl.backends import load_backend
from kctl.backends import pytorchjob as backend
from kctl.errors import UsageError
from kctl.options import DEFAULT_MAX_RESTARTS
from tests.kctl.backends.kube_views import container, objects, pod_spec
from tests.kctl.backends.kube_views import render as render_kind


def render(**options):
    return render_kind("PyTorchJob", **options)


def test_backend_is_found_by_its_kind():
    assert load_backend("pytorchjob") is backend.BACKEND
    assert backend.BACKEND.api_version == "kubeflow.org/v1"


# --- the PyTorchJob's fields ------------------------------------------------------------------

def test_one_node_is_a_master_alone_with_explicit_single_replica():
    replicas = objects(render(nodes=1, work_dir_pvc="w"))["PyTorchJob"]["spec"][
        "pytorchReplicaSpecs"]
    assert list(replicas) == ["Master"]
    assert replicas["Master"]["replicas"] == 1
    assert replicas["Master"]["restartPolicy"] == "OnFailure"


def test_n_nodes_are_a_master_and_n_minus_1_workers_with_the_same_pod_but_work_dir():
    replicas = objects(render(nodes=4, work_dir_pvc="w"))["PyTorchJob"]["spec"][
        "pytorchReplicaSpecs"]
    assert {t: r["replicas"] for t, r in replicas.items()} == {"Master": 1, "Worker": 3}
    master, worker = (replicas[t]["template"] for t in ("Master", "Worker"))
    work_dir = {"name": "work-dir", "emptyDir": {}}  # only the Master mounts the claim
    assert [v if v["name"] != "work-dir" else work_dir for v in master["spec"]["volumes"]] == \
        worker["spec"]["volumes"]
    master["spec"].pop("volumes"), worker["spec"].pop("volumes")
    assert master == worker


@pytest.mark.parametrize("gpus, cpu_procs, nproc", [(8, 1, "8"), (1, 1, "1"), (0, 1, "1"),
                                                     (0, 3, "3")])
def test_nproc_per_node_is_a_string_of_gpus_or_cpu_processes(gpus, cpu_procs, nproc):
    job = objects(render(gpus=gpus, cpu_procs=cpu_procs))["PyTorchJob"]
    assert job["spec"]["nprocPerNode"] == nproc


def test_container_is_named_pytorch_with_the_operator_port():
    spec = container(render())
    assert spec["name"] == "pytorch"
    assert spec["ports"] == [{"name": "pytorchjob-port", "containerPort": 23456}]


def test_run_policy_defaults():
    job = objects(render(work_dir_pvc="w"))["PyTorchJob"]
    assert job["spec"]["runPolicy"] == {
        "cleanPodPolicy": backend.CLEAN_POD_POLICY, "backoffLimit": DEFAULT_MAX_RESTARTS,
        "ttlSecondsAfterFinished": backend.TTL_SECONDS_AFTER_FINISHED}
    no_restart = objects(render(work_dir_pvc="w", max_restarts=0))["PyTorchJob"]
    assert no_restart["spec"]["runPolicy"]["backoffLimit"] == 0


@pytest.mark.parametrize("nodes, max_restarts, limit", [(1, 3, 3), (2, 3, 6), (4, 2, 8),
                                                        (4, 0, 0)])
def test_backoff_limit_is_failures_times_nodes(nodes, max_restarts, limit):
    """The operator counts container restarts, and one failure restarts every node's."""
    job = objects(render(nodes=nodes, max_restarts=max_restarts, work_dir_pvc="w"))["PyTorchJob"]
    assert job["spec"]["runPolicy"]["backoffLimit"] == limit


def test_queue_creates_the_job_suspended():
    assert objects(render(queue="team-a"))["PyTorchJob"]["spec"]["runPolicy"]["suspend"] is True
    assert "suspend" not in objects(render())["PyTorchJob"]["spec"]["runPolicy"]


def test_gang_sets_min_available_to_the_node_count_and_priority_class():
    dryrun = render(nodes=4, work_dir_pvc="w", gang=True, priority_class="high")
    policy = objects(dryrun)["PyTorchJob"]["spec"]["runPolicy"]
    assert policy["schedulingPolicy"] == {"minAvailable": 4, "priorityClass": "high"}
    assert pod_spec(dryrun, "Worker")["priorityClassName"] == "high"
    no_gang = render(priority_class="high")
    assert "schedulingPolicy" not in objects(no_gang)["PyTorchJob"]["spec"]["runPolicy"]
    assert pod_spec(no_gang)["priorityClassName"] == "high"


@pytest.mark.parametrize("options, message", [
    (dict(priority_class="HIGH"), "--priority-class: 'HIGH' is not a DNS-1123 subdomain"),
    (dict(max_restarts=-1), "--max-restarts must not be negative"),
    (dict(runtime="torch"), "--runtime does not apply to a PyTorchJob: a PyTorchJob has no "
                            "runtime"),
    (dict(name="a" * 51), "is 51 characters; a PyTorchJob of 1 node(s) takes at most 50 (the "
                          "operator's <name>-worker-<i> Services must stay within 63)"),
])
def test_bad_options(options, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        render(**options)
