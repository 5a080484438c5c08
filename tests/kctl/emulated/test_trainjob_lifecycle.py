"""The TrainJob emulator's pods with tiny Python commands (no training): the PET_ variables each
node gets, restarts within the node Job's backoffLimit, a Job that exhausts it, a deleted pod's
replacement, success only when every node has exited 0; no process left behind (the ``emulate``
fixture checks)."""

from __future__ import annotations

import re
import textwrap

import pytest

from tests.kctl.emulated.conftest import run_command_line, training_runtime, trainjob
from tests.support.pod_runner import Condition

PRELUDE = ("import os, sys, time; SCRATCH, SHARED = sys.argv[1:3]; "
           "NODE = int(os.environ['PET_NODE_RANK'])\n")
SUFFIX = "[bcdfghjklmnpqrstvwxz2456789]{5}"
IDLE_JOB = {"name": "node", "active": 0, "ready": 0, "succeeded": 0, "failed": 0, "suspended": 0}

# Says whether its pod's emptyDir holds the mark of an earlier run, then marks it; node 1's first
# run in the job (a mark on the claim) then hangs, to be killed or deleted.
NODE_1_HANGS_ONCE = """
print('scratch kept:', os.path.exists(SCRATCH + '/ran'), flush=True)
open(SCRATCH + '/ran', 'w').close()
if NODE == 1 and not os.path.exists(SHARED + '/hung'):
    open(SHARED + '/hung', 'w').close()
    time.sleep(600)
"""


def job(script: str, runtime: dict | None = None, nodes: int = 2) -> list[dict]:
    """A TrainJob of ``nodes`` nodes whose containers run ``python -c SCRIPT /scratch /shared``:
    an emptyDir at /scratch, the claim ``shared`` at /shared (paths inside the script are not
    mapped, its arguments are); against ``runtime`` (given with the manifest) or
    torch-distributed."""
    objects = [trainjob("t", runtime=runtime["metadata"]["name"] if runtime else
                        "torch-distributed", numNodes=nodes, numProcPerNode=1, image="python",
                        command=["python", "-c", PRELUDE + textwrap.dedent(script)],
                        args=["/scratch", "/shared"],
                        pod_spec={"volumes": [
                            {"name": "scratch", "emptyDir": {}},
                            {"name": "shared", "persistentVolumeClaim": {"claimName": "shared"}}]},
                        mounts=[{"name": "scratch", "mountPath": "/scratch"},
                                {"name": "shared", "mountPath": "/shared"}])]
    return objects + ([runtime] if runtime else [])


def test_each_node_gets_its_rank_and_the_job_completes_when_every_node_has(emulate, tmp_path):
    script = """
    names = ('PET_NNODES', 'PET_NPROC_PER_NODE', 'PET_NODE_RANK', 'PET_MASTER_ADDR',
             'PET_MASTER_PORT', 'JOB_COMPLETION_INDEX', 'HOSTNAME')
    print(' '.join(f'{name}={os.environ[name]}' for name in names), flush=True)
    while NODE == 1 and not os.path.exists(SHARED + '/go'):
        time.sleep(0.05)
    """
    emulator = emulate(job(script), restart_delay=0.1)
    emulator.start()
    emulator.wait_until(lambda: emulator.nodes[0].phase == "Succeeded"
                        and emulator.logs(1), timeout=30)
    for _ in range(3):  # node 0 is done, node 1 is not: the job runs on
        assert emulator.poll() == "Running"
    assert emulator.conditions == []  # a TrainJob has no Running condition
    assert emulator.jobs_status == [{**IDLE_JOB, "active": 1, "ready": 1}]
    (tmp_path / "pvc" / "shared" / "go").touch()
    assert emulator.wait(timeout=30) == "Complete"
    assert emulator.conditions == [Condition("Complete", "AllJobsCompleted",
                                             "jobset completed successfully")]
    assert emulator.jobs_status == [{**IDLE_JOB, "succeeded": 1}]
    for index in range(2):
        assert re.fullmatch(rf"t-node-0-{index}-{SUFFIX}", emulator.pod_name(index))
        assert emulator.logs(index) == (
            f"PET_NNODES=2 PET_NPROC_PER_NODE=1 PET_NODE_RANK={index} PET_MASTER_ADDR=127.0.0.1 "
            f"PET_MASTER_PORT={emulator.local_port} JOB_COMPLETION_INDEX={index} "
            f"HOSTNAME=t-node-0-{index}\n")
        assert (emulator.nodes[index].restarts, emulator.nodes[index].exit_codes) == (0, [0])


def test_a_killed_node_restarts_in_its_pod_within_the_backoff_limit(emulate, tmp_path):
    emulator = emulate(job(NODE_1_HANGS_ONCE, training_runtime("small", backoff_limit=2)),
                       restart_delay=0.1)
    emulator.start()
    emulator.wait_until((tmp_path / "pvc" / "shared" / "hung").exists, timeout=30)
    pod = emulator.pod_name(1)
    emulator.kill(pod)  # by pod name; kill(1) names node 1's current pod
    assert emulator.wait(timeout=30) == "Complete"
    # the kubelet restarted the container in the same pod: its emptyDir was kept
    assert emulator.pod_name(1) == pod and len(emulator.pods) == 2
    assert (emulator.nodes[1].restarts, emulator.nodes[1].exit_codes) == (1, [137, 0])
    assert emulator.logs(1, previous=True) == "scratch kept: False\n"
    assert emulator.logs(1) == "scratch kept: True\n"
    assert emulator.failed == 0


