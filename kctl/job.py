"""The one job description every target renders from.

A :class:`Job` is built and validated once from the command line; backends (torchrun, PyTorchJob,
sbatch, ...) only turn it into text. All rank and world-size arithmetic lives in this module.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from kctl.errors import UsageError

#: The trainer's module: every launcher starts ``python -m trainer`` (or ``torchrun -m trainer``).
TRAINER_MODULE = "trainer"

#: Longest job name: a DNS-1035 label. A target may take fewer (its pods' and Services' names are
#: made from the job's).
MAX_JOB_NAME = 63


class Topology:
    """How many processes run where. Built once, then only read.

    Args:
        nodes: Number of machines (pods, Slurm nodes). At least 1.
        procs_per_node: Training processes per machine. At least 1.
        gpus_per_node: GPUs per machine; 0 means CPU-only training with gloo, in which case
            ``procs_per_node`` CPU processes run per machine.
    """

    __slots__ = ("nodes", "procs_per_node", "gpus_per_node")

    def __init__(self, nodes: int, procs_per_node: int, gpus_per_node: int):
        if nodes < 1:
            raise UsageError(f"nodes must be at least 1, got {nodes}")
        if procs_per_node < 1:
            raise UsageError(f"processes per node must be at least 1, got {procs_per_node}")
        if gpus_per_node < 0:
            raise UsageError(f"gpus must not be negative, got {gpus_per_node}")
        self.nodes = nodes
        self.procs_per_node = procs_per_node
        self.gpus_per_node = gpus_per_node

    @classmethod
    def per_node(cls, gpus: int, nodes: int = 1, cpu_procs: int = 1) -> "Topology":
        """One process per GPU, or ``cpu_procs`` CPU processes per node when ``gpus`` is 0."""
        if gpus < 0:
            raise UsageError(f"--gpus must not be negative, got {gpus}")
        return cls(nodes=nodes, procs_per_node=gpus if gpus else cpu_procs, gpus_per_node=gpus)

    @classmethod
    def from_total(cls, total_gpus: int, gpus_per_node: int) -> "Topology":
        """Spread ``total_gpus`` over nodes of ``gpus_per_node`` (Slurm's GPUS / GPUS_PER_NODE).

        Fewer GPUs than a node holds use one node with that many. A larger total must be a
        whole number of nodes, otherwise the ranks could not be laid out evenly.
        """
        if gpus_per_node < 1:
            raise UsageError(f"GPUS_PER_NODE must be at least 1, got {gpus_per_node}")
        if total_gpus < 1:
            raise UsageError(f"GPUS must be at least 1 here, got {total_gpus}")
        if total_gpus <= gpus_per_node:
            return cls(nodes=1, procs_per_node=total_gpus, gpus_per_node=total_gpus)
        if total_gpus % gpus_per_node:
            lower = total_gpus // gpus_per_node * gpus_per_node
            upper = lower + gpus_per_node
            raise UsageError(
                f"GPUS={total_gpus} is not a multiple of GPUS_PER_NODE={gpus_per_node}: "
                f"use {lower} or {upper}")
        return cls(nodes=math.ceil(total_gpus / gpus_per_node), procs_per_node=gpus_per_node,
                   gpus_per_node=gpus_per_node)

    @property
    def world_size(self) -> int:
        """Total number of training processes."""
        return self.nodes * self.procs_per_node

    @property
    def uses_gpus(self) -> bool:
        return self.gpus_per_node > 0

    @property
    def backend(self) -> str:
        """The torch.distributed backend the processes will use."""
        return "nccl" if self.uses_gpus else "gloo"

    def rank(self, node_rank: int, local_rank: int) -> int:
        """Global rank of process ``local_rank`` on node ``node_rank``."""
        if not 0 <= node_rank < self.nodes:
            raise UsageError(f"node rank {node_rank} is outside 0..{self.nodes - 1}")
        if not 0 <= local_rank < self.procs_per_node:
            raise UsageError(f"local rank {local_rank} is outside 0..{self.procs_per_node - 1}")
        return node_rank * self.procs_per_node + local_rank


class Rendezvous:
    """Where the processes of a multi-node job meet (torchrun's static rendezvous). Built once,
    then only read.

    Args:
        master_addr: Host of node rank 0.
        master_port: TCP port on it, 1-65535.
        node_rank: This machine's node rank.
    """

    __slots__ = ("master_addr", "master_port", "node_rank")

    def __init__(self, master_addr: str, master_port: int, node_rank: int = 0):
        check_port(master_port)
        if node_rank < 0:
            raise UsageError(f"node rank must not be negative, got {node_rank}")
        self.master_addr = master_addr
        self.master_port = master_port
        self.node_rank = node_rank


class Job:
    """A validated, target-independent training job. Built once, then only read.

    Args:
        config: The mmengine config file, an existing local path.
        topology: Processes and GPUs per node.
        name: Job name; see :func:`default_name`.
        work_dir: Where checkpoints go, as the trainer will see it. ``None`` lets the target choose
            (or the trainer's own default).
        trainer_args: Extra arguments for the trainer, passed through unchanged and last.
        rendezvous: For targets that start one node at a time (``kctl run``).
    """

    __slots__ = ("config", "topology", "name", "work_dir", "trainer_args", "rendezvous")

    def __init__(self, config: Path, topology: Topology, name: str, work_dir: str | None = None,
                 trainer_args: tuple[str, ...] = (), rendezvous: Rendezvous | None = None):
        if not config.is_file():
            raise UsageError(f"config file not found: {config}")
        if rendezvous is not None and rendezvous.node_rank >= topology.nodes:
            raise UsageError(f"--node-rank {rendezvous.node_rank} must be less than --nnodes "
                             f"{topology.nodes}")
        self.config = config
        self.topology = topology
        self.name = name
        self.work_dir = work_dir
        self.trainer_args = tuple(trainer_args)
        self.rendezvous = rendezvous

    def trainer_args_for(self, config: str, launcher: str, work_dir: str | None = None) -> list[str]:
        """Arguments after ``python -m trainer``: the trainer's command-line contract.

        ``--resume`` (auto) is always passed, so a restarted process continues from its last
        checkpoint; the user's own arguments come last and so win over ours.
        """
        args = [config, "--launcher", launcher]
        work_dir = work_dir if work_dir is not None else self.work_dir
        if work_dir is not None:
            args += ["--work-dir", work_dir]
        return args + ["--resume", *self.trainer_args]


def check_port(port: int, what: str = "port") -> int:
    """Return ``port`` if it is a valid TCP port, else raise a usage error naming ``what``
    (e.g. ``"PORT"`` or ``"--port"``)."""
    if not 1 <= port <= 65535:
        raise UsageError(f"{what} must be within 1-65535, got {port}")
    return port


def parse_int(value: str | int, what: str) -> int:
    """Parse an integer from a flag or environment variable, naming ``what`` on failure."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{what} must be a whole number, got {value!r}") from None


_DNS1035_BAD = re.compile(r"[^a-z0-9-]+")


def default_name(config: Path | str, limit: int = MAX_JOB_NAME) -> str:
    """A DNS-1035 label made from the config file's name, at most ``limit`` characters.

    ``configs/resnet/resnet18_1xb64_digits.py`` becomes ``resnet18-1xb64-digits``.
    """
    stem = Path(config).name
    if stem.endswith(".py"):
        stem = stem[:-3]
    name = _DNS1035_BAD.sub("-", stem.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if not name or not name[0].isalpha():
        name = "job-" + name
    return name[:limit].rstrip("-")


_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def check_dns1035(name: str, limit: int = MAX_JOB_NAME, what: str = "name") -> str:
    """Return ``name`` if it is a DNS-1035 label of at most ``limit`` characters."""
    if len(name) > limit:
        raise UsageError(f"{what} {name!r} is {len(name)} characters; at most {limit} are allowed")
    if not _DNS1035.match(name):
        raise UsageError(
            f"{what} {name!r} is not a DNS-1035 label: lowercase letters, digits and '-', "
            "starting with a letter and ending with a letter or digit")
    return name
