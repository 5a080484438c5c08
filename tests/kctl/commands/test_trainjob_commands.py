"""Every job command on TrainJobs, and which kind kctl train picks, against the fake API server."""

import re
from pathlib import Path

import pytest

from kctl.backends import kubernetes_backends
from kctl.k8s.jobs import not_served
from tests.support.fake_apiserver import KctlProcess, ago

CONFIG = Path(__file__).resolve().parents[3] / "configs/resnet/resnet18_1xb64_digits.py"
SUBMIT = ("train", CONFIG, "--gpus", "0", "--name", "digits")


def _errors(result) -> list[str]:
    return [line for line in result.err.splitlines() if not line.startswith("kctl: warning:")]


# --- which kind a submit picks ------------------------------------------------------------------

@pytest.mark.parametrize("served, created, note", [
    ({"PyTorchJob"}, "pytorchjob.kubeflow.org/digits created", False),
    ({"TrainJob"}, "trainjob.trainer.kubeflow.org/digits created", False),
    ({"PyTorchJob", "TrainJob"}, "pytorchjob.kubeflow.org/digits created", True),
])
def test_a_submit_without_kind_asks_the_cluster(fake_kube, run_kctl, served, created, note):
    fake_kube.served = set(served)
    if "TrainJob" in served:
        fake_kube.install_trainer()
    result = run_kctl(*SUBMIT)
    assert (result.code, result.out) == (0, created + "\n"), result.err
    assert ("kctl: note: this cluster serves PyTorchJob and TrainJob; submitting a PyTorchJob "
            "(--kind TrainJob submits a TrainJob)") in result.err.splitlines() if note else \
        "kctl: note:" not in result.err


def test_a_cluster_with_neither_operator_is_one_line_naming_both(fake_kube, run_kctl):
    fake_kube.served = set()
    result = run_kctl(*SUBMIT)
    assert result.code == 1
    assert _errors(result) == [f"kctl: error: {not_served(kubernetes_backends())}"]
    assert "training-operator" in result.err and "Kubeflow Trainer v2.3" in result.err
    assert fake_kube.list("configmaps") == fake_kube.list("persistentvolumeclaims") == []


def test_a_dry_run_without_kind_is_a_pytorchjob_and_needs_no_cluster(run_kctl):
    result = run_kctl(*SUBMIT, "--dry-run")
    assert result.code == 0 and "kind: PyTorchJob" in result.out


# --- bad input for a TrainJob: one line, nothing created -----------------------------------------

def test_a_runtime_the_cluster_does_not_have(fake_kube, run_kctl):
    fake_kube.install_trainer()
    result = run_kctl(*SUBMIT, "--kind", "TrainJob", "--runtime", "torch-h100")
    assert result.code == 1
    assert _errors(result) == [
        'kctl: error: ClusterTrainingRuntime "torch-h100" (--runtime) does not exist (see: '
        "kubectl get clustertrainingruntimes.trainer.kubeflow.org); nothing was created"]
    result = run_kctl(*SUBMIT, "--kind", "TrainJob", "--runtime", "mine",
                      "--runtime-kind", "TrainingRuntime")
    assert _errors(result) == [
        'kctl: error: TrainingRuntime "mine" (--runtime) does not exist in namespace "default" '
        "(see: kubectl get trainingruntimes.trainer.kubeflow.org -n default); nothing was created"]
    assert fake_kube.list("trainjobs") == fake_kube.list("configmaps", "default") == []
    assert fake_kube.list("persistentvolumeclaims") == []


def test_no_trainjob_crd(fake_kube, run_kctl):
    result = run_kctl(*SUBMIT, "--kind", "TrainJob")
    assert result.code == 1
    (line,) = _errors(result)
    assert line.startswith("kctl: error: the TrainJob CRD (trainer.kubeflow.org/v1alpha1) is not "
                           "installed: install Kubeflow Trainer v2.3")


@pytest.mark.parametrize("args, message", [
    (["--name", "x" * 49], "a TrainJob of 1 node(s) takes at most 48"),
    (["--nodes", "0"], "--nodes must be at least 1, got 0"),
    (["--env", "PET_NODE_RANK=3"], "PET_NODE_RANK is set by the training operator"),
    (["--max-restarts", "5"], "--max-restarts does not apply to a TrainJob"),
])
def test_trainjob_bad_input_is_one_line_and_creates_nothing(fake_kube, run_kctl, args, message):
    fake_kube.install_trainer()
    result = run_kctl("train", CONFIG, "--gpus", "0", "--kind", "TrainJob", *args)
    assert result.code == 2
    (line,) = result.err.splitlines()
    assert line.startswith("kctl: error: ") and message in line
    assert fake_kube.list("trainjobs") == [] and fake_kube.list("configmaps", "default") == []


