"""kctl status against the fake API server."""

import re

from kctl.backends import kubernetes_backends
from kctl.k8s.jobs import not_served
from tests.support.fake_apiserver import ago


def _section(out: str, title: str) -> list[str]:
    """The lines of one section of `kctl status` (after its title, up to a blank line)."""
    lines = out.split(f"\n{title}\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return [line.split() for line in lines]


def test_conditions_replicas_restarts_and_why_pending(fake_kube, run_kctl):
    fake_kube.add_job("llm-train", workers=2, created=ago(minutes=7),
                      conditions=[("Created", "True"), ("Running", "False"),
                                  ("Restarting", "True", "PyTorchJobRestarting",
                                   "PyTorchJob llm-train is restarting because 1 Master "
                                   "replica(s) failed.")])
    fake_kube.add_pod("llm-train", "master-0", restarts=3, last_exit=(137, "OOMKilled"),
                      created=ago(minutes=16))
    fake_kube.add_pod("llm-train", "worker-0", phase="Pending", created=ago(minutes=16))
    fake_kube.add_event("llm-train-worker-0", "FailedScheduling",
                        "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.", count=4)
    fake_kube.add_event("llm-train-master-0", "BackOff", "Back-off restarting failed container")
    fake_kube.add_event("llm-train", "FailedCreatePod", 'pods "llm-train-worker-1" is forbidden: '
                        "exceeded quota", kind="PyTorchJob")

    result = run_kctl("status", "llm-train")
    assert result.code == 0, result.err
    out = re.sub(r"\b\d+s ago", "Ns ago", result.out)  # events and exits of a moment ago
    assert "State:     Restarting\n" in out
    assert "Size:      3 node(s) x 8 GPU(s)\n" in out
    conditions = _section(out, "Conditions:")
    assert [row[:3] for row in conditions] == [
        ["TYPE", "STATUS", "REASON"], ["Created", "True", "PyTorchJobCreated"],
        ["Running", "False", "PyTorchJobRunning"], ["Restarting", "True", "PyTorchJobRestarting"]]
    assert conditions[3][4:] == ("PyTorchJob llm-train is restarting because 1 Master replica(s) "
                                 "failed.").split()
    assert [row[:6] for row in _section(out, "Replicas:")] == [
        ["REPLICA", "POD", "PHASE", "STATUS", "RESTARTS", "NODE"],
        ["master-0", "llm-train-master-0", "Running", "Running", "3", "node-1"],
        ["worker-0", "llm-train-worker-0", "Pending", "Unschedulable", "0", "<none>"],
        ["worker-1", "llm-train-worker-1", "-", "not", "created", "-"]]
    assert _section(out, "Replicas:")[1][-1] == "16m"
    assert "  master-0: restarted 3 time(s); last exit code 137 (OOMKilled, Ns ago)\n" in out
    pending = out.split("Why pods are not running:\n", 1)[1]
    assert pending.startswith(
        "  worker-0 (llm-train-worker-0) is Pending:\n"
        "    Warning FailedScheduling Ns ago (x4): 0/3 nodes are available: 3 Insufficient "
        "nvidia.com/gpu.\n")
    assert "BackOff" not in out  # events of running pods are not "why it is pending"
    assert ("Job warnings:\n  Warning FailedCreatePod Ns ago: pods \"llm-train-worker-1\" is "
            "forbidden: exceeded quota\n") in out


def test_pending_without_events_falls_back_to_the_scheduling_condition(fake_kube, run_kctl):
    fake_kube.add_job("llm-train", workers=0)
    fake_kube.add_pod("llm-train", "master-0", phase="Pending")
    out = run_kctl("status", "llm-train").out
    assert ("  master-0 (llm-train-master-0) is Pending:\n    Unschedulable: 0/3 nodes are "
            "available: 3 Insufficient nvidia.com/gpu.\n") in out


def test_waiting_containers_show_their_reason(fake_kube, run_kctl):
    fake_kube.add_job("llm-train", workers=1, gpus=0)
    fake_kube.add_pod("llm-train", "master-0", waiting="CrashLoopBackOff", restarts=5)
    fake_kube.add_pod("llm-train", "worker-0", phase="Pending", waiting="ImagePullBackOff")
    out = run_kctl("status", "llm-train").out
    assert "Size:      2 node(s), CPU\n" in out
    rows = _section(out, "Replicas:")
    assert [row[3:5] for row in rows[1:]] == [["CrashLoopBackOff", "5"], ["ImagePullBackOff", "0"]]


def test_job_the_operator_has_not_seen(fake_kube, run_kctl):
    fake_kube.add_job("llm-train", conditions=())
    out = run_kctl("status", "llm-train").out
    assert ("State:     <none> (no conditions yet: the PyTorchJob operator has not seen this job"
            in out)
    assert "Conditions: <none>\n" in out


def test_missing_job(fake_kube, run_kctl):
    result = run_kctl("status", "nope", "-n", "team-a")
    assert (result.code, result.out) == (1, "")
    assert result.err == ('kctl: error: PyTorchJob "nope" not found in namespace "team-a" '
                          "(see: kctl list -n team-a)\n")


def test_missing_crd(fake_kube, run_kctl):
    fake_kube.crd_installed = False
    result = run_kctl("status", "llm-train")
    assert (result.code, result.err) == (1, f"kctl: error: {not_served(kubernetes_backends())}\n")


def test_forbidden_pods_list(fake_kube, run_kctl):
    fake_kube.add_job("llm-train")
    fake_kube.forbid("list", "pods")
    result = run_kctl("status", "llm-train")
    assert result.code == 1
    assert result.err == ('kctl: error: forbidden: you may not list pods in namespace "default" '
                          "(RBAC); ask a cluster admin for a Role that allows it (check: kubectl "
                          "auth can-i list pods -n default)\n")
