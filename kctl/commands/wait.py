"""``kctl wait NAME``: block until a job succeeded, failed or runs; for scripts."""

from __future__ import annotations

import argparse
import sys

from kctl.k8s import add_cluster_arguments, add_kind_argument

NAME = "wait"
HELP = "Wait until a job succeeded, failed or runs (exit 0), ended otherwise (1) or time ran out (124)"
ORDER = 44
EXAMPLES = """\
Exit status: 0 when the job reached the state, 1 when it ended otherwise or was deleted (the reason
in one line on stderr), 124 when --timeout ran out, 2 on bad usage.

Examples:
  kctl wait resnet18-1xb64-digits                      # until it succeeded (or failed: exit 1)
  kctl wait llm-train --for running --timeout 10m -n team-a
  kctl train CONFIG --gpus 8 && kctl wait resnet18-1xb64-digits --timeout 2h && echo done
"""


def add_arguments(parser):
    from kctl.k8s.wait import CONDITIONS

    parser.add_argument("name", metavar="NAME", help="the job's name (see: kctl list)")
    parser.add_argument("--for", dest="condition", choices=CONDITIONS, default=CONDITIONS[0],
                        help=f"the state to wait for (default: {CONDITIONS[0]})")
    parser.add_argument("--timeout", type=_duration, metavar="DURATION",
                        help="give up after this long, e.g. 90s, 30m, 2h (default: no limit)")
    add_kind_argument(parser)
    add_cluster_arguments(parser)


def _duration(value: str) -> float:
    from kctl.k8s.wait import parse_duration

    try:
        seconds = parse_duration(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {value!r}")
    return seconds


def run(args) -> int:
    from kctl.backends import kubernetes_backends
    from kctl.k8s.cluster import connect
    from kctl.k8s.jobs import find_job
    from kctl.k8s.wait import HOLDS, wait_for

    with connect(args.context, args.namespace, args.request_timeout) as cluster:
        kind, job = find_job(cluster, kubernetes_backends(), args.name, cluster.namespace,
                             args.kind)
        code, line = wait_for(cluster, kind, job, args.condition, args.timeout)
    sys.stderr.write(f"kctl: {line}\n" if code == HOLDS else f"kctl: error: {line}\n")
    return code
