"""OpenMP's wait policy, chosen before torch loads its OpenMP runtime (it reads it once).

By default idle OpenMP threads spin for a while before they sleep: the fastest choice when every
thread has a core of its own (measured here: ``PASSIVE`` made a ResNet-18 CPU step about 20 % slower
on an idle 2-core machine). When the job itself puts more threads on a node than the node has
cores (several ranks, each with several OpenMP threads), spinning threads take the cores from the
threads doing the work: a step was measured 15x slower (3.0 s against 0.21 s with ``PASSIVE``).
So the trainer sets ``OMP_WAIT_POLICY=PASSIVE`` only then; a value in the environment always wins
(set ``PASSIVE`` yourself where other jobs share the cores).
"""

from __future__ import annotations

import os
import re

#: Where each launcher says how many ranks run on this node.
LOCAL_SIZE_ENV = {"pytorch": "LOCAL_WORLD_SIZE", "slurm": "SLURM_NTASKS_PER_NODE",
                  "mpi": "OMPI_COMM_WORLD_LOCAL_SIZE"}


def _positive_int(value) -> int | None:
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if number > 0 else None


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a container's or a Slurm step's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def local_ranks(launcher: str, environ=os.environ) -> int:
    """Ranks of this job on this node, from the launcher's environment; 1 where it does not say.
    For Slurm without ``--ntasks-per-node``, the largest count of ``SLURM_TASKS_PER_NODE``
    (``2(x3),1``: 2)."""
    name = LOCAL_SIZE_ENV.get(launcher)
    count = _positive_int(environ.get(name, "")) if name else None
    if count is None and launcher == "slurm":
        counts = [int(n) for n in re.findall(r"(\d+)(?:\(x\d+\))?", environ.get("SLURM_TASKS_PER_NODE", ""))]
        count = max(counts, default=None)
    return count or 1


def threads_per_rank(environ=os.environ, cores: int | None = None) -> int:
    """OpenMP threads of each rank: ``OMP_NUM_THREADS`` (its first level), else one per core."""
    first = environ.get("OMP_NUM_THREADS", "").split(",")[0]
    return _positive_int(first) or cores or usable_cores()


def wait_policy(launcher: str, environ=os.environ, cores: int | None = None) -> str | None:
    """``'PASSIVE'`` when ranks on this node x threads per rank exceed its cores, else None (OpenMP's
    default). ``cores`` defaults to :func:`usable_cores`."""
    cores = cores or usable_cores()
    if local_ranks(launcher, environ) * threads_per_rank(environ, cores) > cores:
        return "PASSIVE"
    return None
