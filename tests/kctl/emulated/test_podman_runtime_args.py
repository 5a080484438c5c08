"""What the podman runtime makes of ``kctl train``'s rendered pods: the ``podman create``
arguments (user, groups, volumes, tmpfs, capabilities, read-only root, CPU limit, network name and
aliases) and the environment, whose master address and port stay the manifest's. Nothing here
starts podman; the containers themselves run in the tests marked ``image``
(``tests/kctl/test_every_target.py``, ``tests/kctl/faults/test_container_stop.py``)."""

from __future__ import annotations

import json

import pytest

from tests.support.pod_runner import EmulatorError, quantity
from tests.support.podman import IMAGE, Podman
from tests.support.podman_runtime import PodmanRuntime
from tests.support.tiny_job import train_manifest, trainjob_manifest

#: kctl train's /dev/shm: ``emptyDir: {medium: Memory, sizeLimit: 8Gi}``.
SHM = f"type=tmpfs,destination=/dev/shm,tmpfs-size={8 * 1024 ** 3}"


@pytest.fixture
def runtime(tmp_path):
    return PodmanRuntime(Podman(tmp_path / "containers.conf"))


def pairs(args: list[str]) -> set[tuple[str, str]]:
    """Every option of ``args`` (before the image) with the word after it."""
    options = args[:args.index(IMAGE)]
    return set(zip(options, options[1:]))


def test_pytorchjob_pods_as_podman_containers(emulate, runtime, tmp_path):
    objects = train_manifest("tiny", "--image", IMAGE)
    command = next(o for o in objects if o["kind"] == "PyTorchJob")["spec"][
        "pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["command"]
    emulator = emulate(objects, runtime=runtime)
    for name, work_dir in (("tiny-master-0", str(tmp_path / "pvc" / "shared")),
                           ("tiny-worker-0", None)):
        pod = emulator.prepare(name)
        container, volumes = pod.process, pod.pod_dir / "volumes"
        args = container.args
        assert args[-1] == IMAGE  # the manifest's command is the whole command line
        expected = {
            ("--pull", "never"), ("--network", runtime.network), ("--hostname", name),
            ("--network-alias", name),  # the operator's Service of the pod
            ("--user", "1000:1000"), ("--group-add", "1000"),  # runAsUser/Group, fsGroup
            ("--entrypoint", json.dumps(command)),
            ("--cap-drop", "ALL"), ("--security-opt", "no-new-privileges"), ("--cpus", "1"),
            ("--volume", f"{volumes / 'config'}:/config:ro"),
            ("--volume", f"{work_dir or volumes / 'work-dir'}:/work_dirs:rw"),
            ("--volume", f"{volumes / 'tmp'}:/tmp:rw"),
            ("--mount", SHM),
            # the manifest's own master address and port: the pods meet on the job's network
            ("--env", "MASTER_ADDR=tiny-master-0"), ("--env", "PET_MASTER_ADDR=tiny-master-0"),
            ("--env", "MASTER_PORT=23456"), ("--env", "PET_MASTER_PORT=23456"),
        }
        assert expected <= pairs(args), sorted(expected - pairs(args))
        assert "--read-only" in args
        assert (volumes / "tmp").stat().st_mode & 0o777 == 0o777  # the kubelet's emptyDir mode


def test_trainjob_nodes_as_podman_containers(emulate, runtime):
    emulator = emulate(trainjob_manifest("tiny", "--image", IMAGE), runtime=runtime)
    for index in range(2):
        args = pairs(emulator.prepare(index).process.args)
        assert {("--hostname", f"tiny-node-0-{index}"),
                ("--network-alias", f"tiny-node-0-{index}.tiny"),  # via the JobSet's Service
                ("--env", "PET_MASTER_ADDR=tiny-node-0-0.tiny"), ("--env", "PET_MASTER_PORT=29500"),
                ("--user", "1000:1000"), ("--group-add", "1000"), ("--cpus", "1"),
                ("--mount", SHM)} <= args


def test_gpus_are_refused_in_containers(emulate, runtime):
    emulator = emulate(train_manifest("tiny", "--image", IMAGE, "--gpus", "1"), runtime=runtime,
                       host_gpus=2)
    with pytest.raises(EmulatorError, match="GPUs in containers are not emulated"):
        emulator.prepare("tiny-master-0")


@pytest.mark.parametrize("value, number", [
    (2, 2), ("500m", 0.5), ("1.5", 1.5), ("8Gi", 8 * 1024 ** 3), ("64M", 64e6), ("1e3", 1000),
    ("256Mi", 256 * 1024 ** 2)])
def test_quantity(value, number):
    assert quantity(value) == number
