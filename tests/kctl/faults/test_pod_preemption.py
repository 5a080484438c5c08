"""A PyTorchJob's or a TrainJob's pod preempted (deleted) mid-training: nothing is lost.

The operator emulators run ``kctl train``'s PyTorchJob and TrainJob for
:mod:`tests.support.tiny_job`'s job and delete one pod after a seeded random iteration, as
Kubernetes preemption or eviction does: the pod's ``torchrun`` gets SIGTERM and passes it to its
rank; the ranks finish the iteration, rank 0 saves a checkpoint and every rank exits 143 within the
grace period (30 s, Kubernetes' default ``terminationGracePeriodSeconds``). The other pod's
container (its torchrun failed with the 143 of its rank) is restarted by the kubelet; the deleted
pod comes back (a PyTorchJob's operator creates it again under its name, a TrainJob's node Job
creates a new pod of a new name for its index), and the job resumes at the iteration where it
stopped and ends with the uninterrupted run's weights.
"""

from __future__ import annotations

from tests.support.tiny_job import (RANKS, TIMEOUT, assert_finished_exactly, assert_same_answer,
                                    emulated_tiny_job, pick_fault, preempted_points,
                                    resumed_points, trainjob_manifest)


def assert_resumed_where_it_stopped(reference, everything: str, logs: list[str], seen: int,
                                    work_dir) -> None:
    """Rank 0 saved where it stopped, at or after iteration ``seen`` (``everything`` is all it
    printed), and its last container (``logs[0]``; ``logs``: every rank's) resumed there; the job
    trained exactly the configured epochs and ended with the ``reference``'s weights."""
    (stopped,) = preempted_points(everything) or [None]
    assert stopped is not None and stopped.iteration >= seen, everything[-3000:]
    assert [(p.epoch, p.iteration, p.path) for p in resumed_points(logs[0])] == [
        (stopped.epoch, stopped.iteration, stopped.path)], logs[0][-3000:]
    assert_finished_exactly(work_dir)
    assert_same_answer(reference, "\n".join(logs), work_dir)


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
    assert_resumed_where_it_stopped(tiny_reference, everything, logs, seen, job.work_dir)


def test_deleted_trainjob_pod_is_replaced_and_resumes_where_it_stopped(tiny_reference, tmp_path):
    iteration, rank = pick_fault("trainjob-preempt")
    with emulated_tiny_job(tmp_path, iteration, trainjob_manifest("tiny"), grace_period=30) as job:
        emulator, seen = job.emulator, job.seen
        deleted = emulator.nodes[rank]
        emulator.delete_pod(rank)
        print(f"deleted pod {deleted.name} (rank {rank}) after iteration {seen}")
        phase = job.wait()
        left = emulator.leftover_processes()
        report = emulator.report()
        replacement = emulator.nodes[rank]
        everything = emulator.node_logs(0)  # rank 0: every pod and container
        logs = [emulator.logs(node) for node in range(RANKS)]  # the containers that finished
    assert left == []
    assert phase == "Complete", report
    assert replacement.name != deleted.name and replacement.hostname == deleted.hostname, report
    # one container, ended by the deletion (torchrun leaves with 1 on SIGTERM, its rank with 143);
    # the Job counts the deleted pod as failed
    assert (deleted.phase, len(deleted.exit_codes), emulator.failed) == ("Failed", 1, 1), report
    assert_resumed_where_it_stopped(tiny_reference, everything, logs, seen, job.work_dir)
