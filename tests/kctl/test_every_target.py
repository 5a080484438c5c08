"""One job, every target: the same config and seed, 2 CPU ranks (gloo), end with bit-identical
weights however they are launched.

The job is :mod:`tests.support.tiny_job`'s (2 epochs of the digits demo, cut down). The reference
is ``kctl run --gpus 2`` (the ``tiny_reference`` fixture, trained once per session); each other
launch must print the same ``final_weights_sha256`` on both ranks and leave an ``epoch_2.pth``
whose ``state_dict`` tensors are all ``torch.equal`` to the reference's:

- ``kctl run`` on two "nodes" of one rank each (static rendezvous on localhost);
- ``kctl slurm-script --gpus 0 --ntasks 2`` on the local Slurm cluster (marker ``slurm``);
- ``kctl train --nodes 2 --gpus 0 --cpu 1``'s PyTorchJob, run by the operator emulator;
- the Helm chart's PyTorchJob (``nodes: 2``, ``cpu: 1``) through the same emulator;
- ``kctl train --kind TrainJob``'s TrainJob (Kubeflow Trainer v2.3.0, 2 nodes), run by the
  TrainJob emulator;
- those three manifests again, rendered for the trainer image built from this checkout, with every
  pod a podman container of it (marker ``image``, :mod:`tests.support.podman_runtime`): UID 1000,
  read-only root, the ConfigMap, claim and emptyDirs mounted, 1 CPU, no capabilities, and the
  pods meeting at the manifest's own master address and port on a podman network. Equal to the
  reference, they are equal to the process emulator's runs too.
"""

from __future__ import annotations

import time

import pytest

from tests.support.local_launch import free_port, launch_env
from tests.support.operator_emulator import emulator_for
from tests.support.podman import IMAGE
from tests.support.tiny_job import (CONFIG, EPOCHS, RANKS, TIMEOUT, TRAINER_ARGS, Watched,
                                    assert_finished_exactly, assert_same_answer, final_weights,
                                    helm_manifest, resumed_points, slurm_script, train_manifest,
                                    trainjob_manifest, work_dir_on_claim)


def test_the_reference_ran_once_on_both_ranks(tiny_reference):
    assert len(final_weights(tiny_reference.log)) == RANKS
    assert tiny_reference.log.count("Saving checkpoint at") == EPOCHS
    assert resumed_points(tiny_reference.log) == []


def test_kctl_run_on_two_nodes(tiny_reference, tmp_path):
    work = tmp_path / "work"
    port = str(free_port())
    nodes = [Watched.kctl("run", CONFIG, "--gpus", "1", "--work-dir", str(work), "--",
                          *TRAINER_ARGS, env=launch_env(NNODES="2", NODE_RANK=str(rank),
                                                        MASTER_ADDR="127.0.0.1", PORT=port))
             for rank in range(2)]
    codes = [node.wait(TIMEOUT) for node in nodes]
    assert codes == [0, 0], "\n".join(node.output[-2000:] for node in nodes)
    assert_finished_exactly(work)
    assert_same_answer(tiny_reference, "\n".join(node.output for node in nodes), work)


@pytest.mark.slurm
def test_slurm_two_tasks(tiny_reference, slurm_cluster, tmp_path):
    work = tmp_path / "work"
    job_id = slurm_script(slurm_cluster.partition, work, "--submit").stdout.strip()
    job = slurm_cluster.wait(job_id, timeout=TIMEOUT)
    log = (work / f"slurm-{job_id}.out").read_text()
    assert job["JobState"] == "COMPLETED", log[-3000:]
    assert_finished_exactly(work)
    assert_same_answer(tiny_reference, log, work)


#: The emulated targets: kctl train's PyTorchJob, the Helm chart's, kctl train's TrainJob.
EMULATED = ("kctl-train-pytorchjob", "helm-chart-pytorchjob", "kctl-train-trainjob")


def _manifest(target: str, request, tmp_path, image: str | None = None) -> list[dict]:
    """The tiny job's objects as ``target`` renders them (for ``image`` when given)."""
    if target == "helm-chart-pytorchjob":
        values = {}
        if image:
            repository, tag = image.rsplit(":", 1)
            values["image"] = {"repository": repository, "tag": tag}
        return helm_manifest(request.getfixturevalue("helm_bin"), "tiny", tmp_path, **values)
    flags = ("--image", image) if image else ()
    if target == "kctl-train-trainjob":
        return trainjob_manifest("tiny", *flags)
    return train_manifest("tiny", *flags)


def _emulate_to_the_reference(reference, objects, tmp_path, runtime=None) -> None:
    """Run the job to its end in the emulator of its kind (its pods as local processes, or as
    containers of ``runtime``), with no restart, nothing left behind, exactly the configured
    epochs and the reference's weights."""
    pvc_root = tmp_path / "pvc"
    (pvc_root / "shared").mkdir(parents=True)
    started = time.monotonic()
    with emulator_for(objects, tmp_path / "emu", pvc_root=pvc_root,
                      runtime=runtime) as emulator:
        emulator.start()
        emulator.wait(timeout=TIMEOUT)
        assert emulator.succeeded, emulator.report()
        restarts = [(p.restarts, p.recreations) for p in emulator.pods.values()]
        log = "\n".join(emulator.all_logs(pod) for pod in emulator.pods)
    print(f"{emulator.kind} trained in {time.monotonic() - started:.1f} s")
    assert emulator.leftover_processes() == []
    if runtime is not None:  # every container and the job's network removed
        assert (runtime.containers(), runtime.network_exists()) == ([], False)
    assert restarts == [(0, 0), (0, 0)]
    work = work_dir_on_claim(objects, pvc_root)
    assert_finished_exactly(work)
    assert_same_answer(reference, log, work)


@pytest.mark.parametrize("target", EMULATED)
def test_emulated(target, tiny_reference, request, tmp_path):
    _emulate_to_the_reference(tiny_reference, _manifest(target, request, tmp_path), tmp_path)


@pytest.mark.image
@pytest.mark.parametrize("target", EMULATED)
def test_emulated_in_containers(target, tiny_reference, podman_runtime, request, tmp_path):
    _emulate_to_the_reference(tiny_reference, _manifest(target, request, tmp_path, IMAGE),
                              tmp_path, podman_runtime)
