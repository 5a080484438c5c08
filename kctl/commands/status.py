"""``kctl status``: a PyTorchJob's conditions, its pods, restarts, and why pods are pending."""

from __future__ import annotations

import sys

from kctl.k8s import add_cluster_arguments

NAME = "status"
HELP = "Show a PyTorchJob's conditions, pods and restarts, and why pods are not running"
ORDER = 41
EXAMPLES = """\
Examples:
  kctl status resnet18-1xb64-digits
  kctl status llm-train -n team-a --context prod
"""


def add_arguments(parser):
    parser.add_argument("name", metavar="NAME", help="the PyTorchJob's name (see: kctl list)")
    add_cluster_arguments(parser)


def run(args) -> int:
    from kctl.k8s.cluster import connect
    from kctl.k8s.status import describe

    with connect(args.context, args.namespace, args.request_timeout) as cluster:
        sys.stdout.write(describe(cluster, args.name, cluster.namespace))
    return 0
