#!/usr/bin/env python
"""The trainer image's entrypoint: ``kctl-entrypoint [--print] CONFIG [TRAINER_ARGS...]``.

It looks at the environment to see what started the container and runs the trainer the way
that launcher expects, always with ``--resume`` so a restarted pod or task continues from its
last checkpoint:

- Kubeflow PyTorchJob (any ``PET_*`` rendezvous variable): ``torchrun ... -m trainer CONFIG
  --launcher pytorch``, one torchrun per pod, with the operator's node count, processes per
  node, node rank and master, and ``TORCH_ELASTIC_WORKER_IDENTICAL=1``: torchrun computes the
  ranks of these identical nodes itself, so a pod restarted before the old master's torchrun
  has exited cannot take stale ranks from that master's rendezvous store and hang the job.
- Slurm (``SLURM_PROCID``): one trainer per task, ``--launcher slurm``.
- Open MPI (``OMPI_COMM_WORLD_RANK``): one trainer per rank, ``--launcher mpi``.
- Anything else: one process, ``--launcher none``.

Before starting it prints the detected topology as one line; an inconsistent environment is one
``kctl-entrypoint: error: ...`` line and exit code 2. ``--print`` (or ``KCTL_ENTRYPOINT_PRINT=1``)
prints the command instead of running it. Standard library only: deciding must not import torch.
"""

from __future__ import annotations

import os
import shlex
import sys

PROG = "kctl-entrypoint"
USAGE = f"usage: {PROG} [--print] CONFIG [TRAINER_ARGS...]"
PET_VARS = ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR",
            "PET_MASTER_PORT")
#: torchrun's own words for "as many processes as devices".
NPROC_WORDS = ("auto", "cpu", "gpu", "xpu")
DEFAULT_PORT = 29500
#: Added to torchrun's environment in a PyTorchJob pod (see the module docstring).
TORCHRUN_ENV = {"TORCH_ELASTIC_WORKER_IDENTICAL": "1"}


class EnvError(Exception):
    """The environment does not describe a job that can start."""


