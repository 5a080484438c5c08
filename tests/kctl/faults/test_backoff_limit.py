"""A TrainJob node that keeps crashing uses up its node Job's ``backoffLimit``: the whole job fails
and nothing of it is left running.

The TrainJob emulator runs ``kctl train --kind TrainJob``'s manifest of
:mod:`tests.support.tiny_job`'s job against a namespaced TrainingRuntime whose node Job has
``backoffLimit: 4`` (``--runtime-kind TrainingRuntime --runtime small``), published into the fake
API server (:mod:`tests.support.emulator_bridge`). After an iteration chosen by a seeded
``random.Random``, one node's container is SIGKILLed (137, as an OOM kill), and again each time the
kubelet restarts it: a bad node. The restarts of both pods count (the healthy node's rank fails
once with its peer, then waits for it): the Job fails (``BackoffLimitExceeded``), the JobSet and
the TrainJob fail (``FailedJobs``), and the Job deletes its pods, the crash-looping one included,
as Kubernetes does under ``restartPolicy: OnFailure``.

``kctl status`` says which node fails and why while it crash-loops; once the job has failed, its
pods are gone, and with them their exit codes: ``kctl status`` shows the job's failure.
"""

from __future__ import annotations

from tests.kctl.emulated.conftest import training_runtime
from tests.support.tiny_job import (ITERS_PER_EPOCH, RANKS, TIMEOUT, emulated_tiny_job,
                                    pick_fault, trainjob_manifest)

BACKOFF_LIMIT = 4


def test_a_node_that_keeps_crashing_fails_the_trainjob(fake_kube, run_kctl, tmp_path):
    iteration, rank = pick_fault("trainjob-backoff", first=2, last=ITERS_PER_EPOCH)
    objects = trainjob_manifest("tiny", "--runtime-kind", "TrainingRuntime", "--runtime", "small")
    objects.append(training_runtime("small", backoff_limit=BACKOFF_LIMIT, kind="TrainingRuntime"))
    with emulated_tiny_job(tmp_path, iteration, objects, fake=fake_kube) as job:
        emulator = job.emulator
        bad = emulator.nodes[rank]
        crashing: list[str] = []  # `kctl status` while the bad node crash-loops

        def crash_again() -> bool:
            """Kill the bad node's container each time it has started; look at `kctl status`
            once it restarted twice (the Job has not failed yet: 2 + at most 1 restart)."""
            if len(bad.starts) == 3 and not crashing:
                crashing.append(run_kctl("status", "tiny").out)
            if bad.running and len(bad.exit_codes) < len(bad.starts):
                emulator.kill(rank)
            return emulator.finished

        job.bridge.wait_until(crash_again, timeout=TIMEOUT)
        left = emulator.leftover_processes()  # before the emulator's shutdown kills anything
        report = emulator.report()
        failed = run_kctl("status", "tiny")
    assert left == [], report
    assert emulator.phase == "Failed", report
    assert emulator.job_condition.reason == "BackoffLimitExceeded", report
    assert len(bad.exit_codes) >= 3 and set(bad.exit_codes) == {137}, report
    assert sum(pod.restarts for pod in emulator.nodes) >= BACKOFF_LIMIT, report
    assert len(emulator.pods) == RANKS and all(pod.deleting for pod in emulator.nodes), report

    # while it crash-looped: which node, how often, and its exit code
    (status,) = crashing
    assert f"  node-{rank}: restarted 2 time(s); last exit code 137 (Error, " in status, status
    assert "State:     Running" in status
    # once failed: the job's failure; the Job deleted the pods (nothing to read them from)
    assert failed.code == 0, failed.err
    assert "State:     Failed" in failed.out
    assert ("Failed:    FailedJobs: jobset failed due to one or more job failures (first failed "
            "job: tiny-node-0)") in failed.out
    assert fake_kube.list("pods") == []
    assert fake_kube.get("trainjobs", "tiny")["status"]["jobsStatus"][0]["failed"] == 1
