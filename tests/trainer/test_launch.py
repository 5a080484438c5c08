"""Launch environments (trainer.launch), and the main job in 2 processes under each launcher on the CPU (gloo)."""

import subprocess
import sys

import pytest

from tests.support.trainer_runtime import REPO, free_port, lines_with, trainer_env
from trainer.errors import UsageError
from trainer.launch import (SLURM_PORT_BASE, SLURM_PORT_SPAN, LaunchInfo, choose_backend, expand_hostlist,
                            read_launch_env, slurm_master_port)


@pytest.mark.parametrize("hostlist, hosts", [
    ("localhost", ["localhost"]),
    ("node[01-03,07],gpu5", ["node01", "node02", "node03", "node07", "gpu5"]),
    ("a1,b[8-10]", ["a1", "b8", "b9", "b10"]),
    ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
    ("cn[009-011].cluster", ["cn009.cluster", "cn010.cluster", "cn011.cluster"]),
])
def test_expand_hostlist(hostlist, hosts):
    assert expand_hostlist(hostlist) == hosts


@pytest.mark.parametrize("hostlist", ["node[1-", "node]1[", "node[a-b]", "node[3-1]", "", "n[[1]]"])
def test_malformed_hostlist(hostlist):
    with pytest.raises(UsageError, match="Slurm host list"):
        expand_hostlist(hostlist)


def test_none_launcher_needs_nothing():
    assert read_launch_env("none", {}) == LaunchInfo("none")


def test_pytorch_launcher_reads_torchrun_env():
    env = dict(RANK="3", LOCAL_RANK="1", WORLD_SIZE="4", MASTER_ADDR="10.0.0.1", MASTER_PORT="29400")
    assert read_launch_env("pytorch", env) == LaunchInfo("pytorch", 3, 1, 4, "10.0.0.1", 29400)


SLURM = dict(SLURM_PROCID="5", SLURM_NTASKS="8", SLURM_NODELIST="gpu[07-08]", SLURM_LOCALID="1",
             SLURM_JOB_ID="123456")


def test_slurm_launcher_first_host_and_port_from_job_id():
    info = read_launch_env("slurm", SLURM)
    assert info == LaunchInfo("slurm", 5, 1, 8, "gpu07", 20000 + 123456 % 10000)
    assert not 32768 <= info.master_port <= 60999  # outside the ephemeral range


def test_slurm_launcher_respects_master_env():
    info = read_launch_env("slurm", dict(SLURM, MASTER_ADDR="head", MASTER_PORT="29999"))
    assert (info.master_addr, info.master_port) == ("head", 29999)


def test_slurm_port_without_job_id():
    assert slurm_master_port({}) == 29500


def test_mpi_launcher_defaults():
    env = dict(OMPI_COMM_WORLD_RANK="1", OMPI_COMM_WORLD_SIZE="2", OMPI_COMM_WORLD_LOCAL_RANK="0")
    assert read_launch_env("mpi", env) == LaunchInfo("mpi", 1, 0, 2, "127.0.0.1", 29500)
    info = read_launch_env("mpi", dict(env, MASTER_ADDR="h0", MASTER_PORT="1234"))
    assert (info.master_addr, info.master_port) == ("h0", 1234)


def test_missing_env_names_every_missing_variable():
    with pytest.raises(UsageError, match="not set: SLURM_NTASKS, SLURM_LOCALID$"):
        read_launch_env("slurm", dict(SLURM_PROCID="0", SLURM_NODELIST="n1"))


def test_non_numeric_env_and_rank_outside_world():
    with pytest.raises(UsageError, match="RANK='x' is not an integer"):
        read_launch_env("pytorch", dict(RANK="x", LOCAL_RANK="0", WORLD_SIZE="2", MASTER_ADDR="h", MASTER_PORT="1"))
    with pytest.raises(UsageError, match="rank 2 is outside world size 2"):
        read_launch_env("pytorch", dict(RANK="2", LOCAL_RANK="0", WORLD_SIZE="2", MASTER_ADDR="h", MASTER_PORT="1"))


@pytest.mark.parametrize("requested, cuda, backend", [
    (None, False, "gloo"), ("nccl", False, "gloo"), ("gloo", False, "gloo"), (None, True, "nccl"),
    ("nccl", True, "nccl"), ("gloo", True, "gloo"),
])
def test_backend_choice(requested, cuda, backend):
    assert choose_backend(requested, cuda) == backend


