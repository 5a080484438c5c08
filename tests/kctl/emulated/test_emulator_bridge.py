"""The emulator bridge (:mod:`tests.support.emulator_bridge`) with tiny Python commands (no
training): an emulated TrainJob's and PyTorchJob's pods, restarts, deleted and replaced pods, logs
and status, as the real ``kctl status``, ``logs`` and ``logs -f`` read them from the fake API
server."""

from __future__ import annotations

import re

from tests.kctl.emulated.test_emulator_lifecycle import job as pytorchjob_of
from tests.kctl.emulated.test_trainjob_lifecycle import SUFFIX, job as trainjob_of
from tests.support.emulator_bridge import EmulatorBridge
from tests.support.fake_apiserver import JOBSET_LABEL, KctlProcess

# Each run of a node prints "node N run K" (K counted on the claim), then: node 1's first run
# hangs until it is killed; its second, once deleted, says so and stops only when told to;
# everything else waits for "done".
NODE_RUNS = """
import signal
runs = len([f for f in os.listdir(SHARED) if f.startswith(f'run-{NODE}-')])
open(f'{SHARED}/run-{NODE}-{runs}', 'w').close()
print(f'node {NODE} run {runs}', flush=True)
if NODE == 1 and runs == 0:
    time.sleep(600)
if NODE == 1 and runs == 1:
    def stop(*_):
        print('node 1 stopping', flush=True)
        while not os.path.exists(SHARED + '/stop'):
            time.sleep(0.05)
        sys.exit(143)
    signal.signal(signal.SIGTERM, stop)
while not os.path.exists(SHARED + '/done'):
    time.sleep(0.05)
"""


def followed_lines(out: str, replica: str) -> list[str]:
    """What ``kctl logs -f`` printed for ``replica``, its prefix removed."""
    prefix = f"[{replica}] "
    return [line[len(prefix):] for line in out.splitlines() if line.startswith(prefix)]


def container(pod: dict) -> dict:
    return pod["status"]["containerStatuses"][0]


def test_a_trainjob_restarted_deleted_and_replaced_as_kctl_sees_it(emulate, fake_kube, run_kctl,
                                                                   tmp_path):
    shared = tmp_path / "pvc" / "shared"
    emulator = emulate(trainjob_of(NODE_RUNS), restart_delay=0.2, grace_period=30)
    bridge = EmulatorBridge(fake_kube, emulator)
    assert fake_kube.get("trainjobs", "t")["spec"]["trainer"]["numNodes"] == 2  # admitted
    emulator.start()
    follow = KctlProcess("logs", "t", "-f")
    try:
        bridge.wait_until(lambda: emulator.logs(1) == "node 1 run 0\n", timeout=30)
        first = emulator.pod_name(1)
        pod = fake_kube.get("pods", first)
        assert (pod["metadata"]["labels"][JOBSET_LABEL], pod["status"]["phase"],
                container(pod)["restartCount"]) == ("t", "Running", 0)
        assert fake_kube.get("trainjobs", "t")["status"]["jobsStatus"][0]["active"] == 1
        follow.wait_for_line("[node-1] node 1 run 0")  # following node 1's first container

        emulator.kill(1)  # the kubelet restarts the container in the same pod
        bridge.wait_until(lambda: emulator.logs(1) == "node 1 run 1\n", timeout=30)
        pod = fake_kube.get("pods", first)
        assert container(pod)["restartCount"] == 1
        assert container(pod)["lastState"]["terminated"]["exitCode"] == 137

        emulator.delete_pod(1)  # SIGTERM: it says so and stops when told
        bridge.wait_until(lambda: "node 1 stopping" in emulator.logs(1), timeout=30)
        assert fake_kube.get("pods", first)["metadata"]["deletionTimestamp"]
        status = run_kctl("status", "t").out
        assert re.search(rf"node-1 +{first} +Running +Terminating +1 ", status), status

        (shared / "stop").touch()  # it exits; the Job replaces it with a new pod
        bridge.wait_until(lambda: emulator.logs(1) == "node 1 run 2\n", timeout=30)
        second = emulator.pod_name(1)
        assert fake_kube.get("pods", first) is None
        assert fake_kube.replica_pod("t", "node-1")["metadata"]["name"] == second != first

        (shared / "done").touch()
        assert bridge.wait(timeout=30) == "Complete"
        followed = follow.wait(timeout=30)  # ends with the job
    finally:
        follow.kill()
    assert followed.code == 0, followed.err
    assert followed_lines(followed.out, "node-0") == ["node 0 run 0"]
    assert followed_lines(followed.out, "node-1") == [
        "node 1 run 0", "node 1 run 1", "node 1 stopping", "node 1 run 2"]
    assert "kctl: [node-1] container restarted (restart 1); following the new one" in followed.err
    assert f"kctl: [node-1] pod {second} was re-created; following the new pod" in followed.err

    job = fake_kube.get("trainjobs", "t")
    assert [(c["type"], c["reason"]) for c in job["status"]["conditions"]] == [
        ("Complete", "AllJobsCompleted")]
    assert job["status"]["jobsStatus"][0]["succeeded"] == 1
    assert [(p["metadata"]["name"], p["status"]["phase"], container(p)["restartCount"])
            for p in fake_kube.list("pods")] == sorted(
        [(emulator.pod_name(0), "Succeeded", 0), (second, "Succeeded", 0)])
    assert "State:     Succeeded" in run_kctl("status", "t").out
    assert run_kctl("logs", "t").out == "[node-0] node 0 run 0\n[node-1] node 1 run 2\n"
    assert re.fullmatch(rf"t-node-0-1-{SUFFIX}", second)


