"""`kctl train` without --dry-run, end to end against the fake API server, then operating the job
with status, logs, list and delete."""

from pathlib import Path

import pytest
import yaml

from kctl.backends import kubernetes_backends
from kctl.k8s.jobs import not_served
from tests.support.fake_apiserver import KctlProcess, kctl_subprocess

CONFIG = Path(__file__).resolve().parents[3] / "configs/resnet/resnet18_1xb64_digits.py"


def _errors(result) -> list[str]:
    return [line for line in result.err.splitlines() if not line.startswith("kctl: warning:")]


def test_train_submits_then_status_logs_list_delete(fake_kube, run_kctl, tmp_path, monkeypatch):
    kubeconfig = fake_kube.write_kubeconfig(tmp_path / "other", context="lab")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'kubeconfig'}:{kubeconfig}")
    result = kctl_subprocess("train", CONFIG, "--gpus", "0", "--name", "digits",
                             "--context", "lab")
    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == "pytorchjob.kubeflow.org/digits created"

    job = fake_kube.get("pytorchjobs", "digits")
    config_maps = fake_kube.list("configmaps")
    assert [c["metadata"]["ownerReferences"] for c in config_maps] == [[{
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "name": "digits",
        "uid": job["metadata"]["uid"]}]]
    assert any("resnet18_1xb64_digits" in key for key in config_maps[0]["data"])

    # Play the operator and the kubelet, then operate the job.
    fake_kube.set_conditions("digits", [("Created", "True"), ("Running", "True")])
    fake_kube.add_pod("digits", "master-0", logs="trainer: launcher=pytorch rank=0 local_rank=0 "
                                                  "world_size=1 backend=gloo device=cpu")
    status = run_kctl("status", "digits", "--context", "lab")
    assert "State:     Running" in status.out
    assert "master-0   digits-master-0   Running" in status.out
    assert run_kctl("logs", "digits").out == (
        "[master-0] trainer: launcher=pytorch rank=0 local_rank=0 world_size=1 backend=gloo "
        "device=cpu\n")
    assert run_kctl("list").out.splitlines()[1].split()[:3] == ["digits", "PyTorchJob", "Running"]

    assert run_kctl("delete", "digits").code == 0
    assert fake_kube.list("pytorchjobs") == fake_kube.list("configmaps") == []
    assert fake_kube.list("pods") == []


def test_second_submit_names_the_way_out(fake_kube, run_kctl):
    assert run_kctl("train", CONFIG, "--gpus", "0", "--name", "digits").code == 0
    result = run_kctl("train", CONFIG, "--gpus", "0", "--name", "digits")
    assert result.code == 1
    assert _errors(result) == [
        'kctl: error: a PyTorchJob named "digits" already exists in namespace "default": choose '
        "another name with --name, or delete it first: kctl delete digits -n default"]
    assert len(fake_kube.list("configmaps")) == 1


def test_submit_into_a_namespace(fake_kube, run_kctl):
    fake_kube.namespaces.add("team-a")
    assert run_kctl("train", CONFIG, "--gpus", "0", "-n", "team-a").code == 0
    (job,) = fake_kube.list("pytorchjobs")
    assert job["metadata"]["namespace"] == "team-a"
    assert [c["metadata"]["namespace"] for c in fake_kube.list("configmaps")] == ["team-a"]


def test_submit_errors_are_one_line(fake_kube, run_kctl):
    fake_kube.crd_installed = False
    result = run_kctl("train", CONFIG, "--gpus", "0")
    assert (result.code, _errors(result)) == (1, [f"kctl: error: {not_served(kubernetes_backends())}"])

    fake_kube.crd_installed = True
    fake_kube.forbid("create", "pytorchjobs")
    result = run_kctl("train", CONFIG, "--gpus", "0", "-n", "default")
    assert result.code == 1
    assert _errors(result) == [
        'kctl: error: forbidden: you may not create pytorchjobs.kubeflow.org in namespace '
        '"default" (RBAC); ask a cluster admin for a Role that allows it (check: kubectl auth '
        "can-i create pytorchjobs.kubeflow.org -n default)"]
    assert fake_kube.list("configmaps") == []


def test_the_headline_command_works_as_typed_and_a_resubmit_reuses_its_claim(fake_kube, run_kctl):
    args = ("train", CONFIG, "--gpus", "8", "--nodes", "2")
    printed = run_kctl(*args, "--dry-run", "-o", "yaml")
    assert printed.code == 0, printed.err
    docs = list(yaml.safe_load_all(printed.out))
    assert [d["kind"] for d in docs] == ["PersistentVolumeClaim", "ConfigMap", "PyTorchJob"]
    replicas = docs[2]["spec"]["pytorchReplicaSpecs"]
    mounts = {rtype: [v for v in spec["template"]["spec"]["volumes"] if v["name"] == "work-dir"]
              for rtype, spec in replicas.items()}
    assert mounts == {"Master": [{"name": "work-dir", "persistentVolumeClaim": {
                          "claimName": "resnet18-1xb64-digits-work-dir"}}],
                      "Worker": [{"name": "work-dir", "emptyDir": {}}]}

    assert run_kctl(*args).code == 0
    claim = fake_kube.get("persistentvolumeclaims", "resnet18-1xb64-digits-work-dir")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "ownerReferences" not in claim["metadata"]  # it outlives the job
    assert fake_kube.get("configmaps", "resnet18-1xb64-digits-config")
    assert fake_kube.get("pytorchjobs", "resnet18-1xb64-digits")

    deleted = run_kctl("delete", "resnet18-1xb64-digits")
    assert 'kept persistentvolumeclaim "resnet18-1xb64-digits-work-dir"' in deleted.out
    assert run_kctl(*args).code == 0  # the same job again: it resumes from the same claim
    assert fake_kube.get("persistentvolumeclaims", "resnet18-1xb64-digits-work-dir") == claim


@pytest.mark.parametrize("outcome, code", [("Succeeded", 0), ("Failed", 1)])
def test_train_follow_streams_the_logs_and_exits_with_the_jobs_outcome(fake_kube, outcome, code):
    follow = KctlProcess("train", CONFIG, "--gpus", "0", "--name", "digits", "-f")
    try:
        follow.wait_for_line("pytorchjob.kubeflow.org/digits created")
        fake_kube.set_conditions("digits", [("Created", "True"), ("Running", "True")])
        fake_kube.add_pod("digits", "master-0", logs="trainer: epoch 1")
        follow.wait_for_line("[master-0] trainer: epoch 1")
        fake_kube.append_log("digits-master-0", "trainer: epoch 2")
        follow.wait_for_line("[master-0] trainer: epoch 2")
        fake_kube.set_conditions("digits", [("Created", "True"), ("Running", "False"),
                                            (outcome, "True")])
        fake_kube.finish_pod("digits-master-0", phase=outcome, exit_code=code)
        result = follow.wait()
    finally:
        follow.kill()
    assert result.code == code
    assert result.err.splitlines()[-1].startswith(
        f"kctl: PyTorchJob digits {outcome}" if code == 0
        else f"kctl: error: PyTorchJob digits ended {outcome}")
    assert "Watch it:" not in result.err  # it is being watched
