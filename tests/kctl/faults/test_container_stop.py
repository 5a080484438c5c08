"""SIGTERM to one replica's container mid-training, with every pod a container of the trainer
image (marker ``image``).

The operator emulator runs ``kctl train``'s PyTorchJob for :mod:`tests.support.tiny_job`'s job, for
the image built from this checkout, with :class:`~tests.support.podman_runtime.PodmanRuntime`, and
deletes one pod after a seeded random iteration: ``podman stop --time 30`` sends SIGTERM to the
container's PID 1 (``torchrun``, the manifest's command), which passes it to its rank. Every rank
stops after the same iteration, rank 0 writes the checkpoint to the claim, the ranks exit 143
(the trainer's "preempted, checkpoint saved" status) and the container ends with torchrun's own
status, 1 (``SignalException``: torchrun leaves with 1 when a signal stops it, which is why kctl
renders ``restartPolicy: OnFailure``, see docs/reliability.md); the operator creates the pod again
as a new container, the other pod's container (its torchrun failed with its rank) is restarted by
the kubelet, and the job resumes where it stopped and ends with the uninterrupted run's weights.
"""

from __future__ import annotations

import time

import pytest

from tests.support.podman import IMAGE
from tests.support.tiny_job import (TIMEOUT, TOTAL_ITERS, assert_finished_exactly, assert_same_answer,
                                    emulated_tiny_job, pick_fault, preempted_points,
                                    resumed_points, train_manifest)

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
    # announced its 143; torchrun itself ended the container with 1
    assert "SignalException: Process 1 got signal: 15" in stopped_log, stopped_log[-3000:]
    assert "trainer: SIGTERM received: stopping after the current iteration with a checkpoint " \
           "(exit status 143)" in stopped_log, stopped_log[-3000:]
    assert stopped_pod.exit_codes == [1, 0], report
    (stopped,) = preempted_points(everything) or [None]
    assert stopped is not None and seen <= stopped.iteration < TOTAL_ITERS, everything[-3000:]
    assert [(p.epoch, p.iteration, p.path) for p in resumed_points(logs[0])] == [
        (stopped.epoch, stopped.iteration, stopped.path)], logs[0][-3000:]
    assert_finished_exactly(job.work_dir)
    assert_same_answer(tiny_reference, "\n".join(logs), job.work_dir)
