"""``kctl delete``: delete a job with its pods and the ConfigMap kctl created for it."""

from __future__ import annotations

from kctl.k8s import add_cluster_arguments, add_kind_argument

NAME = "delete"
HELP = "Delete a job, its pods and its ConfigMap (work_dir claims are kept)"
ORDER = 43
EXAMPLES = """\
Examples:
  kctl delete resnet18-1xb64-digits
  kctl delete llm-train -n team-a
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
        kind, job = find_job(cluster, kubernetes_backends(), args.name, cluster.namespace,
                             args.kind)
        kind.cancel(cluster, job)
    ns = cluster.namespace
    print(f'{kind.kind.lower()}.{kind.group} "{args.name}" deleted')
    for claim in kind.claims(job):
        print(f'kept persistentvolumeclaim "{claim}" (work_dir; a job using it again resumes '
              f"from its checkpoints). To remove it: kubectl delete pvc {claim} -n {ns}")
    return 0
