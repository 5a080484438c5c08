"""One replica's container stopped (SIGTERM) or hung and killed (SIGSTOP, then SIGKILL)
mid-training, with every pod a container of the trainer image (marker ``image``).

The operator emulator runs ``kctl train``'s PyTorchJob for :mod:`tests.support.tiny_job`'s job, for
the image built from this checkout, with :class:`~tests.support.podman_runtime.PodmanRuntime`, and
deletes one pod after a seeded random iteration: ``podman stop --time 30`` sends SIGTERM to the
container's PID 1 (``torchrun``, the manifest's command), which passes it to its rank. Every rank
stops after the same iteration, rank 0 writes the checkpoint to the claim, the ranks exit 143
(the trainer's "preempted, checkpoint saved" status) and the container ends with 143 too: the
image's ``torchrun`` (image/torchrun.sh) ends with its ranks' status where PyTorch's own leaves
with 1 (``SignalException``); the operator creates the pod again
as a new container, the other pod's container (its torchrun failed with its rank) is restarted by
the kubelet, and the job resumes where it stopped and ends with the uninterrupted run's weights.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.podman import IMAGE
from tests.support.tiny_job import (ITERS_PER_EPOCH, TIMEOUT, TOTAL_ITERS,
                                    assert_finished_exactly, assert_same_answer, emulated_tiny_job,
                                    pick_fault, preempted_points, resumed_points, train_manifest)

pytestmark = pytest.mark.image


def test_sigterm_to_a_container_saves_and_the_recreated_pod_resumes(tiny_reference,
                                                                    podman_runtime, tmp_path):
    # in the second epoch (an epoch checkpoint exists) with iterations left to train after it
    iteration, rank = pick_fault("pytorchjob-container-sigterm", last=TOTAL_ITERS - 4)
    started = time.monotonic()
    objects = train_manifest("tiny", "--image", IMAGE)
    with emulated_tiny_job(tmp_path, iteration, objects, runtime=podman_runtime,
                           grace_period=30) as job:
        emulator, names, seen = job.emulator, job.names, job.seen
        stopped_pod = emulator.pods[names[rank]]
        emulator.delete_pod(names[rank])
        print(f"stopped the container of pod {names[rank]} (rank {rank}) after iteration {seen}")
        phase = emulator.wait(timeout=TIMEOUT)
        report = emulator.report()
        stopped_log = emulator.all_logs(names[rank])
        everything = emulator.all_logs(names[0])  # rank 0, every container
        logs = [emulator.logs(name) for name in names]  # the containers that finished
    print(f"containers: stopped, recreated and finished in {time.monotonic() - started:.1f} s")
    assert emulator.leftover_processes() == []
    assert (podman_runtime.containers(), podman_runtime.network_exists()) == ([], False)
    assert phase == "Succeeded", report
    other_pod = emulator.pods[names[1 - rank]]
    assert (stopped_pod.recreations, other_pod.recreations, other_pod.restarts) == (1, 0, 1), report
    # torchrun, PID 1 of the container, got podman stop's SIGTERM and passed it to its rank, which
    # announced its 143; the image's torchrun ended the container with 143 as well
    assert "SignalException" not in stopped_log, stopped_log[-3000:]
    assert "trainer: SIGTERM received: stopping after the current iteration with a checkpoint " \
           "(exit status 143)" in stopped_log, stopped_log[-3000:]
    assert stopped_pod.exit_codes == [143, 0], report
    (stopped,) = preempted_points(everything) or [None]
    assert stopped is not None and seen <= stopped.iteration < TOTAL_ITERS, everything[-3000:]
    assert [(p.epoch, p.iteration, p.path) for p in resumed_points(logs[0])] == [
        (stopped.epoch, stopped.iteration, stopped.path)], logs[0][-3000:]
    assert_finished_exactly(job.work_dir)
    assert_same_answer(tiny_reference, "\n".join(logs), job.work_dir)


def process_state(pid: int) -> str:
    """The state letter of process ``pid`` (``T``: stopped by a signal)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_a_hung_then_killed_container_restarts_in_its_pod_and_resumes(tiny_reference,
                                                                      podman_runtime, tmp_path):
    """``pause`` SIGSTOPs every process of one replica's container (a hung node), ``kill`` is
    ``podman kill -s KILL``: the container ends with 137, the kubelet starts a new container in
    the same pod (``OnFailure``), the other pod's torchrun fails with its peer and restarts too,
    and the job resumes from the first epoch's checkpoint to the uninterrupted run's weights."""
    iteration, rank = pick_fault("pytorchjob-container-kill", last=TOTAL_ITERS - 4)
    objects = train_manifest("tiny", "--image", IMAGE)
    with emulated_tiny_job(tmp_path, iteration, objects, runtime=podman_runtime) as job:
        emulator, names, seen = job.emulator, job.names, job.seen
        victim = emulator.pods[names[rank]]
        emulator.pause(names[rank])
        time.sleep(0.5)
        states = {pid: process_state(pid) for pid in victim.process.processes()}
        emulator.kill(names[rank])
        print(f"paused, then killed the container of pod {names[rank]} (rank {rank}) after "
              f"iteration {seen}")
        phase = emulator.wait(timeout=TIMEOUT)
        report = emulator.report()
        other = emulator.pods[names[1 - rank]]
        logs = [emulator.logs(name) for name in names]  # the containers that finished
    assert emulator.leftover_processes() == []
    assert (podman_runtime.containers(), podman_runtime.network_exists()) == ([], False)
    assert phase == "Succeeded", report
    # torchrun (PID 1) and its rank, both stopped
    assert len(states) == 2 and set(states.values()) == {"T"}, states
    assert (victim.exit_codes[0], victim.restarts, victim.recreations) == (137, 1, 0), report
    assert (other.restarts, other.recreations) == (1, 0), report
    assert [(p.epoch, p.iteration) for p in resumed_points(logs[0])] == [
        (1, ITERS_PER_EPOCH)], logs[0][-3000:]
    assert_finished_exactly(job.work_dir)
    assert_same_answer(tiny_reference, "\n".join(logs), job.work_dir)
