"""``kctl logs``: every replica's log, each line prefixed with its replica."""

from __future__ import annotations

import os
import re
import sys

from kctl.k8s import add_cluster_arguments, add_kind_argument

NAME = "logs"
HELP = "Print a job's logs, [replica]-prefixed; -f follows restarts and new pods"
ORDER = 42
EXAMPLES = """\
Each line starts with its replica: "[master-0] ...", "[worker-1] ..." in a PyTorchJob,
"[node-0] ..." in a TrainJob. A container that restarted shows its previous container's log
first, as "[master-0 previous] ...". Notes go to stderr.

Examples:
  kctl logs resnet18-1xb64-digits
  kctl logs llm-train -f                       # until the job finishes; Ctrl-C to stop
  kctl logs llm-train --replica worker-1 -n team-a
"""


def add_arguments(parser):
    parser.add_argument("name", metavar="NAME", help="the job's name (see: kctl list)")
    parser.add_argument("-f", "--follow", action="store_true",
                        help="keep streaming, through restarts, until the job ends")
    parser.add_argument("--replica", default="all", type=_replica,
                        help="master-0, worker-N, node-N or all (default: all)")
    add_kind_argument(parser)
    add_cluster_arguments(parser)


def run(args) -> int:
    from kctl.backends import kubernetes_backends
    from kctl.k8s.cluster import connect
    from kctl.k8s.jobs import find_job
    from kctl.k8s.logs import select_replicas

    with connect(args.context, args.namespace, args.request_timeout) as cluster:
        kind, job = find_job(cluster, kubernetes_backends(), args.name, cluster.namespace,
                             args.kind)
        replicas = select_replicas(kind, job, args.replica)
        try:
            kind.logs(cluster, job, replicas, follow=args.follow)
        except BrokenPipeError:  # `kctl logs NAME | head`: the reader has all it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _replica(value: str) -> str:
    import argparse

    if value != "all" and not re.fullmatch(r"[a-z]+-\d+", value):
        raise argparse.ArgumentTypeError(f"expected master-0, worker-N, node-N or all, got "
                                         f"{value!r}")
    return value
