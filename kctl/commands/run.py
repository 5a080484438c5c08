"""``kctl run CONFIG --gpus N``: train here with torchrun, like MMPretrain's dist_train.sh.

NNODES, NODE_RANK, PORT and MASTER_ADDR mean what they mean to dist_train.sh (an empty value counts
as unset); flags win over them. Differences, both deliberate:

* One node and no port given: torchrun ``--standalone`` picks a free port, so jobs started side by
  side never collide (dist_train.sh would use 29500 for all). On several nodes PORT defaults to
  29500 as before.
* MASTER_ADDR defaults to 127.0.0.1 on one node and on node rank 0 only; any other node must be told
  where node rank 0 is (dist_train.sh would silently wait for a rendezvous on itself).

Where no GPU is visible (``CUDA_VISIBLE_DEVICES=-1`` or empty, or no NVIDIA GPU present),
``--gpus N`` starts N CPU processes that train with gloo. ``--gpus 0`` is an error: use
``CUDA_VISIBLE_DEVICES=-1`` to train on the CPU on a machine with GPUs.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

from kctl.backends import load_backend
from kctl.backends.local import visible_gpus
from kctl.configfiles import resolve_config
from kctl.errors import KctlError, UsageError
from kctl.job import Job, Rendezvous, Topology, check_port, default_name, parse_int

NAME = "run"
HELP = "Train on this machine with torchrun (one node of a multi-node job), like dist_train.sh"
ORDER = 10
EXAMPLES = """\
Environment (as in MMPretrain's tools/dist_train.sh; flags win):
  NNODES, NODE_RANK, PORT, MASTER_ADDR   same as --nnodes, --node-rank, --port, --master-addr
  CUDA_VISIBLE_DEVICES=-1                train with CPU processes (gloo) even where there are GPUs

Restarts: --max-restarts K lets torchrun start every rank again after one fails (crash, kill, or
exit 143), up to K times; each start resumes from the last checkpoint in the work dir (--resume).
One node without --port only (torchrun's static rendezvous cannot restart); default 0.

Exit status: 0 when every rank finished; else the first failing rank's (128+N if it was killed by
signal N); 130 or 143 after Ctrl-C or SIGTERM (every rank is stopped); 2 on bad usage. 143 from
the trainer means "stopped, checkpoint saved": run the same command again and it resumes.

Examples:
  # Train on 2 GPUs of this machine (2 CPU processes with gloo where there is no GPU)
  kctl run configs/resnet/resnet18_1xb64_digits.py --gpus 2

  # Pass arguments to the trainer (python -m trainer) after --
  kctl run configs/resnet/resnet18_1xb64_digits.py --gpus 2 -- --cfg-options train_cfg.max_epochs=1

  # Survive up to 3 rank failures: torchrun restarts the ranks, they resume from the checkpoint
  kctl run configs/resnet/resnet18_1xb64_digits.py --gpus 2 --max-restarts 3

  # Print the torchrun command instead of running it
  kctl run configs/resnet/resnet18_1xb64_digits.py --gpus 2 --dry-run

  # Two machines with 8 GPUs each: run this on the first (10.0.0.1) ...
  kctl run CONFIG --gpus 8 --nnodes 2 --node-rank 0 --master-addr 10.0.0.1 --port 29500
  # ... and this on the second
  kctl run CONFIG --gpus 8 --nnodes 2 --node-rank 1 --master-addr 10.0.0.1 --port 29500
"""

#: dist_train.sh's defaults.
DEFAULT_MASTER_ADDR = "127.0.0.1"
DEFAULT_MULTI_NODE_PORT = 29500


def _gpus(value: str) -> int:
    try:
        gpus = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {value!r}") from None
    if gpus < 1:
        raise argparse.ArgumentTypeError(
            f"must be at least 1, got {gpus} (without a visible GPU, --gpus N starts N CPU "
            "processes; CUDA_VISIBLE_DEVICES=-1 hides the GPUs)")
    return gpus


def _restarts(value: str) -> int:
    try:
        restarts = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {value!r}") from None
    if restarts < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {restarts}")
    return restarts


def add_arguments(parser) -> None:
    parser.add_argument("config", metavar="CONFIG",
                        help="the mmengine config file (.py), or mmpretrain::FAMILY/NAME.py")
    parser.add_argument("--gpus", type=_gpus, required=True, metavar="N",
                        help="processes on this node, one per GPU (CPU processes where none)")
    parser.add_argument("--nnodes", type=int, metavar="M",
                        help="machines in the job (env NNODES; default 1)")
    parser.add_argument("--node-rank", type=int, metavar="R",
                        help="this machine's rank, 0 to M-1 (env NODE_RANK; default 0)")
    parser.add_argument("--master-addr", metavar="ADDR",
                        help="address of node rank 0 (env MASTER_ADDR; 127.0.0.1 on node 0)")
    parser.add_argument("--port", type=int, metavar="PORT",
                        help="rendezvous port (env PORT; default: free on 1 node, else 29500)")
    parser.add_argument("--work-dir", metavar="DIR",
                        help="checkpoints and logs (default: the trainer's, work_dirs/CONFIG_NAME)")
    parser.add_argument("--max-restarts", type=_restarts, default=0, metavar="K",
                        help="restart failed ranks up to K times; they resume (default 0)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the torchrun command instead of running it")
    parser.add_passthrough("trainer_args", "TRAINER_ARGS",
                           "arguments for python -m trainer, e.g. --cfg-options k=v")


def _setting(flag_value, flag: str, env: str, environ) -> tuple[str | int | None, str]:
    """The flag's value, else the environment variable's (empty = unset), with the name to blame."""
    if flag_value is not None:
        return flag_value, flag
    raw = environ.get(env, "")
    return (raw or None), env


def _int_setting(flag_value, flag: str, env: str, environ) -> tuple[int | None, str]:
    value, name = _setting(flag_value, flag, env, environ)
    return (None if value is None else parse_int(value, name)), name


def _label(name: str, value) -> str:
    """``--nnodes 2`` or ``NNODES=2``: a setting as the user wrote it."""
    return f"{name} {value}" if name.startswith("--") else f"{name}={value}"


def build_job(args, environ=os.environ) -> Job:
    """The job ``kctl run`` starts on this node, from the flags and dist_train.sh's variables."""
    nnodes, nnodes_name = _int_setting(args.nnodes, "--nnodes", "NNODES", environ)
    node_rank, rank_name = _int_setting(args.node_rank, "--node-rank", "NODE_RANK", environ)
    port, port_name = _int_setting(args.port, "--port", "PORT", environ)
    master_addr, _ = _setting(args.master_addr, "--master-addr", "MASTER_ADDR", environ)
    nnodes = 1 if nnodes is None else nnodes
    node_rank = 0 if node_rank is None else node_rank
    if nnodes < 1:
        raise UsageError(f"{nnodes_name} must be at least 1, got {nnodes}")
    if node_rank < 0:
        raise UsageError(f"{rank_name} must not be negative, got {node_rank}")
    if node_rank >= nnodes:
        nodes = (_label(nnodes_name, nnodes) if args.nnodes is not None or environ.get("NNODES")
                 else "1: neither --nnodes nor NNODES is set")
        raise UsageError(f"{_label(rank_name, node_rank)} must be less than the number of nodes "
                         f"({nodes})")
    if port is not None:
        check_port(port, port_name)
    if master_addr is None and nnodes > 1 and node_rank > 0:
        raise UsageError(f"MASTER_ADDR is not set: node rank {node_rank} of {nnodes} must be told "
                         "the address of node rank 0 (set MASTER_ADDR or --master-addr)")

    gpus = args.gpus if visible_gpus(environ) else 0
    topology = Topology.per_node(gpus, nodes=nnodes, cpu_procs=args.gpus)

    rendezvous = None
    if nnodes > 1 or port is not None:
        rendezvous = Rendezvous(master_addr=master_addr or DEFAULT_MASTER_ADDR,
                                master_port=port or DEFAULT_MULTI_NODE_PORT, node_rank=node_rank)
    config = resolve_config(args.config)
    return Job(config=config, topology=topology, name=default_name(config),
               work_dir=args.work_dir, trainer_args=tuple(args.trainer_args),
               rendezvous=rendezvous)


def run(args) -> int:
    job = build_job(args)
    backend = load_backend("local")
    dryrun = backend.render(job, max_restarts=args.max_restarts)
    for warning in dryrun.warnings:
        sys.stderr.write(f"kctl run: {warning}\n")
    if args.dry_run:
        print(dryrun.text)
        return 0
    if importlib.util.find_spec("torch") is None:
        raise KctlError("kctl run needs torch in kctl's Python "
                        f"({sys.executable}): pip install -c constraints.txt '.[trainer]'")
    sys.stdout.flush()
    return backend.submit(dryrun)
