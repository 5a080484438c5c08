"""A PyTorchJob pod preempted (deleted) mid-training: nothing is lost.

The operator emulator runs ``kctl train``'s PyTorchJob for :mod:`tests.support.tiny_job`'s job and
deletes one pod after a seeded random iteration, as Kubernetes preemption or eviction does: the
pod's ``torchrun`` gets SIGTERM and passes it to its rank; the ranks finish the iteration, rank 0
saves a checkpoint and every rank exits 143 within the grace period (30 s, Kubernetes' default
``terminationGracePeriodSeconds``). The operator creates the pod again, the other pod's container
(its torchrun failed with the 143 of its rank) is restarted by the kubelet, and the job resumes at
the iteration where it stopped and ends with the uninterrupted run's weights.
"""

from __future__ import annotations

from tests.support.tiny_job import (TIMEOUT, assert_finished_exactly, assert_same_answer,
                                    emulated_tiny_job, pick_fault, preempted_points,
                                    resumed_points)


def test_deleted_pod_comes_back_and_resumes_where_it_stopped(tiny_reference, tmp_path):
    iteration, rank = pick_fault("pytorchjob-preempt")
    with emulated_tiny_job(tmp_path, iteration, grace_period=30) as job:
        emulator, names, seen = job.emulator, job.names, job.seen
        emulator.delete_pod(names[rank])
        print(f"deleted pod {names[rank]} (rank {rank}) after iteration {seen}")
        phase = emulator.wait(timeout=TIMEOUT)
        report = emulator.report()
        recreations = emulator.pods[names[rank]].recreations
        everything = emulator.all_logs(names[0])  # rank 0, every container
        logs = [emulator.logs(name) for name in names]  # the containers that finished
    assert emulator.leftover_processes() == []
    assert phase == "Succeeded", report
    assert recreations == 1, report
    (stopped,) = preempted_points(everything) or [None]
    assert stopped is not None and stopped.iteration >= seen, everything[-3000:]
    assert [(p.epoch, p.iteration, p.path) for p in resumed_points(logs[0])] == [
        (stopped.epoch, stopped.iteration, stopped.path)], logs[0][-3000:]
    assert_finished_exactly(job.work_dir)
    assert_same_answer(tiny_reference, "\n".join(logs), job.work_dir)
