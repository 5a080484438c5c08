"""image/entrypoint.py: the launcher it picks for each environment, and the exact command."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "image" / "entrypoint.py"
PY = sys.executable
TORCHRUN = [PY, "-m", "kctl.backends.local"]  # torchrun, ending with its ranks' status


def _load():
    spec = importlib.util.spec_from_file_location("kctl_image_entrypoint", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


entrypoint = _load()

PYTORCHJOB_WORKER = {  # what the training operator injects into worker-0 of a 2x8 job
    "PET_NNODES": "2", "PET_NPROC_PER_NODE": "8", "PET_NODE_RANK": "1",
    "PET_MASTER_ADDR": "digits-master-0", "PET_MASTER_PORT": "23456",
    "MASTER_ADDR": "digits-master-0", "MASTER_PORT": "23456", "WORLD_SIZE": "16", "RANK": "1",
}


@pytest.mark.parametrize("env, line, command", [
    pytest.param(
        PYTORCHJOB_WORKER,
        "launcher=pytorch nodes=2 procs_per_node=8 node_rank=1 master=digits-master-0:23456",
        [*TORCHRUN, "--nnodes", "2", "--nproc-per-node", "8", "--node-rank", "1",
         "--master-addr", "digits-master-0", "--master-port", "23456",
         "-m", "trainer", "cfg.py", "--launcher", "pytorch", "--resume", "--amp"],
        id="pytorchjob-worker"),
    pytest.param(
        {"PET_NNODES": "1", "PET_NPROC_PER_NODE": "auto", "PET_NODE_RANK": "0",
         "PET_MASTER_ADDR": "j-master-0", "PET_MASTER_PORT": "23456"},
        "launcher=pytorch nodes=1 procs_per_node=auto node_rank=0 master=j-master-0:23456",
        [*TORCHRUN, "--nnodes", "1", "--nproc-per-node", "auto", "--node-rank", "0",
         "--master-addr", "j-master-0", "--master-port", "23456",
         "-m", "trainer", "cfg.py", "--launcher", "pytorch", "--resume", "--amp"],
        id="pytorchjob-master-only-auto"),
    pytest.param(
        {"PET_NPROC_PER_NODE": "2"},
        "launcher=pytorch nodes=1 procs_per_node=2 node_rank=0 master=127.0.0.1:29500",
        [*TORCHRUN, "--nnodes", "1", "--nproc-per-node", "2", "--node-rank", "0",
         "--master-addr", "127.0.0.1", "--master-port", "29500",
         "-m", "trainer", "cfg.py", "--launcher", "pytorch", "--resume", "--amp"],
        id="pytorch-one-node-defaults"),
    pytest.param(
        {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_NNODES": "2", "SLURM_LOCALID": "1",
         "SLURM_NODELIST": "gpu[01-02]", "SLURM_JOB_ID": "42"},
        "launcher=slurm nodes=2 procs_per_node=4 rank=5 local_rank=1 nodelist=gpu[01-02]",
        [PY, "-m", "trainer", "cfg.py", "--launcher", "slurm", "--resume", "--amp"],
        id="slurm"),
    pytest.param(
        {"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4",
         "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "2",
         "MASTER_ADDR": "node1", "MASTER_PORT": "29600"},
        "launcher=mpi nodes=2 procs_per_node=2 rank=3 local_rank=1 master=node1:29600",
        [PY, "-m", "trainer", "cfg.py", "--launcher", "mpi", "--resume", "--amp"],
        id="openmpi"),
    pytest.param(
        {"HOME": "/home/trainer"},
        "launcher=none nodes=1 procs_per_node=1 rank=0",
        [PY, "-m", "trainer", "cfg.py", "--launcher", "none", "--resume", "--amp"],
        id="single-process"),
])
def test_detects_launcher_and_builds_the_exact_command(env, line, command):
    built, topology, added = entrypoint.build(["cfg.py", "--amp"], env)
    assert topology == f"kctl-entrypoint: {line}"
    assert built == command
    # torchrun computes the ranks of identical nodes: none can come from a stale store
    expected = {"TORCH_ELASTIC_WORKER_IDENTICAL": "1"} if built[:3] == TORCHRUN else {}
    assert added == expected


def test_pytorchjob_wins_over_slurm_variables():
    """A PyTorchJob pod on a node that also runs slurmd still starts torchrun."""
    env = {**PYTORCHJOB_WORKER, "SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_NODELIST": "n"}
    assert entrypoint.build(["cfg.py"], env)[0][:3] == TORCHRUN


@pytest.mark.parametrize("env, message", [
    ({"PET_NNODES": "2", "PET_NODE_RANK": "1"},
     "PET_NNODES=2 but neither PET_MASTER_ADDR nor MASTER_ADDR is set: the nodes cannot meet"),
    ({**PYTORCHJOB_WORKER, "PET_NODE_RANK": "2"}, "PET_NODE_RANK=2 must be less than PET_NNODES=2"),
    ({**PYTORCHJOB_WORKER, "PET_NNODES": "0"}, "PET_NNODES=0 must be at least 1"),
    ({**PYTORCHJOB_WORKER, "PET_NNODES": "two"}, "PET_NNODES='two' is not a whole number"),
    ({**PYTORCHJOB_WORKER, "PET_NNODES": "1:4"},
     "PET_NNODES=1:4 is an elastic range; this image runs static jobs (kctl renders "
     "PyTorchJobs without elasticPolicy)"),
    ({**PYTORCHJOB_WORKER, "PET_NPROC_PER_NODE": "0"},
     "PET_NPROC_PER_NODE='0' must be a whole number of at least 1 or one of auto, cpu, gpu, xpu"),
    ({**PYTORCHJOB_WORKER, "PET_MASTER_PORT": "70000"},
     "PET_MASTER_PORT=70000 is not a TCP port (1-65535)"),
    ({"SLURM_PROCID": "0", "SLURM_NODELIST": "n1"}, "SLURM_NTASKS is not set"),
    ({"SLURM_PROCID": "4", "SLURM_NTASKS": "4", "SLURM_NODELIST": "n1"},
     "SLURM_PROCID=4 must be less than SLURM_NTASKS=4"),
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "2"},
     "SLURM_PROCID is set but SLURM_NODELIST is not: the master node is unknown"),
    ({"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2"},
     "OMPI_COMM_WORLD_SIZE=2 but MASTER_ADDR is not set: the ranks cannot meet"),
    ({"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "2", "MASTER_ADDR": "n1"},
     "OMPI_COMM_WORLD_RANK=2 must be less than OMPI_COMM_WORLD_SIZE=2"),
])
def test_inconsistent_environment_is_one_line_exit_2(env, message, capsys):
    assert entrypoint.main(["cfg.py"], env) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"kctl-entrypoint: error: {message}\n"


def test_launcher_is_not_for_the_user_to_pass(capsys):
    assert entrypoint.main(["cfg.py", "--launcher=slurm"], {}) == 2
    assert "do not pass --launcher" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["--print"], ["--amp", "cfg.py"]])
def test_config_is_required(argv, capsys):
    assert entrypoint.main(argv, {}) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the first argument must be the config file" in err


def _run_script(args, env):
    return subprocess.run([PY, str(SCRIPT), *args], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], **env}, timeout=60)


@pytest.mark.parametrize("args, env", [
    (["--print", "cfg.py", "--amp"], PYTORCHJOB_WORKER),
    (["cfg.py", "--amp"], {**PYTORCHJOB_WORKER, "KCTL_ENTRYPOINT_PRINT": "1"}),
])
def test_print_switch_prints_topology_then_command(args, env):
    proc = _run_script(args, env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "kctl-entrypoint: launcher=pytorch nodes=2 procs_per_node=8 node_rank=1 "
        "master=digits-master-0:23456",
        f"TORCH_ELASTIC_WORKER_IDENTICAL=1 {PY} -m kctl.backends.local --nnodes 2 "
        "--nproc-per-node 8 --node-rank 1 --master-addr digits-master-0 --master-port 23456 -m trainer cfg.py "
        "--launcher pytorch --resume --amp",
    ]


def test_deciding_never_imports_torch():
    probe = ("import runpy, sys\n"
             f"sys.argv = ['kctl-entrypoint', '--print', 'cfg.py']\n"
             "try:\n"
             f"    runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
             "except SystemExit as exit:\n"
             "    assert exit.code == 0, exit.code\n"
             "print('torch' in sys.modules, 'trainer' in sys.modules)\n")
    proc = subprocess.run([PY, "-c", probe], capture_output=True, text=True, check=True)
    assert proc.stdout.splitlines()[-1] == "False False"


def test_real_cpu_training_through_the_entrypoint(tmp_path):
    """No launcher in the environment: one process trains one tiny epoch with --resume."""
    config = ROOT / "configs" / "resnet" / "resnet18_1xb64_digits.py"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [PY, str(SCRIPT), str(config), "--work-dir", "wd", "--cfg-options",
         "train_cfg.max_epochs=1", "train_dataloader.dataset.indices=128",
         "val_dataloader.dataset.indices=64"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=480)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "kctl-entrypoint: launcher=none nodes=1 procs_per_node=1 rank=0"
    assert ("trainer: launcher=none rank=0 local_rank=0 world_size=1 backend=none device=cpu"
            in lines)
    assert any(line.startswith("trainer: rank=0 final_weights_sha256=") for line in lines)
    assert (tmp_path / "wd" / "epoch_1.pth").is_file()
    assert (tmp_path / "wd" / "last_checkpoint").is_file()