def test_exhausting_the_backoff_limit_fails_the_job_and_stops_the_other_node(emulate):
    script = """
    if NODE == 1:
        while not os.path.exists(SHARED + '/started'):
            time.sleep(0.05)
        sys.exit(3)
    import subprocess  # a child in a session of its own, as torchrun starts its workers
    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'],
                     start_new_session=True)
    open(SHARED + '/started', 'w').close()
    time.sleep(600)
    """
    emulator = emulate(job(script, training_runtime("small", backoff_limit=2)),
                       restart_delay=0.1, grace_period=1)
    emulator.start()
    assert emulator.wait(timeout=60) == "Failed"
    assert emulator.leftover_processes() == []  # node 0's processes, its child's too
    assert emulator.conditions == [Condition(
        "Failed", "FailedJobs",
        "jobset failed due to one or more job failures (first failed job: t-node-0)")]
    assert emulator.job_condition.reason == "BackoffLimitExceeded"
    assert emulator.jobs_status == [{**IDLE_JOB, "failed": 1}]
    assert (emulator.nodes[1].restarts, emulator.nodes[1].exit_codes) == (2, [3, 3])
    assert emulator.nodes[0].exit_codes == [143]  # deleted: SIGTERM ended it
    assert [pod.phase for pod in emulator.nodes] == ["Failed", "Failed"]
    # the Job deleted its active pods: node 1's too, which was waiting to restart
    assert [pod.deleting for pod in emulator.nodes] == [True, True]


def test_the_restarts_of_every_pod_count_towards_the_backoff_limit(emulate):
    script = """
    if not os.path.exists(SCRATCH + '/failed'):  # each pod's first run fails, later ones hang
        open(SCRATCH + '/failed', 'w').close()
        sys.exit(4)
    time.sleep(600)
    """
    emulator = emulate(job(script, training_runtime("small", backoff_limit=2)),
                       restart_delay=0.1, grace_period=1)
    emulator.start()
    assert emulator.wait(timeout=60) == "Failed"
    assert [(pod.restarts, pod.exit_codes[0]) for pod in emulator.nodes] == [(1, 4), (1, 4)]
    assert emulator.job_condition.reason == "BackoffLimitExceeded"


def test_a_deleted_pod_is_replaced_by_a_new_pod(emulate, tmp_path):
    emulator = emulate(job(NODE_1_HANGS_ONCE), restart_delay=0.2, grace_period=1)
    emulator.start()
    emulator.wait_until((tmp_path / "pvc" / "shared" / "hung").exists, timeout=30)
    old = emulator.nodes[1]
    emulator.delete_pod(1)
    assert emulator.wait(timeout=30) == "Complete"
    new = emulator.nodes[1]
    assert new.name != old.name and re.fullmatch(rf"t-node-0-1-{SUFFIX}", new.name)
    assert new.hostname == old.hostname == "t-node-0-1"
    assert (old.phase, old.exit_codes, old.restarts) == ("Failed", [143], 0)
    assert (new.phase, new.exit_codes, new.restarts) == ("Succeeded", [0], 0)
    assert emulator.logs(1) == "scratch kept: False\n"  # a new pod: a new emptyDir
    assert emulator.node_logs(1) == "scratch kept: False\n" * 2
    assert emulator.failed == 1  # the Job counts a deleted pod as failed
    assert len(emulator.pods) == 3


@pytest.mark.parametrize("backoff_limit,phase", [(1, "Complete"), (0, "Failed")])
def test_never_replaces_a_failed_pod_within_the_backoff_limit(emulate, backoff_limit, phase):
    script = """
    if NODE == 1 and not os.path.exists(SHARED + '/failed'):
        open(SHARED + '/failed', 'w').close()
        sys.exit(2)
    """
    runtime = training_runtime("never", backoff_limit=backoff_limit, restart_policy="Never")
    emulator = emulate(job(script, runtime), restart_delay=0.1)
    emulator.start()
    assert emulator.wait(timeout=30) == phase
    assert emulator.failed == 1
    assert len(emulator.pods) == (3 if phase == "Complete" else 2)
    assert [pod.restarts for pod in emulator.pods.values()] == [0] * len(emulator.pods)


def test_command_line_runs_a_trainjob_from_stdin(tmp_path):
    (tmp_path / "pvc" / "shared").mkdir(parents=True)
    out = run_command_line(job("print('hello from', os.environ['HOSTNAME'])"),
                           "--pvc-root", str(tmp_path / "pvc"), "--workspace", str(tmp_path / "ws"),
                           "--timeout", "60")
    assert out.returncode == 0, out.stderr
    assert "TrainJob t: Complete" in out.stdout
    logs = {path.name: path.read_text() for path in (tmp_path / "ws" / "logs").iterdir()}
    assert sorted(logs.values()) == ["hello from t-node-0-0\n", "hello from t-node-0-1\n"]
    assert all(re.fullmatch(rf"t-node-0-[01]-{SUFFIX}\.log", name) for name in logs)
