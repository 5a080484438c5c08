"""``kctl list``: PyTorchJobs as a table, like ``kubectl get pytorchjobs``."""

from __future__ import annotations

import sys

from kctl.k8s import add_cluster_arguments

NAME = "list"
HELP = "List PyTorchJobs: name, state, age, nodes x GPUs per node"
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
    from kctl.k8s import jobs
    from kctl.k8s.cluster import connect
    from kctl.k8s.display import age, table

    with connect(args.context, args.namespace, args.request_timeout) as cluster:
        namespace = None if args.all_namespaces else cluster.namespace
        found = jobs.list_jobs(cluster, namespace)
    if not found:
        where = "any namespace" if namespace is None else f"namespace {namespace}"
        sys.stderr.write(f"No PyTorchJobs found in {where}.\n")
        return 0
    found.sort(key=lambda j: (j["metadata"].get("namespace", ""), j["metadata"]["name"]))
    headers = ["NAME", "STATE", "AGE", "NODESxGPUS"]
    rows = [[j["metadata"]["name"], jobs.state(j) or "<none>",
             age(j["metadata"].get("creationTimestamp")), jobs.size(j)] for j in found]
    if namespace is None:
        headers = ["NAMESPACE"] + headers
        rows = [[j["metadata"].get("namespace", "")] + row for j, row in zip(found, rows)]
    print(table(headers, rows))
    return 0