def test_a_storage_class_or_pull_secret_that_does_not_exist(fake_kube, run_kctl):
    fake_kube.add_storage_class("standard", default=True)
    result = run_kctl(*SUBMIT, "--storage-class", "fast")
    assert _errors(result) == [
        'kctl: error: StorageClass "fast" (--storage-class) does not exist (see: kubectl get '
        "storageclasses.storage.k8s.io); nothing was created"]
    result = run_kctl(*SUBMIT, "--image-pull-secret", "registry")
    assert _errors(result) == [
        'kctl: error: Secret "registry" (--image-pull-secret) does not exist in namespace '
        '"default" (see: kubectl get secrets -n default); nothing was created']
    assert fake_kube.list("pytorchjobs") == fake_kube.list("persistentvolumeclaims") == []
    fake_kube.add_secret("registry")
    assert run_kctl(*SUBMIT, "--image-pull-secret", "registry", "--storage-class",
                    "standard").code == 0


# --- operating a TrainJob ------------------------------------------------------------------------

def test_submit_then_status_logs_list_delete(fake_kube, run_kctl):
    fake_kube.install_trainer()
    result = run_kctl("train", CONFIG, "--gpus", "0", "--nodes", "2", "--name", "digits",
                      "--kind", "TrainJob", "--work-dir-pvc", "shared")
    assert (result.code, result.out) == (0, "trainjob.trainer.kubeflow.org/digits created\n")
    job = fake_kube.get("trainjobs", "digits")
    (config_map,) = fake_kube.list("configmaps", "default")[-1:]
    assert config_map["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]

    fake_kube.set_trainjob_status("digits", jobs_status={"node": {"active": 1, "ready": 1}})
    fake_kube.add_pod("digits", "node-0", logs="trainer: rank=0")
    fake_kube.add_pod("digits", "node-1", logs="trainer: rank=1")
    status = run_kctl("status", "digits").out
    assert "Kind:      TrainJob\nState:     Running\n" in status
    assert "Runtime:   ClusterTrainingRuntime/torch-distributed\n" in status
    assert "Size:      2 node(s), CPU\n" in status
    rows = [line.split()[:3] for line in status.split("Replicas:\n")[1].splitlines()[1:3]]
    assert [(r[0], r[2]) for r in rows] == [("node-0", "Running"), ("node-1", "Running")]
    assert re.fullmatch(r"digits-node-0-0-[a-z0-9]{5}", rows[0][1])
    assert run_kctl("logs", "digits").out == "[node-0] trainer: rank=0\n[node-1] trainer: rank=1\n"
    assert run_kctl("logs", "digits", "--replica", "node-1").out == "[node-1] trainer: rank=1\n"
    row = run_kctl("list").out.splitlines()[1].split()
    assert row[:3] + row[4:] == ["digits", "TrainJob", "Running", "2x0"]

    deleted = run_kctl("delete", "digits")
    assert deleted.out.splitlines()[0] == 'trainjob.trainer.kubeflow.org "digits" deleted'
    assert 'kept persistentvolumeclaim "shared"' in deleted.out
    assert fake_kube.list("trainjobs") == [] and fake_kube.list("pods") == []


@pytest.mark.parametrize("conditions, jobs_status, state", [
    ((), None, "<none>"),
    ((), {"node": {}}, "Pending"),
    ((), {"node": {"active": 1}}, "Running"),
    ((("Suspended", "True"),), {"node": {"suspended": 1}}, "Suspended"),
    ((("Suspended", "False"),), {"node": {"active": 1}}, "Running"),
    ((("Complete", "True"),), {"node": {"succeeded": 1}}, "Succeeded"),
    ((("Failed", "True"),), {"node": {"failed": 1}}, "Failed"),
])
def test_trainjob_state_from_conditions_and_jobs_status(fake_kube, run_kctl, conditions,
                                                       jobs_status, state):
    fake_kube.served.add("TrainJob")
    fake_kube.add_trainjob("llm", conditions=conditions, jobs_status=jobs_status,
                           created=ago(minutes=3))
    assert run_kctl("list").out.splitlines()[1].split()[:3] == ["llm", "TrainJob", state]


def test_status_says_which_node_failed_and_why(fake_kube, run_kctl):
    fake_kube.served.add("TrainJob")
    fake_kube.add_trainjob("llm", nodes=2, conditions=[("Failed", "True")],
                           jobs_status={"node": {"failed": 1}})
    fake_kube.add_pod("llm", "node-0", phase="Failed", restarts=2, exit_code=137,
                      last_exit=(1, "Error"))
    fake_kube.add_pod("llm", "node-1", phase="Failed", restarts=3, exit_code=1,
                      last_exit=(1, "Error"))
    out = run_kctl("status", "llm").out
    failure = out.split("\n\n")[1].splitlines()
    assert failure[0].startswith("Failed:    FailedJobs: ")
    assert "(first failed job: llm-node-0)" in failure[0]
    assert re.fullmatch(r"           node-\d failed last: pod llm-node-0-\d-[a-z0-9]{5} exited "
                        r"with code (1|137) \((Error|OOMKilled)\) after \d restart\(s\)",
                        failure[1])


def test_jobs_of_both_kinds_with_one_name_need_kind(fake_kube, run_kctl):
    fake_kube.served.add("TrainJob")
    fake_kube.add_job("llm")
    fake_kube.add_trainjob("llm")
    result = run_kctl("status", "llm")
    assert (result.code, result.err) == (
        1, 'kctl: error: a PyTorchJob and a TrainJob are both named "llm" in namespace '
           '"default": pass --kind PyTorchJob or --kind TrainJob\n')
    assert "Kind:      TrainJob" in run_kctl("status", "llm", "--kind", "TrainJob").out
    result = run_kctl("status", "nope")
    assert result.err == ('kctl: error: no PyTorchJob or TrainJob named "nope" in namespace '
                          '"default" (see: kctl list -n default)\n')


def test_logs_follow_across_a_restart_and_a_replaced_pod(fake_kube):
    fake_kube.served.add("TrainJob")
    fake_kube.add_trainjob("llm", nodes=2, jobs_status={"node": {"active": 1}})
    fake_kube.add_pod("llm", "node-0", logs="node 0 step 1")
    fake_kube.add_pod("llm", "node-1", logs="node 1 step 1")
    follow = KctlProcess("logs", "llm", "-f")
    try:
        follow.wait_for_line("[node-0] node 0 step 1")
        follow.wait_for_line("[node-1] node 1 step 1")
        fake_kube.restart_container(fake_kube.replica_pod("llm", "node-0")["metadata"]["name"],
                                    logs="node 0 resumed")
        follow.wait_for_line("[node-0] node 0 resumed")
        old = fake_kube.replica_pod("llm", "node-1")["metadata"]["name"]
        fake_kube.replace_pod("llm", "node-1", logs="node 1 resumed in a new pod")
        follow.wait_for_line("[node-1] node 1 resumed in a new pod")
        assert fake_kube.replica_pod("llm", "node-1")["metadata"]["name"] != old
        fake_kube.set_trainjob_status("llm", conditions=[("Complete", "True")],
                                      jobs_status={"node": {"succeeded": 1}})
        for node in ("node-0", "node-1"):
            fake_kube.finish_pod(fake_kube.replica_pod("llm", node)["metadata"]["name"])
        result = follow.wait()
    finally:
        follow.kill()
    assert result.code == 0, result.err
    assert "kctl: [node-0] container restarted (restart 1); following the new one" in result.err
    assert re.search(r"kctl: \[node-1\] pod llm-node-0-1-[a-z0-9]{5} was re-created; following "
                     r"the new pod", result.err)


def test_status_of_a_failed_trainjob_whose_pods_were_deleted_reads_their_events(fake_kube,
                                                                                run_kctl):
    """When the node Job used up its backoffLimit, Kubernetes deleted its pods: the events that
    are left say which node failed."""
    fake_kube.served.add("TrainJob")
    fake_kube.add_trainjob("llm", nodes=2, conditions=[("Failed", "True")],
                           jobs_status={"node": {"failed": 1}})
    fake_kube.add_event("llm-node-0-0-a1b2c", "BackOff", "Back-off restarting failed container "
                        "node in pod llm-node-0-0-a1b2c_default", source="kubelet")
    fake_kube.add_event("llm-node-0-1-x9y8z", "BackOff", "Back-off restarting failed container "
                        "node in pod llm-node-0-1-x9y8z_default", source="kubelet")
    fake_kube.add_event("other-node-0-0-zzzzz", "BackOff", "not this job's", source="kubelet")
    out = run_kctl("status", "llm").out
    failure = out.split("\n\n")[1].splitlines()
    assert failure[0].startswith("Failed:    FailedJobs: ")
    assert re.fullmatch(r"           node-1 failed last: pod llm-node-0-1-x9y8z \(deleted with the "
                        r"Job\), BackOff \d+s ago: Back-off restarting failed container node in "
                        r"pod llm-node-0-1-x9y8z_default", failure[1])
    rows = [line.split() for line in out.split("Replicas:\n")[1].splitlines()[1:3]]
    assert [row[:4] for row in rows] == [["node-0", "-", "-", "deleted"],
                                         ["node-1", "-", "-", "deleted"]]