# ---- real runs: 2 processes on this machine, CPU only -------------------------------------------

def _start(args, env, log, cwd):
    return subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            text=True)


def _finish(procs, logs, timeout=300):
    for proc in procs:
        proc.wait(timeout=timeout)
    outputs = [log.read_text() for log in logs]
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-3000:]
    return "\n".join(outputs)


def _check_world_of_two(output, launcher):
    """Both ranks started with world size 2 on gloo and ended with the same weights; returns their digest."""
    for rank in (0, 1):
        assert lines_with(output, f"trainer: launcher={launcher} rank={rank} local_rank={rank} world_size=2 "
                          "backend=gloo device=cpu")
    assert len(lines_with(output, "using backend=gloo instead of nccl")) == 2
    assert "Epoch(train) [2][1/1]" in output  # 128 samples / (2 ranks x batch 64): the data is sharded
    assert len(lines_with(output, "accuracy/top1")) == 2  # rank 0 logs the validation of both epochs
    finals = lines_with(output, "final_weights_sha256=")
    assert sorted(line.split()[1] for line in finals) == ["rank=0", "rank=1"]
    digests = {line.split("final_weights_sha256=")[1] for line in finals}
    assert len(digests) == 1
    return digests.pop()


#: The main job (ResNet-18 on digits), cut to 2 epochs of 128 training and 64 validation images.
DIGITS = [REPO / "configs" / "resnet" / "resnet18_1xb64_digits.py", "--cfg-options", "train_cfg.max_epochs=2",
          "train_dataloader.dataset.indices=128", "val_dataloader.dataset.indices=64"]


def _spawn(tmp, launcher, envs, prefix=()):
    """Start one process per env (``python [prefix] -m trainer DIGITS --launcher L``), wait, return output.

    Each process runs in a working directory of its own, as on separate hosts (only work_dir is shared).
    """
    procs, logs = [], []
    for i, env in enumerate(envs):
        logs.append(tmp / f"proc{i}.log")
        (tmp / f"host{i}").mkdir()
        with open(logs[-1], "w") as out:
            procs.append(_start([*prefix, "-m", "trainer", *DIGITS, "--launcher", launcher, "--work-dir",
                                 tmp / "wd"], env, out, cwd=tmp / f"host{i}"))
    return _finish(procs, logs)


@pytest.fixture(scope="module")
def torchrun_output(tmp_path_factory):
    port = free_port()
    return _spawn(tmp_path_factory.mktemp("torchrun"), "pytorch", [trainer_env()],
                  prefix=("-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port)))


@pytest.fixture(scope="module")
def slurm_output(tmp_path_factory):
    job_id = free_port(SLURM_PORT_BASE, SLURM_PORT_BASE + SLURM_PORT_SPAN) - SLURM_PORT_BASE  # port from job id
    envs = [trainer_env(SLURM_PROCID=str(r), SLURM_LOCALID=str(r), SLURM_NTASKS="2", SLURM_NODELIST="localhost",
                        SLURM_JOB_ID=str(job_id)) for r in (0, 1)]
    return _spawn(tmp_path_factory.mktemp("slurm"), "slurm", envs)


@pytest.fixture(scope="module")
def mpi_output(tmp_path_factory):
    port = free_port()
    envs = [trainer_env(OMPI_COMM_WORLD_RANK=str(r), OMPI_COMM_WORLD_LOCAL_RANK=str(r), OMPI_COMM_WORLD_SIZE="2",
                        MASTER_PORT=str(port)) for r in (0, 1)]
    return _spawn(tmp_path_factory.mktemp("mpi"), "mpi", envs)


def test_pytorch_launcher_under_torchrun(torchrun_output):
    _check_world_of_two(torchrun_output, "pytorch")


def test_slurm_launcher_with_srun_env(slurm_output):
    _check_world_of_two(slurm_output, "slurm")


def test_mpi_launcher_with_openmpi_env(mpi_output):
    _check_world_of_two(mpi_output, "mpi")


def test_launchers_train_the_same_weights(torchrun_output, slurm_output, mpi_output):
    digests = {_check_world_of_two(out, name) for out, name in
               [(torchrun_output, "pytorch"), (slurm_output, "slurm"), (mpi_output, "mpi")]}
    assert len(digests) == 1
