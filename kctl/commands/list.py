"""``kctl list``: jobs of every kind kctl runs, as a table like ``kubectl get``."""

from __future__ import annotations

import sys

from kctl.k8s import add_cluster_arguments

NAME = "list"
HELP = "List PyTorchJobs and TrainJobs: name, kind, state, age, nodes x GPUs per node"
ORDER = 40
EXAMPLES = """\
Examples:
  kctl list
  kctl list -n team-a
  kctl list -A                                 # every namespace
"""


def add_arguments(parser):
    add_cluster_arguments(parser, all_namespaces=True)


def run(args) -> int:
    from kctl.backends import kubernetes_backends
    from kctl.k8s.cluster import connect
    from kctl.k8s.display import age, table
    from kctl.k8s.jobs import served

    kinds = kubernetes_backends()
    with connect(args.context, args.namespace, args.request_timeout) as cluster:
        namespace = None if args.all_namespaces else cluster.namespace
        found = [(kind, job) for kind, jobs in served(
            cluster, kinds, lambda kind: kind.list_jobs(cluster, namespace)) for job in jobs]
    if not found:
        where = "any namespace" if namespace is None else f"namespace {namespace}"
        sys.stderr.write(f"No {' or '.join(k.kind + 's' for k in kinds)} found in {where}.\n")
        return 0
    found.sort(key=lambda kj: (kj[1]["metadata"].get("namespace", ""), kj[1]["metadata"]["name"],
                               kj[0].kind))
    headers = ["NAME", "KIND", "STATE", "AGE", "NODESxGPUS"]
    rows = [[job["metadata"]["name"], kind.kind, kind.state(job) or "<none>",
             age(job["metadata"].get("creationTimestamp")), kind.size(job)]
            for kind, job in found]
    if namespace is None:
        headers = ["NAMESPACE"] + headers
        rows = [[job["metadata"].get("namespace", "")] + row for (_, job), row in zip(found, rows)]
    print(table(headers, rows))
    return 0
