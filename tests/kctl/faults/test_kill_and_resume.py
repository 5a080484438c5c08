"""A rank SIGKILLed mid-training costs a restart, not the run, and not the answer.

Under ``kctl run --max-restarts`` (torchrun restarts every rank) and under the operator emulators
running ``kctl train``'s PyTorchJob and TrainJob (the kubelet restarts the container in its pod,
``restartPolicy: OnFailure``), one rank of :mod:`tests.support.tiny_job`'s job is killed after an
iteration of the second epoch chosen by a seeded ``random.Random`` (printed in the test output;
``KCTL_FAULT_SEED`` picks another). The job must be restarted by its launcher, resume from its last
checkpoint, train exactly the configured epochs (``epoch_2.pth`` last, no ``epoch_3.pth``) and end
with the weights of the uninterrupted run (``tiny_reference``), tensor for tensor. The same for two
``kctl run`` "nodes" that share no work_dir, started again by hand.

The TrainJob is also published into the fake API server while it runs
(:mod:`tests.support.emulator_bridge`), and the real ``kctl logs -f`` follows it: every line of
both nodes' containers, ``[node-N]``-prefixed, across the restart, until the job ends.
"""

from __future__ import annotations

import collections
import os
import signal

from tests.support.fake_apiserver import KctlProcess
from tests.support.local_launch import REPO, START_LINE, free_port, launch_env, rank_pids
from tests.support.tiny_job import (CONFIG, ITERS_PER_EPOCH, RANKS, TIMEOUT, TRAINER_ARGS, Watched,
                                    assert_finished_exactly, assert_same_answer, emulated_tiny_job,
                                    kctl_run, pick_fault, resumed_points, trainer_pids,
                                    trainjob_manifest, unable_to_read, wait_for_iteration)


def assert_resumed_from_the_epoch_checkpoint(log: str, killed_after: int) -> None:
    """One resume, from a checkpoint at or after the first epoch's and not after the kill."""
    points = resumed_points(log)
    assert len(points) == 1, log[-3000:]
    assert ITERS_PER_EPOCH <= points[0].iteration <= killed_after, points


def test_kctl_run_restarts_a_killed_rank(tiny_reference, tmp_path):
    iteration, rank = pick_fault("kctl-run")
    work = tmp_path / "work"
    run = kctl_run(work, "--max-restarts", "2")
    try:
        seen = wait_for_iteration(lambda: run.output, iteration)
        ranks = rank_pids(run.proc.pid)
        assert sorted(ranks) == [0, 1], run.output[-3000:]
        os.kill(ranks[rank], signal.SIGKILL)
        print(f"killed rank {rank} (pid {ranks[rank]}) after iteration {seen}")
        code = run.wait(TIMEOUT)
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert code == 0, run.output[-3000:]
    starts = collections.Counter(m[2] for m in START_LINE.finditer(run.output))
    assert starts == {"0": 2, "1": 2}, run.output[-3000:]  # torchrun restarted both ranks once
    assert_resumed_from_the_epoch_checkpoint(run.output, seen)
    assert_finished_exactly(work)
    assert_same_answer(tiny_reference, run.output, work)


def test_pytorchjob_restarts_a_killed_rank(tiny_reference, tmp_path):
    iteration, rank = pick_fault("pytorchjob")
    with emulated_tiny_job(tmp_path, iteration) as job:
        emulator, names, seen = job.emulator, job.names, job.seen
        victims = trainer_pids(emulator.pods[names[rank]].process.pid)
        assert len(victims) == 1, emulator.report()
        os.kill(victims[0], signal.SIGKILL)
        print(f"killed rank {rank} (pod {names[rank]}, pid {victims[0]}) after iteration {seen}")
        phase = emulator.wait(timeout=TIMEOUT)
        report = emulator.report()
        restarts = {name: pod.restarts for name, pod in emulator.pods.items()}
        logs = [emulator.logs(name) for name in names]  # of the containers that finished
        conditions = [c.type for c in emulator.conditions]
    assert emulator.leftover_processes() == []
    assert phase == "Succeeded", report
    # the kubelet restarted the killed rank's container; the other rank's failed with its peer
    assert restarts[names[rank]] >= 1 and "Restarting" in conditions, report
    assert_resumed_from_the_epoch_checkpoint(logs[0], seen)
    assert_finished_exactly(job.work_dir)
    assert_same_answer(tiny_reference, "\n".join(logs), job.work_dir)


