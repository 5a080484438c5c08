"""The trainer image run as a pod runs it: UID 1000, read-only root filesystem, writable work dir,
/tmp and /dev/shm, no capabilities; training, resuming, preemption and the entrypoint's refusals."""

from __future__ import annotations

import os
import re
import time
import uuid

import pytest

from tests.support.trainer_runtime import lines_with, scalars

pytestmark = pytest.mark.image

WORK_DIRS = "/workspace/work_dirs"
#: The image's default command trains this config; its work dir is work_dirs/<config name>.
DIGITS = "configs/resnet/resnet18_1xb64_digits.py"
SMALL = ["train_dataloader.dataset.indices=128", "val_dataloader.dataset.indices=64"]


@pytest.fixture
def work_dir(tmp_path):
    """A host folder for the container's work_dirs, owned by UID 1000 (what fsGroup does)."""
    folder = tmp_path / "work_dirs"
    folder.mkdir()
    os.chown(folder, 1000, 1000)
    return folder


def pod(work_dir) -> dict:
    """Options of a container like the trainer's pod: UID 1000, read-only root, writable work
    dir, /tmp and /dev/shm, no capabilities, no network."""
    return dict(user="1000:1000", read_only=True, hardened=True,
                mounts=[(work_dir, WORK_DIRS, "rw")],
                tmpfs={"/tmp": "", "/dev/shm": "tmpfs-size=268435456"})


def test_runs_as_uid_1000(podman, trainer_image):
    proc = podman.run_container(trainer_image, entrypoint="id", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("uid=1000(trainer) gid=1000(trainer) ")


def test_digits_demo_reaches_95_percent_with_a_read_only_root(podman, trainer_image, work_dir):
    proc = podman.run_container(trainer_image, timeout=1200, **pod(work_dir))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.splitlines()[0] == ("kctl-entrypoint: launcher=none nodes=1 "
                                           "procs_per_node=1 rank=0")
    top1 = [r["accuracy/top1"] for r in scalars(work_dir / "resnet18_1xb64_digits")
            if "accuracy/top1" in r]
    assert len(top1) == 8 and top1[-1] >= 95.0, top1
    output = proc.stdout + proc.stderr
    # nothing tried to write where it cannot (caches, config folders) and was quiet about it
    assert not re.search(r"read-only file system|not writable|temporary cache directory",
                         output, re.I)


def test_resume_continues_in_a_second_container(podman, trainer_image, work_dir):
    first = podman.run_container(
        trainer_image, [DIGITS, "--cfg-options", "train_cfg.max_epochs=1", *SMALL], **pod(work_dir))
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert not lines_with(first.stdout, "trainer: resumed from")

    second = podman.run_container(
        trainer_image, [DIGITS, "--cfg-options", "train_cfg.max_epochs=2", *SMALL], **pod(work_dir))
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    run_dir = f"{WORK_DIRS}/resnet18_1xb64_digits"
    assert lines_with(second.stdout, "trainer: resumed from") == [
        f"trainer: resumed from {run_dir}/epoch_1.pth at epoch=1 iter=2"]
    assert not lines_with(second.stdout, "Epoch(train) [1]")  # epoch 1 is not trained again
    assert lines_with(second.stdout, "Epoch(train) [2]")
    assert (work_dir / "resnet18_1xb64_digits" / "epoch_2.pth").is_file()


def test_torchrun_pod_trains_two_ranks_with_a_read_only_root(podman, trainer_image, work_dir):
    """What a PyTorchJob's pod gets from the operator: torchrun and its workers (which write
    their own files under /tmp) run with the same read-only root."""
    pet = {"PET_NNODES": "1", "PET_NPROC_PER_NODE": "2", "PET_NODE_RANK": "0",
           "PET_MASTER_ADDR": "localhost", "PET_MASTER_PORT": "23456"}
    proc = podman.run_container(
        trainer_image, [DIGITS, "--cfg-options", "train_cfg.max_epochs=1", *SMALL], env=pet,
        **pod(work_dir))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.splitlines()[0] == ("kctl-entrypoint: launcher=pytorch nodes=1 "
                                           "procs_per_node=2 node_rank=0 master=localhost:23456")
    hashes = {line.split()[1]: line.split("=")[-1]
              for line in lines_with(proc.stdout, "final_weights_sha256=")}
    assert sorted(hashes) == ["rank=0", "rank=1"] and len(set(hashes.values())) == 1
    assert (work_dir / "resnet18_1xb64_digits" / "epoch_1.pth").is_file()


def _logs(podman, name: str) -> str:
    proc = podman("logs", name)
    return proc.stdout + proc.stderr


def test_podman_stop_saves_a_checkpoint_and_exits_143(podman, trainer_image, work_dir):
    name = f"kctl-test-stop-{uuid.uuid4().hex[:8]}"
    args = [DIGITS, "--cfg-options", "train_cfg.max_epochs=2", "default_hooks.logger.interval=1"]
    proc = podman("run", "--detach", *podman.container_args(trainer_image, args, name=name,
                                                           **pod(work_dir)))
    assert proc.returncode == 0, proc.stderr
    deadline = time.monotonic() + 300
    while "Epoch(train) [1]" not in _logs(podman, name):  # training has begun
        assert time.monotonic() < deadline, _logs(podman, name)[-2000:]
        time.sleep(0.5)

    stop = podman("stop", "--time", "60", name, timeout=120)  # SIGTERM, SIGKILL after 60 s
    assert stop.returncode == 0, stop.stderr
    assert podman("wait", name).stdout.strip() == "143"
    logs = _logs(podman, name)
    (line,) = lines_with(logs, "trainer: preempted at")
    match = re.fullmatch(r"trainer: preempted at epoch=0 iter=(\d+), saved "
                         rf"{WORK_DIRS}/resnet18_1xb64_digits/(iter_\1\.pth)", line)
    assert match, line
    run_dir = work_dir / "resnet18_1xb64_digits"
    assert (run_dir / match.group(2)).is_file()
    assert (run_dir / "last_checkpoint").read_text().strip().endswith(match.group(2))
    podman("rm", name)


@pytest.mark.parametrize("env, args, message", [
    ({"PET_NNODES": "2", "PET_NODE_RANK": "1"}, [DIGITS],
     "PET_NNODES=2 but neither PET_MASTER_ADDR nor MASTER_ADDR is set: the nodes cannot meet"),
    ({"SLURM_PROCID": "4", "SLURM_NTASKS": "4", "SLURM_NODELIST": "n1"}, [DIGITS],
     "SLURM_PROCID=4 must be less than SLURM_NTASKS=4"),
    ({}, [DIGITS, "--launcher", "slurm"],
     "do not pass --launcher: the entrypoint chooses it from the environment"),
])
def test_entrypoint_refuses_an_inconsistent_environment(podman, trainer_image, env, args,
                                                        message):
    proc = podman.run_container(trainer_image, args, env=env, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        2, "", f"kctl-entrypoint: error: {message}\n")
