"""The operator emulator's pod life cycle with tiny Python commands (no training): restart policies,
backoffLimit, success rule, kills, deletions, no process left behind."""

from __future__ import annotations

import textwrap
import time

import pytest

from tests.kctl.emulated.conftest import run_command_line
from tests.support.operator_emulator import EmulatorTimeout


def job(master: str, worker: str | None = None, policy: str = "OnFailure",
        backoff_limit: int | None = None) -> list[dict]:
    """A PyTorchJob whose containers run ``python -c SCRIPT /scratch /shared``: an emptyDir at
    /scratch and the claim ``shared`` at /shared (paths inside the script are not mapped, its
    arguments are)."""
    def replica(script):
        return {"replicas": 1, "restartPolicy": policy, "template": {"spec": {
            "containers": [{"name": "pytorch", "image": "python",
                            "command": ["python", "-c", PRELUDE + textwrap.dedent(script)],
                            "args": ["/scratch", "/shared"],
                            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"},
                                             {"name": "shared", "mountPath": "/shared"}]}],
            "volumes": [{"name": "scratch", "emptyDir": {}},
                        {"name": "shared", "persistentVolumeClaim": {"claimName": "shared"}}]}}}
    specs = {"Master": replica(master)}
    if worker is not None:
        specs["Worker"] = replica(worker)
    run_policy = {} if backoff_limit is None else {"backoffLimit": backoff_limit}
    return [{"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "t"},
             "spec": {"nprocPerNode": "1", "runPolicy": run_policy,
                      "pytorchReplicaSpecs": specs}}]


PRELUDE = "import os, sys; SCRATCH, SHARED = sys.argv[1:3]\n"

# Fails with exit code CODE on its first run in a pod; the marker lives in the pod's emptyDir.
FAIL_ONCE_PER_POD = """
import os, sys
if os.path.exists(SCRATCH + '/ran'):
    print('second run'); sys.exit(0)
open(SCRATCH + '/ran', 'w').close()
sys.exit({code})
"""


def test_on_failure_restarts_in_the_same_pod(emulate):
    emulator = emulate(job(FAIL_ONCE_PER_POD.format(code=3)), restart_delay=0.1)
    emulator.start()
    assert emulator.wait(timeout=30) == "Succeeded"
    master = emulator.pods["t-master-0"]
    assert (master.restarts, master.recreations, master.exit_codes) == (1, 0, [3, 0])
    assert "Restarting" in [c.type for c in emulator.conditions]
    assert emulator.logs("t-master-0") == "second run\n"  # kubectl logs: the current container
    assert emulator.logs("t-master-0", previous=True) == ""


def test_exit_code_policy_recreates_the_pod_on_signals_only(emulate):
    # killed by SIGKILL (137, retryable): the operator creates a new pod, with a fresh emptyDir
    script = """
    import os, signal
    if os.path.exists(SHARED + '/killed'):
        print('scratch kept:', os.path.exists(SCRATCH + '/ran'))
    else:
        open(SCRATCH + '/ran', 'w').close(); open(SHARED + '/killed', 'w').close()
        os.kill(os.getpid(), signal.SIGKILL)
    """
    emulator = emulate(job(script, policy="ExitCode"))
    emulator.start()
    assert emulator.wait(timeout=30) == "Succeeded"
    master = emulator.pods["t-master-0"]
    assert (master.restarts, master.recreations, master.exit_codes) == (0, 1, [137, 0])
    assert emulator.logs("t-master-0") == "scratch kept: False\n"

    # exit code 1-127: permanent, the job fails
    failing = emulate(job(FAIL_ONCE_PER_POD.format(code=3), policy="ExitCode"))
    failing.start()
    assert failing.wait(timeout=30) == "Failed"
    assert failing.conditions[-1].reason == "MasterFailed"
    assert failing.pods["t-master-0"].exit_codes == [3]


def test_never_fails_the_job_at_the_first_failure(emulate):
    emulator = emulate(job(FAIL_ONCE_PER_POD.format(code=3), policy="Never"))
    emulator.start()
    assert emulator.wait(timeout=30) == "Failed"
    assert emulator.pods["t-master-0"].restarts == 0
    assert emulator.pods["t-master-0"].phase == "Failed"


