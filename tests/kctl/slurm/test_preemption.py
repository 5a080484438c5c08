"""Preemption on a real Slurm cluster: a ``kctl slurm-script --requeue`` job stopped by SIGTERM
mid-training comes back and resumes from the iteration it stopped at.

The job is :mod:`tests.support.tiny_job`'s, 2 CPU tasks. Two ways SIGTERM reaches it:

- ``scancel --signal=TERM JOBID``: what ``#SBATCH --signal=TERM@120`` does before a time limit
  (the job steps only). The trainer saves and exits 143; the script requeues the job itself.
- ``scontrol requeue JOBID``: what Slurm does to a job preempted with ``PreemptMode=REQUEUE``.
  Slurm sends SIGTERM to the steps and the script, SIGKILL KillWait seconds later (5 on the test
  cluster), and requeues the job; the trainer must save within KillWait.

A requeued job waits about two minutes before Slurm starts it again (its begin time); the tests
start it as soon as the previous run has left (``SlurmCluster.start_requeued``). Both runs write
to the same log (``--open-mode=append``), where the trainer's ``preempted at`` and ``resumed
from`` lines must name the same iteration; the job then trains exactly the configured epochs, and
ends with the weights of the uninterrupted run. In the first test the tasks share no work_dir, as
nodes without shared storage: only rank 0 reads the checkpoint it resumes from.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.tiny_job import (TIMEOUT, assert_finished_exactly, assert_same_answer,
                                    pick_fault, preempted_points, rank_private_python,
                                    resumed_points, slurm_script, wait_for_iteration)

pytestmark = pytest.mark.slurm

REQUEUED_LINE = "the trainer saved a checkpoint and stopped (exit 143): requeued"


def read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def start_requeueable_job(cluster, work: Path, fault: str, **options) -> tuple[str, Path, int]:
    """Submit the job with ``--requeue`` (``options`` for :func:`slurm_script`); return its id,
    log and the iteration reached once the fault's iteration is done."""
    iteration, _ = pick_fault(fault)
    job_id = slurm_script(cluster.partition, work, "--requeue", "--submit", **options).stdout.strip()
    log = work / f"slurm-{job_id}.out"

    def still_running():
        state = cluster.job(job_id).get("JobState")
        assert state in ("PENDING", "CONFIGURING", "RUNNING"), f"job {job_id} {state}:\n{read(log)}"

    seen = wait_for_iteration(lambda: read(log), iteration, poll=still_running, interval=0.3)
    return job_id, log, seen


def finish_after_requeue(cluster, job_id: str, log: Path) -> dict:
    """Wait for the requeue, start the job again at once, wait for its end; check it COMPLETED."""
    job = cluster.wait(job_id, timeout=120, until=lambda job: (
        job.get("JobState") == "PENDING" and int(job.get("Restarts", 0)) >= 1))
    assert job.get("JobState") == "PENDING" and job.get("Restarts") == "1", (job, read(log))
    cluster.start_requeued(job_id)
    job = cluster.wait(job_id, timeout=TIMEOUT)
    assert job["JobState"] == "COMPLETED", f"{job['JobState']} {job.get('ExitCode')}\n{read(log)}"
    return job


def assert_resumed_where_it_stopped(text: str, seen: int) -> None:
    (preempted,) = preempted_points(text) or [None]
    assert preempted is not None, text[-3000:]
    assert preempted.iteration >= seen, (preempted, seen)  # the iteration in flight is finished
    resumed = resumed_points(text)
    assert [(p.epoch, p.iteration, p.path) for p in resumed] == [
        (preempted.epoch, preempted.iteration, preempted.path)], text[-3000:]


def test_signal_before_the_time_limit_requeues_and_resumes(slurm_cluster, tiny_reference,
                                                           tmp_path):
    """Task 1 trains in ``work-rank1`` and fails if it reads ``work`` (``rank_private_python``)."""
    work = tmp_path / "work"
    job_id, log, seen = start_requeueable_job(slurm_cluster, work, "slurm-signal",
                                              python=str(rank_private_python(tmp_path)))
    subprocess.run(["scancel", "--signal=TERM", job_id], check=True, capture_output=True,
                   timeout=60)
    print(f"scancel --signal=TERM {job_id} after iteration {seen}")
    finish_after_requeue(slurm_cluster, job_id, log)
    text = read(log)
    assert text.count(REQUEUED_LINE) == 1, text[-3000:]  # the script requeued the job
    assert_resumed_where_it_stopped(text, seen)
    assert_finished_exactly(work)
    assert_same_answer(tiny_reference, text, work)
    private = tmp_path / "work-rank1"
    assert private.is_dir() and not list(private.rglob("*.pth")) and not (private / "last_checkpoint").exists()


def test_preemption_requeues_and_resumes(slurm_cluster, tiny_reference, tmp_path):
    work = tmp_path / "work"
    job_id, log, seen = start_requeueable_job(slurm_cluster, work, "slurm-preempt")
    subprocess.run(["scontrol", "requeue", job_id], check=True, capture_output=True, timeout=60)
    print(f"scontrol requeue {job_id} after iteration {seen}")
    finish_after_requeue(slurm_cluster, job_id, log)
    text = read(log)
    assert REQUEUED_LINE not in text  # Slurm requeued it; the script saw Slurm end the job
    assert_resumed_where_it_stopped(text, seen)
    assert_finished_exactly(work)
    assert_same_answer(tiny_reference, text, work)