# Each run of a PyTorchJob's replica prints "ROLE run K" (K counted on the claim) and waits for
# "done".
ROLE_RUNS = """
import time
runs = len([f for f in os.listdir(SHARED) if f.startswith('{role}-')])
open(f'{{SHARED}}/{role}-{{runs}}', 'w').close()
print(f'{role} run {{runs}}', flush=True)
while not os.path.exists(SHARED + '/done'):
    time.sleep(0.05)
"""


def test_a_pytorchjob_restarted_and_recreated_as_kctl_sees_it(emulate, fake_kube, tmp_path):
    emulator = emulate(pytorchjob_of(ROLE_RUNS.format(role="master"),
                                     ROLE_RUNS.format(role="worker")),
                       restart_delay=0.2, grace_period=1)
    bridge = EmulatorBridge(fake_kube, emulator)
    emulator.start()
    follow = KctlProcess("logs", "t", "-f")
    try:
        bridge.wait_until(lambda: "run 0" in emulator.logs("t-worker-0")
                          and "run 0" in emulator.logs("t-master-0"), timeout=30)
        uid = fake_kube.get("pods", "t-master-0")["metadata"]["uid"]
        follow.wait_for_line("[worker-0] worker run 0")
        follow.wait_for_line("[master-0] master run 0")
        emulator.kill("t-worker-0")  # restarted in its pod
        emulator.delete_pod("t-master-0")  # created again under its name
        bridge.wait_until(lambda: emulator.logs("t-worker-0") == "worker run 1\n"
                          and emulator.logs("t-master-0") == "master run 1\n", timeout=30)
        master, worker = fake_kube.get("pods", "t-master-0"), fake_kube.get("pods", "t-worker-0")
        assert master["metadata"]["uid"] != uid and container(master)["restartCount"] == 0
        assert container(worker)["restartCount"] == 1
        assert container(worker)["lastState"]["terminated"]["exitCode"] == 137
        (tmp_path / "pvc" / "shared" / "done").touch()
        assert bridge.wait(timeout=30) == "Succeeded"
        followed = follow.wait(timeout=30)
    finally:
        follow.kill()
    assert followed.code == 0, followed.err
    assert followed_lines(followed.out, "master-0") == ["master run 0", "master run 1"]
    assert followed_lines(followed.out, "worker-0") == ["worker run 0", "worker run 1"]
    assert "kctl: [master-0] pod t-master-0 was re-created; following the new pod" in followed.err
    conditions = fake_kube.get("pytorchjobs", "t")["status"]["conditions"]
    assert [(c["type"], c["status"]) for c in conditions][-1] == ("Succeeded", "True")
    assert ("Running", "True") not in [(c["type"], c["status"]) for c in conditions]
