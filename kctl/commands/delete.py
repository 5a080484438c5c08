"""``kctl delete``: delete a PyTorchJob with its pods and the ConfigMap kctl created for it."""

from __future__ import annotations

from kctl.k8s import add_cluster_arguments

NAME = "delete"
HELP = "Delete a PyTorchJob, its pods and its ConfigMap (work_dir claims are kept)"
ORDER = 43
EXAMPLES = """\
Examples:
  kctl delete resnet18-1xb64-digits
  kctl delete llm-train -n team-a
"""


def add_arguments(parser):
    parser.add_argument("name", metavar="NAME", help="the PyTorchJob's name (see: kctl list)")
    add_cluster_arguments(parser)


def run(args) -> int:
    from kctl.k8s.cluster import connect
    from kctl.k8s.jobs import claims, delete_job, get_job

    with connect(args.context, args.namespace, args.request_timeout) as cluster:
        job = get_job(cluster, args.name, cluster.namespace)
        delete_job(cluster, job)
    ns = cluster.namespace
    print(f'pytorchjob.kubeflow.org "{args.name}" deleted')
    for claim in claims(job):
        print(f'kept persistentvolumeclaim "{claim}" (work_dir; a job using it again resumes '
              f"from its checkpoints). To remove it: kubectl delete pvc {claim} -n {ns}")
    return 0
