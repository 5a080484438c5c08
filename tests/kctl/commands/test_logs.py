"""kctl logs against the fake API server."""

import pytest

from tests.support.fake_apiserver import KctlProcess


def _job(fake_kube, **pods):
    fake_kube.add_job("llm", workers=2, conditions=[("Created", "True"), ("Running", "True")])
    fake_kube.add_pod("llm", "master-0", restarts=2, last_exit=(137, "OOMKilled"),
                      previous_logs="loading\nKilled\n", logs="resumed from epoch_3.pth\nepoch 4\n")
    fake_kube.add_pod("llm", "worker-0", logs="trainer: rank=1\n")
    fake_kube.add_pod("llm", "worker-1", phase="Pending")


def test_every_replica_prefixed_previous_container_first(fake_kube, run_kctl):
    _job(fake_kube)
    result = run_kctl("logs", "llm")
    assert result.code == 0, result.err
    assert result.out.splitlines() == ["[master-0 previous] loading",
                                       "[master-0 previous] Killed",
                                       "[master-0] resumed from epoch_3.pth",
                                       "[master-0] epoch 4",
                                       "[worker-0] trainer: rank=1"]
    assert result.err.splitlines() == [
        "kctl: [master-0] restarted 2 time(s), last exit code 137 (OOMKilled): the previous "
        "container's log comes first, as [master-0 previous]",
        "kctl: [worker-1] pod llm-worker-1 is Pending (Unschedulable): no logs yet (see: kctl "
        "status llm -n default)"]
    previous = [r.query for r in fake_kube.requests if r.query.get("previous") == "true"]
    assert [q["container"] for q in previous] == ["pytorch"]


def test_one_replica(fake_kube, run_kctl):
    _job(fake_kube)
    result = run_kctl("logs", "llm", "--replica", "worker-0")
    assert (result.code, result.out, result.err) == (0, "[worker-0] trainer: rank=1\n", "")


def test_crash_looping_container_shows_the_crashed_log(fake_kube, run_kctl):
    fake_kube.add_job("llm", workers=0)
    fake_kube.add_pod("llm", "master-0", waiting="CrashLoopBackOff", restarts=4,
                      previous_logs="Traceback (most recent call last):\nValueError: bad\n")
    result = run_kctl("logs", "llm")
    assert result.out.splitlines() == ["[master-0 previous] Traceback (most recent call last):",
                                       "[master-0 previous] ValueError: bad"]


@pytest.mark.parametrize("replica, message", [
    ("worker-5", "kctl: error: --replica worker-5: job llm has master-0, worker-0, worker-1 "
                 "(or all)"),
    ("chief", "kctl logs: error: argument --replica: expected master-0, worker-N, node-N or all, "
              "got 'chief'"),
])
def test_unknown_replica_is_a_usage_error(fake_kube, run_kctl, replica, message):
    _job(fake_kube)
    result = run_kctl("logs", "llm", "--replica", replica)
    assert (result.code, result.err) == (2, message + "\n")


def test_missing_job_and_forbidden_logs(fake_kube, run_kctl):
    result = run_kctl("logs", "nope")
    assert (result.code, result.err) == (1, 'kctl: error: PyTorchJob "nope" not found in '
                                            'namespace "default" (see: kctl list -n default)\n')
    _job(fake_kube)
    fake_kube.forbid("get", "pods/log")
    result = run_kctl("logs", "llm")
    assert result.code == 1
    assert result.err.splitlines()[-1] == (
        'kctl: error: forbidden: you may not get pods/log "llm-master-0" in namespace "default" '
        "(RBAC); ask a cluster admin for a Role that allows it (check: kubectl auth can-i get "
        "pods/log -n default)")


def test_follow_streams_restarts_and_recreated_pods_until_the_job_ends(fake_kube):
    _job(fake_kube)
    follow = KctlProcess("logs", "llm", "-f")
    try:
        follow.wait_for_line("[master-0] epoch 4")
        follow.wait_for_line("[worker-0] trainer: rank=1")
        fake_kube.append_log("llm-master-0", "epoch 5")
        follow.wait_for_line("[master-0] epoch 5")
        fake_kube.restart_container("llm-master-0", logs="resumed from epoch_5.pth")
        follow.wait_for_line("[master-0] resumed from epoch_5.pth")
        fake_kube.replace_pod("llm", "worker-0", logs="new worker-0 pod")
        follow.wait_for_line("[worker-0] new worker-0 pod")
        fake_kube.replace_pod("llm", "worker-1", logs="worker-1 scheduled at last")
        follow.wait_for_line("[worker-1] worker-1 scheduled at last")
        fake_kube.drop_log_streams("llm-worker-1")  # resumed without repeating lines
        fake_kube.append_log("llm-worker-1", "after the reconnect")
        follow.wait_for_line("[worker-1] after the reconnect")

        fake_kube.append_log("llm-master-0", "done")
        fake_kube.set_conditions("llm", [("Created", "True"), ("Running", "False"),
                                         ("Succeeded", "True")])
        for pod in ("llm-master-0", "llm-worker-0", "llm-worker-1"):
            fake_kube.finish_pod(pod)
        result = follow.wait()
    finally:
        follow.kill()
    assert result.code == 0, result.err
    master = [line for line in result.out.splitlines() if line.startswith("[master-0")]
    assert master == ["[master-0 previous] loading", "[master-0 previous] Killed",
                      "[master-0] resumed from epoch_3.pth", "[master-0] epoch 4",
                      "[master-0] epoch 5", "[master-0] resumed from epoch_5.pth",
                      "[master-0] done"]
    assert [line for line in result.out.splitlines() if line.startswith("[worker-1")] == [
        "[worker-1] worker-1 scheduled at last", "[worker-1] after the reconnect"]
    assert "kctl: [worker-1] waiting: pod llm-worker-1 is Pending (Unschedulable)" in result.err
    assert "kctl: [master-0] container restarted (restart 3); following the new one" in result.err
    assert "kctl: [worker-0] pod llm-worker-0 was re-created; following the new pod" in result.err


def test_follow_ends_when_the_job_is_deleted(fake_kube, run_kctl):
    fake_kube.add_job("llm", workers=0, conditions=[("Created", "True"), ("Running", "True")])
    fake_kube.add_pod("llm", "master-0", logs="step 1")
    follow = KctlProcess("logs", "llm", "-f")
    try:
        follow.wait_for_line("[master-0] step 1")
        assert run_kctl("delete", "llm").code == 0
        result = follow.wait()
    finally:
        follow.kill()
    assert (result.code, result.out) == (0, "[master-0] step 1\n")
    assert result.err == "kctl: [master-0] job llm was deleted\n"
