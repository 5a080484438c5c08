"""Launchers (``none``, ``pytorch``, ``slurm``, ``mpi``): read the launch environment, start the process group.

mmengine's own ``init_dist`` calls ``torch.cuda.set_device`` unconditionally, which raises on a CPU-only
torch. The trainer therefore starts the process group itself before the Runner is built (the Runner
then skips its own initialisation): ``nccl`` with one GPU per rank where CUDA is visible, ``gloo``
otherwise.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from trainer.errors import UsageError

#: Environment variables each launcher needs (set by torchrun, srun and mpirun respectively).
REQUIRED_ENV = {
    "pytorch": ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"),
    "slurm": ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_NODELIST", "SLURM_LOCALID"),
    "mpi": ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
}
DEFAULT_MASTER_ADDR = "127.0.0.1"
DEFAULT_MASTER_PORT = 29500
#: Slurm ranks derive MASTER_PORT = SLURM_PORT_BASE + SLURM_JOB_ID % SLURM_PORT_SPAN (below the
#: Linux ephemeral range 32768-60999, and the same on every rank of the job).
SLURM_PORT_BASE = 20000
SLURM_PORT_SPAN = 10000

_flag_group = None  # a gloo group for any_rank() where the default group is not gloo (nccl)


@dataclass(frozen=True)
class LaunchInfo:
    """Where this process sits in the job.

    Args:
        launcher (str): ``none``, ``pytorch``, ``slurm`` or ``mpi``.
        rank (int): Global rank. Defaults to 0.
        local_rank (int): Rank on this node (the GPU index). Defaults to 0.
        world_size (int): Number of processes. Defaults to 1.
        master_addr (str, optional): Rendezvous host of rank 0. Defaults to None (not distributed).
        master_port (int, optional): Rendezvous port. Defaults to None (not distributed).
    """

    launcher: str
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    master_addr: str | None = None
    master_port: int | None = None

    @property
    def distributed(self) -> bool:
        return self.launcher != "none"


def read_launch_env(launcher: str, environ=os.environ) -> LaunchInfo:
    """Read the launch environment of ``launcher``.

    Args:
        launcher (str): ``none``, ``pytorch``, ``slurm`` or ``mpi``.
        environ (Mapping): The environment. Defaults to ``os.environ``.

    Returns:
        LaunchInfo: rank, local rank, world size and rendezvous address of this process.

    Raises:
        UsageError: A variable the launcher needs is missing or not a number (all are named).
    """
    if launcher == "none":
        return LaunchInfo("none")
    missing = [name for name in REQUIRED_ENV[launcher] if not environ.get(name)]
    if missing:
        raise UsageError(f"--launcher {launcher}: environment variable(s) not set: {', '.join(missing)}")
    if launcher == "pytorch":
        rank, local_rank, world_size = _ints(environ, "RANK", "LOCAL_RANK", "WORLD_SIZE")
        addr, port = environ["MASTER_ADDR"], _ints(environ, "MASTER_PORT")[0]
    elif launcher == "slurm":
        rank, world_size, local_rank = _ints(environ, "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")
        addr = environ.get("MASTER_ADDR") or expand_hostlist(environ["SLURM_NODELIST"])[0]
        port = slurm_master_port(environ)
    else:
        rank, world_size, local_rank = _ints(
            environ, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK")
        addr = environ.get("MASTER_ADDR") or DEFAULT_MASTER_ADDR
        port = _ints(environ, "MASTER_PORT")[0] if environ.get("MASTER_PORT") else DEFAULT_MASTER_PORT
    if not 0 <= rank < world_size:
        raise UsageError(f"--launcher {launcher}: rank {rank} is outside world size {world_size}")
    return LaunchInfo(launcher, rank, local_rank, world_size, addr, port)


def _ints(environ, *names: str) -> list[int]:
    values = []
    for name in names:
        try:
            values.append(int(environ[name]))
        except ValueError:
            raise UsageError(f"environment variable {name}={environ[name]!r} is not an integer") from None
    return values


def slurm_master_port(environ=os.environ) -> int:
    """``MASTER_PORT`` from the environment, else derived from ``SLURM_JOB_ID`` (else 29500)."""
    if environ.get("MASTER_PORT"):
        return _ints(environ, "MASTER_PORT")[0]
    if environ.get("SLURM_JOB_ID"):
        return SLURM_PORT_BASE + _ints(environ, "SLURM_JOB_ID")[0] % SLURM_PORT_SPAN
    return DEFAULT_MASTER_PORT


def expand_hostlist(hostlist: str) -> list[str]:
    """Expand a Slurm host list like ``scontrol show hostnames`` does.

    Examples:
        >>> expand_hostlist("node[01-03,07],gpu5")
        ['node01', 'node02', 'node03', 'node07', 'gpu5']
        >>> expand_hostlist("r[1-2]n[1-2]")
        ['r1n1', 'r1n2', 'r2n1', 'r2n2']

    Raises:
        UsageError: The host list is malformed.
    """
    hosts: list[str] = []
    depth, item = 0, ""
    for char in hostlist.strip() + ",":
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth not in (0, 1):
            raise UsageError(f"malformed Slurm host list: {hostlist!r}")
        if char == "," and depth == 0:
            if item:
                hosts.extend(_expand_item(item, hostlist))
            item = ""
        else:
            item += char
    if depth or not hosts:
        raise UsageError(f"malformed Slurm host list: {hostlist!r}")
    return hosts


def _expand_item(item: str, hostlist: str) -> list[str]:
    match = re.fullmatch(r"([^\[\]]*)\[([^\[\]]+)\](.*)", item)
    if not match:
        if "[" in item or "]" in item:
            raise UsageError(f"malformed Slurm host list: {hostlist!r}")
        return [item]
    prefix, ranges, rest = match.groups()
    numbers = []
    for part in ranges.split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()) or (dash and int(high) < int(low)):
            raise UsageError(f"malformed Slurm host list: {hostlist!r}")
        width = len(low)
        numbers += [f"{n:0{width}d}" for n in range(int(low), int(high if dash else low) + 1)]
    tails = _expand_item(rest, hostlist)
    return [prefix + number + tail for number in numbers for tail in tails]


def export_env(info: LaunchInfo, environ=os.environ) -> None:
    """Set ``RANK``/``LOCAL_RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT`` (what torch's ``env://``
    rendezvous and mmengine read) from ``info``."""
    environ.update(RANK=str(info.rank), LOCAL_RANK=str(info.local_rank), WORLD_SIZE=str(info.world_size),
                   MASTER_ADDR=info.master_addr, MASTER_PORT=str(info.master_port))


def choose_backend(requested: str | None, cuda: bool) -> str:
    """The process-group backend: the config's (``env_cfg.dist_cfg.backend``, default ``nccl``), but
    ``gloo`` where no CUDA device is visible and the config asks for ``nccl``."""
    requested = requested or "nccl"
    return "gloo" if requested == "nccl" and not cuda else requested


def init_process_group(info: LaunchInfo, dist_cfg: dict | None = None) -> tuple[str, str]:
    """Start the default process group of a distributed run (no-op for ``--launcher none``).

    Args:
        info (LaunchInfo): This process' place in the job.
        dist_cfg (dict, optional): ``env_cfg.dist_cfg`` of the config: ``backend`` (default ``nccl``)
            and keyword arguments of ``torch.distributed.init_process_group`` (``timeout`` in seconds).

    Returns:
        tuple[str, str]: ``(backend, device)``, e.g. ``("gloo", "cpu")``, ``("nccl", "cuda:1")`` or
        ``("none", "cuda:0")`` when not distributed.
    """
    import datetime

    import torch

    cuda = torch.cuda.is_available()
    device = f"cuda:{info.local_rank if info.distributed else 0}" if cuda else "cpu"
    if not info.distributed:
        return "none", device
    dist_cfg = dict(dist_cfg or {})
    requested = dist_cfg.pop("backend", None) or "nccl"
    backend = choose_backend(requested, cuda)
    if backend != requested:
        print(f"trainer: no CUDA device visible: using backend={backend} instead of {requested}", flush=True)
    if cuda:
        torch.cuda.set_device(info.local_rank)
    if dist_cfg.get("timeout") is not None:
        dist_cfg["timeout"] = datetime.timedelta(seconds=dist_cfg["timeout"])
    export_env(info)
    torch.distributed.init_process_group(backend=backend, init_method="env://", rank=info.rank,
                                         world_size=info.world_size, **dist_cfg)
    global _flag_group
    _flag_group = None if backend == "gloo" else torch.distributed.new_group(backend="gloo")
    return backend, device


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` is true on any rank: the same answer on every rank, which must all call this
    together (an all-reduce of one integer over gloo, ~0.2 ms on one host). Just ``flag`` when not
    distributed.
    """
    import torch

    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return flag
    value = torch.tensor([int(flag)], dtype=torch.int32)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX, group=_flag_group)
    return bool(value.item())


def leave_together(backend: str) -> None:
    """Wait for every rank at the end of a finished run, before the process group is destroyed.

    The last collective of a run (mmengine's broadcast of the metrics at the end of validation) ends
    about 2 ms before the interpreter shuts down. gloo's worker thread then still has to release that
    broadcast's tensors, which takes the GIL; when the main thread does not let go of the GIL before
    shutdown, the worker thread dies trying and the process aborts ("terminate called without an
    active exception", exit -6 after training had finished: about one two-rank CPU run in 25). A
    barrier waits with the GIL released, so the worker thread is done first; and no rank closes its
    connections while a peer still talks to it.
    """
    import torch

    kwargs = {"device_ids": [torch.cuda.current_device()]} if backend == "nccl" else {}
    torch.distributed.barrier(**kwargs)