def _int(env: dict, name: str, default: int | None = None, low: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        if default is None:
            raise EnvError(f"{name} is not set")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise EnvError(f"{name}={raw!r} is not a whole number") from None
    if value < low:
        raise EnvError(f"{name}={value} must be at least {low}")
    return value


def _port(env: dict, *names: str) -> int:
    for name in names:
        if env.get(name):
            port = _int(env, name)
            if not 1 <= port <= 65535:
                raise EnvError(f"{name}={port} is not a TCP port (1-65535)")
            return port
    return DEFAULT_PORT


def _below(env: dict, rank_name: str, rank: int, size_name: str, size: int) -> None:
    if rank >= size:
        raise EnvError(f"{rank_name}={rank} must be less than {size_name}={size}")


def _pytorchjob(env: dict) -> tuple[str, list[str], str, dict]:
    raw_nodes = env.get("PET_NNODES", "")
    if ":" in raw_nodes:
        raise EnvError(f"PET_NNODES={raw_nodes} is an elastic range; this image runs static "
                       "jobs (kctl renders PyTorchJobs without elasticPolicy)")
    nodes = _int(env, "PET_NNODES", default=1, low=1)
    node_rank = _int(env, "PET_NODE_RANK", default=0)
    _below(env, "PET_NODE_RANK", node_rank, "PET_NNODES", nodes)
    nproc = env.get("PET_NPROC_PER_NODE") or "1"
    if nproc not in NPROC_WORDS and not (nproc.isdigit() and int(nproc) >= 1):
        raise EnvError(f"PET_NPROC_PER_NODE={nproc!r} must be a whole number of at least 1 or "
                       f"one of {', '.join(NPROC_WORDS)}")
    addr = env.get("PET_MASTER_ADDR") or env.get("MASTER_ADDR")
    if not addr:
        if nodes > 1:
            raise EnvError(f"PET_NNODES={nodes} but neither PET_MASTER_ADDR nor MASTER_ADDR is "
                           "set: the nodes cannot meet")
        addr = "127.0.0.1"
    port = _port(env, "PET_MASTER_PORT", "MASTER_PORT")
    # torchrun through kctl's launcher, as the image's `torchrun` (image/torchrun.sh): the
    # container ends with its ranks' status (143 after SIGTERM), not torchrun's 1
    launch = [sys.executable, "-m", "kctl.backends.local", "--nnodes", str(nodes),
              "--nproc-per-node", nproc, "--node-rank", str(node_rank), "--master-addr", addr,
              "--master-port", str(port), "-m", "trainer"]
    topology = (f"nodes={nodes} procs_per_node={nproc} node_rank={node_rank} "
                f"master={addr}:{port}")
    return "pytorch", launch, topology, TORCHRUN_ENV


def _slurm(env: dict) -> tuple[str, list[str], str, dict]:
    rank = _int(env, "SLURM_PROCID")
    tasks = _int(env, "SLURM_NTASKS", low=1)
    _below(env, "SLURM_PROCID", rank, "SLURM_NTASKS", tasks)
    nodes = _int(env, "SLURM_NNODES", default=_int(env, "SLURM_JOB_NUM_NODES", default=1), low=1)
    local_rank = _int(env, "SLURM_LOCALID", default=0)
    nodelist = env.get("SLURM_NODELIST") or env.get("SLURM_JOB_NODELIST")
    if not nodelist:
        raise EnvError("SLURM_PROCID is set but SLURM_NODELIST is not: the master node is unknown")
    per_node = str(tasks // nodes) if tasks % nodes == 0 else f"{tasks}/{nodes}"
    topology = (f"nodes={nodes} procs_per_node={per_node} rank={rank} local_rank={local_rank} "
                f"nodelist={nodelist}")
    return "slurm", [sys.executable, "-m", "trainer"], topology, {}


def _mpi(env: dict) -> tuple[str, list[str], str, dict]:
    rank = _int(env, "OMPI_COMM_WORLD_RANK")
    size = _int(env, "OMPI_COMM_WORLD_SIZE", low=1)
    _below(env, "OMPI_COMM_WORLD_RANK", rank, "OMPI_COMM_WORLD_SIZE", size)
    local_rank = _int(env, "OMPI_COMM_WORLD_LOCAL_RANK", default=0)
    local_size = _int(env, "OMPI_COMM_WORLD_LOCAL_SIZE", default=size, low=1)
    _below(env, "OMPI_COMM_WORLD_LOCAL_RANK", local_rank, "OMPI_COMM_WORLD_LOCAL_SIZE", local_size)
    addr = env.get("MASTER_ADDR")
    if not addr:
        if size > 1:
            raise EnvError(f"OMPI_COMM_WORLD_SIZE={size} but MASTER_ADDR is not set: "
                           "the ranks cannot meet")
        addr = "127.0.0.1"
    port = _port(env, "MASTER_PORT")
    nodes = -(-size // local_size)
    topology = (f"nodes={nodes} procs_per_node={local_size} rank={rank} local_rank={local_rank} "
                f"master={addr}:{port}")
    return "mpi", [sys.executable, "-m", "trainer"], topology, {}


def _single(env: dict) -> tuple[str, list[str], str, dict]:
    return "none", [sys.executable, "-m", "trainer"], "nodes=1 procs_per_node=1 rank=0", {}


def detect(env: dict) -> tuple[str, list[str], str, dict]:
    """``(launcher, command prefix up to the trainer module, topology words, variables to add
    to the environment)`` for ``env``."""
    if any(env.get(name) for name in PET_VARS):
        return _pytorchjob(env)
    if env.get("SLURM_PROCID"):
        return _slurm(env)
    if env.get("OMPI_COMM_WORLD_RANK"):
        return _mpi(env)
    return _single(env)


def build(argv: list[str], env: dict) -> tuple[list[str], str, dict]:
    """The full command, the one topology line and the variables the command gets on top of
    ``env``, for ``entrypoint argv`` in ``env``."""
    config, trainer_args = argv[0], argv[1:]
    if any(a == "--launcher" or a.startswith("--launcher=") for a in trainer_args):
        raise EnvError("do not pass --launcher: the entrypoint chooses it from the environment")
    launcher, prefix, topology, added = detect(env)
    command = [*prefix, config, "--launcher", launcher, "--resume", *trainer_args]
    return command, f"{PROG}: launcher={launcher} {topology}", added


def main(argv: list[str] | None = None, env: dict | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ if env is None else env)
    print_only = env.get("KCTL_ENTRYPOINT_PRINT", "") not in ("", "0")
    if argv[:1] == ["--print"]:
        print_only, argv = True, argv[1:]
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        print(__doc__.split("\n\n", 1)[1].strip())
        return 0
    if not argv or argv[0].startswith("-"):
        sys.stderr.write(f"{PROG}: error: the first argument must be the config file ({USAGE})\n")
        return 2
    try:
        command, topology, added = build(argv, env)
    except EnvError as err:
        sys.stderr.write(f"{PROG}: error: {err}\n")
        return 2
    print(topology, flush=True)
    if print_only:
        assignments = [f"{name}={shlex.quote(value)}" for name, value in added.items()]
        print(" ".join([*assignments, shlex.join(command)]), flush=True)
        return 0
    os.execve(command[0], command, {**env, **added})
    return 1  # not reached: execve replaces this process


if __name__ == "__main__":
    sys.exit(main())
