"""A real one-node Slurm cluster for the tests marked ``slurm`` (fixture ``slurm_cluster``).

The fixture runs ``.ci/slurm/start-local-slurm.sh`` once per session (Debian's slurmctld, slurmd
and munge as plain background daemons; the packages are installed when missing, which needs root
and the Debian archive) and at the end stops exactly the daemons that this start launched, nothing
that was already running. The node advertises 64 CPUs and 8 fake GPUs, so MMPretrain's defaults
(8 tasks x 5 CPUs, ``--gres=gpu:8``) can be scheduled on 2 real cores; the GPUs are dummy devices,
so the CPU torch build still trains on CPUs (gloo).

Where the cluster cannot be had, the tests are skipped with the reason, except in CI (``CI`` set
and not ``0``/``false``), where that is a failure.

Knobs: ``SLURM_LOCAL_DIR`` (state and logs, default ``/tmp/slurm-local``),
``SLURM_LOCAL_PARTITION`` (default ``debug``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / ".ci" / "slurm"
#: Job states after which nothing more happens to a job (``scontrol show job``'s JobState).
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
                "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slurm: runs jobs on a real one-node Slurm cluster (fixture slurm_cluster; "
        "started on demand, needs root; deselect with -m 'not slurm')")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(reason: str):
    if in_ci():
        pytest.fail(f"Slurm cluster needed in CI but unavailable: {reason}", pytrace=False)
    pytest.skip(f"no Slurm cluster: {reason}")


@dataclass
class SlurmCluster:
    """The running cluster.

    Attributes:
        partition: The partition every job goes to.
        cpus: CPUs the node advertises.
        gpus: Fake GPUs (gres ``gpu``) the node advertises.
        log_dir: slurmctld and slurmd logs.
    """

    partition: str
    cpus: int
    gpus: int
    log_dir: Path

    def sbatch(self, script: Path | str, *args: str) -> str:
        """Submit ``script`` (a file); return the job id."""
        proc = subprocess.run(["sbatch", "--parsable", *args, str(script)], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, f"sbatch failed: {proc.stderr.strip()}"
        return proc.stdout.strip().split(";")[0]

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job``'s fields (JobState, ExitCode, ...), or {} when unknown."""
        proc = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True,
                              text=True, timeout=60)
        if proc.returncode:
            return {}
        return dict(re.findall(r"(\w+)=(\S*)", proc.stdout))

    def wait(self, job_id: str, timeout: float = 600, until=lambda job: False) -> dict[str, str]:
        """Poll until the job reaches a final state (or ``until(job)`` holds); return its fields.

        On timeout the job is cancelled and the test fails with its state.
        """
        deadline = time.monotonic() + timeout
        job: dict[str, str] = {}
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job.get("JobState") in FINAL_STATES or until(job):
                return job
            time.sleep(0.2)
        self.cancel(job_id)
        pytest.fail(f"job {job_id} not done after {timeout:.0f}s: {job.get('JobState')} "
                    f"{job.get('Reason')}")

    def cancel(self, job_id: str) -> None:
        subprocess.run(["scancel", job_id], capture_output=True, timeout=60)

    def start_requeued(self, job_id: str, timeout: float = 120) -> None:
        """Start a requeued (PENDING) job now instead of after its begin time, about 2 minutes
        away, once the previous run has left: no process of the job is left on this machine (its
        tasks may still be saving a checkpoint within KillWait), and a second has passed (slurmd
        refuses a start in the second it revoked the previous run's credential)."""
        deadline = time.monotonic() + timeout
        while job_processes(job_id):
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id}'s processes still run after {timeout:.0f}s")
            time.sleep(0.2)
        time.sleep(2)
        subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True,
                       capture_output=True, timeout=60)


def job_processes(job_id: str) -> list[int]:
    """Processes on this machine that belong to Slurm job ``job_id`` (``SLURM_JOB_ID`` in their
    environment): its batch script, srun and tasks."""
    mark = f"SLURM_JOB_ID={job_id}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if mark in environ and state != "Z":
            found.append(int(entry))
    return found


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """Start the local Slurm cluster (or use the one running); stop what was started at the end."""
    if not sys.platform.startswith("linux"):
        _unavailable("needs Linux")
    if os.geteuid() != 0:
        _unavailable("starting slurmctld/slurmd (and installing them) needs root")
    if not shutil.which("dpkg-query") or not shutil.which("apt-get"):
        _unavailable("needs a Debian-style system (dpkg, apt-get) for slurmctld, slurmd, munge")
    partition = os.environ.get("SLURM_LOCAL_PARTITION", "debug")
    cpus, gpus = 64, 8
    started_file = tmp_path_factory.mktemp("slurm-local") / "started"
    env = {**os.environ, "SLURM_LOCAL_PARTITION": partition, "SLURM_LOCAL_CPUS": str(cpus),
           "SLURM_LOCAL_GPUS": str(gpus), "SLURM_LOCAL_STARTED": str(started_file)}
    started: list[str] = []
    try:
        try:
            proc = subprocess.run(["bash", str(SCRIPTS / "start-local-slurm.sh")], env=env,
                                  capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            _unavailable("start-local-slurm.sh did not finish within 900s")
        finally:
            if started_file.exists():
                started = started_file.read_text().split()
        if proc.returncode:
            tail = " | ".join(proc.stderr.strip().splitlines()[-5:])
            _unavailable(f"start-local-slurm.sh failed (exit {proc.returncode}): {tail}")
        log_dir = Path(os.environ.get("SLURM_LOCAL_DIR", "/tmp/slurm-local")) / "log"
        yield SlurmCluster(partition=partition, cpus=cpus, gpus=gpus, log_dir=log_dir)
    finally:
        if started:
            subprocess.run(["bash", str(SCRIPTS / "stop-local-slurm.sh"), *started], env=env,
                           capture_output=True, timeout=300)
