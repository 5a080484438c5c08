"""OpenMP's wait policy: PASSIVE only where the job puts more threads on a node than it has cores."""

import os

import pytest

from tests.support.trainer_runtime import lines_with, run_trainer, trainer_env, write_config
from trainer.threads import local_ranks, threads_per_rank, usable_cores, wait_policy


@pytest.mark.parametrize("launcher, environ, ranks", [
    ("none", {"LOCAL_WORLD_SIZE": "8"}, 1),  # a leftover variable of another launcher
    ("pytorch", {"LOCAL_WORLD_SIZE": "4"}, 4),
    ("pytorch", {}, 1),
    ("mpi", {"OMPI_COMM_WORLD_LOCAL_SIZE": "2"}, 2),
    ("slurm", {"SLURM_NTASKS_PER_NODE": "3", "SLURM_TASKS_PER_NODE": "8"}, 3),
    ("slurm", {"SLURM_TASKS_PER_NODE": "2(x3),1"}, 2),
    ("slurm", {"SLURM_TASKS_PER_NODE": "1,4(x2)"}, 4),
    ("slurm", {"SLURM_NTASKS_PER_NODE": "junk"}, 1),
])
def test_local_ranks(launcher, environ, ranks):
    assert local_ranks(launcher, environ) == ranks


@pytest.mark.parametrize("environ, threads", [
    ({"OMP_NUM_THREADS": "3"}, 3), ({"OMP_NUM_THREADS": "4,2"}, 4), ({"OMP_NUM_THREADS": "0"}, 16),
    ({"OMP_NUM_THREADS": "x"}, 16), ({}, 16),
])
def test_threads_per_rank(environ, threads):
    assert threads_per_rank(environ, cores=16) == threads


@pytest.mark.parametrize("launcher, environ, policy", [
    ("none", {}, None),  # one rank, a thread per core: OpenMP's default
    ("pytorch", {"LOCAL_WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}, None),  # torchrun's default
    ("pytorch", {"LOCAL_WORLD_SIZE": "2", "OMP_NUM_THREADS": "2"}, None),  # 4 threads, 4 cores
    ("pytorch", {"LOCAL_WORLD_SIZE": "2", "OMP_NUM_THREADS": "3"}, "PASSIVE"),
    ("pytorch", {"LOCAL_WORLD_SIZE": "2"}, "PASSIVE"),  # each rank a thread per core
    ("none", {"OMP_NUM_THREADS": "8"}, "PASSIVE"),
])
def test_wait_policy(launcher, environ, policy):
    assert wait_policy(launcher, environ, cores=4) == policy


def test_usable_cores_is_the_affinity_mask():
    assert usable_cores() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("extra, policy", [
    ({"OMP_NUM_THREADS": "1"}, "None"),
    ({"OMP_NUM_THREADS": str(usable_cores() + 1)}, "PASSIVE"),
    ({"OMP_NUM_THREADS": str(usable_cores() + 1), "OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE"),
])
def test_the_trainer_sets_the_policy_before_training(tmp_path, extra, policy):
    config = write_config(tmp_path / "cfg")
    code = ("import os, sys\nfrom trainer.cli import main\nrc = main([sys.argv[1], '--work-dir', sys.argv[2]])\n"
            "print('probe:', rc, os.environ.get('OMP_WAIT_POLICY'))\n")
    env = trainer_env(**extra)
    if "OMP_WAIT_POLICY" not in extra:
        env.pop("OMP_WAIT_POLICY", None)
    proc = run_trainer("-c", code, config, tmp_path / "wd", module=None, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert lines_with(proc.stdout, "probe:") == [f"probe: 0 {policy}"]
