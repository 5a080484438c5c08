"""``kctl doctor``: check that a job can run on the cluster, one line per check."""

from __future__ import annotations

import sys

from kctl.k8s import add_cluster_arguments

NAME = "doctor"
HELP = "Check that the cluster can run a job: operators, GPUs, storage, queues, permissions"
ORDER = 19
EXAMPLES = """\
One line per check: ✓ fine; ✗ no job can run until fixed (exit 1); ! some jobs cannot run, or
kctl cannot tell (RBAC); - information. Each line that is not ✓ says what to do.

Examples:
  kctl doctor
  kctl doctor -n team-a --context prod
"""


def add_arguments(parser):
    add_cluster_arguments(parser)


def run(args) -> int:
    from kctl.backends import kubernetes_backends
    from kctl.k8s.cluster import connect
    from kctl.k8s.doctor import FAIL, checkup, names

    kinds = kubernetes_backends()
    width = max(map(len, names(kinds)))
    failed = False
    with connect(args.context, args.namespace, args.request_timeout) as cluster:
        for check in checkup(cluster, kinds):
            sys.stdout.write(check.line(width) + "\n")
            sys.stdout.flush()
            failed = failed or check.mark == FAIL
    return 1 if failed else 0