def test_backoff_limit_counts_restarts(emulate):
    emulator = emulate(job("import sys; sys.exit(1)", backoff_limit=2), restart_delay=0.1)
    emulator.start()
    assert emulator.wait(timeout=30) == "Failed"
    assert emulator.conditions[-1].reason == "BackoffLimitExceeded"
    master = emulator.pods["t-master-0"]
    assert master.restarts == 2 and master.exit_codes == [1, 1]


def test_master_success_is_job_success_and_workers_are_stopped(emulate):
    emulator = emulate(job("print('done')", "import time; time.sleep(600)"), grace_period=1)
    emulator.start()
    assert emulator.wait(timeout=30) == "Succeeded"
    assert emulator.pods["t-master-0"].phase == "Succeeded"
    assert emulator.pods["t-worker-0"].exit_codes == [137]  # killed after the grace period


# Starts a grandchild in a session of its own (as torchrun does with its workers), then waits.
ESCAPING_CHILD = """
import subprocess, sys, time
subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True)
print('started', flush=True)
{then}
"""


def test_kill_takes_every_process_of_the_container(emulate):
    emulator = emulate(job(ESCAPING_CHILD.format(then="time.sleep(600)")))
    emulator.start()
    emulator.wait_until(lambda: "started" in emulator.logs("t-master-0"), timeout=30)
    assert len(emulator.leftover_processes()) >= 3  # init, the command, its escaped child
    emulator.kill("t-master-0")
    assert emulator.leftover_processes() == []
    emulator.poll()
    master = emulator.pods["t-master-0"]
    assert master.exit_codes == [137] and master.restarts == 1  # OnFailure: restarted at once
    emulator.wait_until(lambda: emulator.logs("t-master-0").count("started") == 1 and
                        len(master.starts) == 2, timeout=30)


def test_a_container_ends_with_its_main_process(emulate):
    emulator = emulate(job(ESCAPING_CHILD.format(then="")))
    emulator.start()
    assert emulator.wait(timeout=30) == "Succeeded"
    assert emulator.leftover_processes() == []  # the escaped child went with the container


def test_delete_pod_is_recreated_without_counting_a_failure(emulate, tmp_path):
    script = """
    import os, time
    print('scratch kept:', os.path.exists(SCRATCH + '/ran'), flush=True)
    open(SCRATCH + '/ran', 'w').close()
    if not os.path.exists(SHARED + '/deleted'):
        open(SHARED + '/deleted', 'w').close(); time.sleep(600)
    """
    emulator = emulate(job(script, backoff_limit=0), grace_period=1)
    emulator.start()
    # the mark on the claim: its print and its mark in the emptyDir are done
    emulator.wait_until((tmp_path / "pvc" / "shared" / "deleted").exists, timeout=30)
    emulator.delete_pod("t-master-0")
    assert emulator.wait(timeout=30) == "Succeeded"
    master = emulator.pods["t-master-0"]
    assert (master.restarts, master.recreations) == (0, 1)
    assert emulator.logs("t-master-0") == "scratch kept: False\n"


def test_timeout_kills_everything(emulate):
    emulator = emulate(job("import time; time.sleep(600)", "import time; time.sleep(600)"))
    emulator.start()
    started = time.monotonic()
    with pytest.raises(EmulatorTimeout, match="t-worker-0"):
        emulator.wait(timeout=1)
    assert time.monotonic() - started < 15
    assert emulator.leftover_processes() == []


def test_command_line_runs_a_manifest_from_stdin(tmp_path):
    objects = job("print('hello from', os.environ['HOSTNAME'])")
    (tmp_path / "pvc" / "shared").mkdir(parents=True)
    out = run_command_line(objects, "--pvc-root", str(tmp_path / "pvc"),
                           "--workspace", str(tmp_path / "ws"), "--timeout", "60")
    assert out.returncode == 0, out.stderr
    assert "PyTorchJob t: Succeeded" in out.stdout
    assert (tmp_path / "ws" / "logs" / "t-master-0.log").read_text() == "hello from t-master-0\n"

    out = run_command_line(objects, "--workspace", str(tmp_path / "ws2"))
    assert out.returncode == 1
    assert out.stderr.startswith("operator_emulator: error: t-master-0: PersistentVolumeClaim "
                                 "'shared' is neither in the manifest")