def test_two_nodes_without_a_shared_work_dir_resume_a_killed_rank(tiny_reference, tmp_path):
    """Two ``kctl run`` nodes of one rank each, each started in a folder of its own with the
    relative ``--work-dir work``: rank 1's work_dir is another, empty folder, and rank 1 fails if
    it reads anything in rank 0's (``unable_to_read``), as on a node without shared storage. A rank
    is SIGKILLed mid-epoch, both nodes fail; started again, rank 0 reads its checkpoint and hands
    it to rank 1, and the run ends with the reference's weights. Rank 1's folder never holds a
    checkpoint."""
    iteration, rank = pick_fault("kctl-run-nodes")
    folders = [tmp_path / f"node{node}" for node in range(2)]
    for folder in folders:
        folder.mkdir()

    def start_nodes() -> list[Watched]:
        port = str(free_port())
        envs = [launch_env(NNODES="2", NODE_RANK=str(node), MASTER_ADDR="127.0.0.1", PORT=port)
                for node in range(2)]
        envs[1] = unable_to_read(folders[0], envs[1])
        return [Watched.kctl("run", str(REPO / CONFIG), "--gpus", "1", "--work-dir", "work", "--",
                             *TRAINER_ARGS, env=env, cwd=folder) for env, folder in zip(envs, folders)]

    first = start_nodes()
    try:
        seen = wait_for_iteration(lambda: first[0].output, iteration)
        victim = rank_pids(first[rank].proc.pid)[rank]
        os.kill(victim, signal.SIGKILL)
        print(f"killed rank {rank} (pid {victim}) after iteration {seen}")
        codes = [node.wait(TIMEOUT) for node in first]
    finally:
        for node in first:
            if node.proc.poll() is None:
                node.proc.kill()
    assert 0 not in codes, "\n".join(node.output[-2000:] for node in first)
    second = start_nodes()
    codes = [node.wait(TIMEOUT) for node in second]
    assert codes == [0, 0], "\n".join(node.output[-2000:] for node in second)
    assert_resumed_from_the_epoch_checkpoint(second[0].output, seen)
    work = folders[0] / "work"
    assert resumed_points(second[0].output)[0].path == str(work / "epoch_1.pth")
    assert_finished_exactly(work)
    assert_same_answer(tiny_reference, "\n".join(node.output for node in second), work)
    private = folders[1] / "work"
    assert private.is_dir() and not list(private.rglob("*.pth")) and not (private / "last_checkpoint").exists()


def test_trainjob_restarts_a_killed_rank_and_kctl_logs_follow_it(tiny_reference, fake_kube,
                                                                  tmp_path):
    iteration, rank = pick_fault("trainjob")
    with emulated_tiny_job(tmp_path, 1, trainjob_manifest("tiny"), fake=fake_kube) as job:
        emulator = job.emulator
        follow = KctlProcess("logs", "tiny", "-f")
        try:
            for node in range(RANKS):  # kctl follows both nodes' first containers
                follow.wait_for_line(f"[node-{node}] {emulator.logs(node).splitlines()[0]}")
            seen = wait_for_iteration(lambda: emulator.logs(0), iteration, poll=job.poll)
            victims = trainer_pids(emulator.processes(rank)[0])
            assert len(victims) == 1, emulator.report()
            os.kill(victims[0], signal.SIGKILL)
            print(f"killed rank {rank} (pod {emulator.pod_name(rank)}, pid {victims[0]}) after "
                  f"iteration {seen}")
            phase = job.wait()
            left = emulator.leftover_processes()
            followed = follow.wait(timeout=60)  # ends with the job
        finally:
            follow.kill()
        report = emulator.report()
        restarts = [pod.restarts for pod in emulator.pods.values()]
        logs = [emulator.logs(node) for node in range(RANKS)]  # the containers that finished
        everything = [emulator.node_logs(node) for node in range(RANKS)]
    assert left == []
    assert phase == "Complete", report
    # the kubelet restarted the killed rank's container in its pod (the other's failed with its
    # peer); no pod was replaced
    assert len(restarts) == RANKS and restarts[rank] >= 1, report
    assert_resumed_from_the_epoch_checkpoint(logs[0], seen)
    assert_finished_exactly(job.work_dir)
    assert_same_answer(tiny_reference, "\n".join(logs), job.work_dir)
    assert followed.code == 0, followed.err
    for node in range(RANKS):
        prefix = f"[node-{node}] "
        assert [line[len(prefix):] for line in followed.out.splitlines()
                if line.startswith(prefix)] == everything[node].splitlines()
    assert (f"kctl: [node-{rank}] container restarted (restart 1); following the new one"
            in followed.err)
    assert [(pod["status"]["phase"], pod["status"]["containerStatuses"][0]["restartCount"])
            for pod in fake_kube.list("pods")] == [("Succeeded", count) for count in restarts]
