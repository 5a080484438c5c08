"""``kctl status``: a job's conditions, its pods, restarts, and why pods are pending."""

from __future__ import annotations

import sys

from kctl.k8s import add_cluster_arguments, add_kind_argument

NAME = "status"
HELP = "Show a job's conditions, pods and restarts, and why pods are not running"
ORDER = 41
EXAMPLES = """\
Works on PyTorchJobs and TrainJobs; where both kinds have a job of that name, pass --kind.

Examples:
  kctl status resnet18-1xb64-digits
  kctl status llm-train -n team-a --context prod
"""


def add_arguments(parser):
    parser.add_argument("name", metavar="NAME", help="the job's name (see: kctl list)")
    add_kind_argument(parser)
    add_cluster_arguments(parser)


def run(args) -> int:
    from kctl.backends import kubernetes_backends
    from kctl.k8s.cluster import connect
    from kctl.k8s.jobs import find_job

    with connect(args.context, args.namespace, args.request_timeout) as cluster:
        kind, _ = find_job(cluster, kubernetes_backends(), args.name, cluster.namespace, args.kind)
        sys.stdout.write(kind.describe(cluster, args.name, cluster.namespace))
    return 0
