"""``kctl train CONFIG --gpus G --nodes N``: run the job on Kubernetes as a Kubeflow PyTorchJob
(training operator v1) or TrainJob (Kubeflow Trainer v2).

Renders a ConfigMap with the config tree and the job (:mod:`kctl.backends.pytorchjob`,
:mod:`kctl.backends.trainjob`), then validates and creates them in the cluster, or only prints
them with ``--dry-run`` (``kctl validate -`` checks that output). Without ``--kind`` a submit asks
the cluster which kinds it serves (:func:`choose_kind`); a dry run renders a PyTorchJob. The flags
come from :data:`kctl.options.OPTIONS`. Rendering never imports torch, mmengine or kubernetes;
only submitting talks to a cluster.
"""

from __future__ import annotations

import json
import sys

from kctl import options as opts
from kctl.backends import load_backend
from kctl.backends.kubernetes import CONFIG_MOUNT, WORK_DIR_MOUNT, KubernetesBackend
from kctl.configfiles import resolve_config
from kctl.errors import KctlError, UsageError
from kctl.job import Job, Topology, check_dns1035, default_name
from kctl.k8s import add_cluster_arguments

NAME = "train"
HELP = "Train on Kubernetes as a Kubeflow PyTorchJob or TrainJob (print it with --dry-run)"
ORDER = 20
EXAMPLES = f"""\
The pods run `torchrun -m trainer {CONFIG_MOUNT}/CONFIG --launcher pytorch
--work-dir {WORK_DIR_MOUNT}/NAME --resume [TRAINER_ARGS]`; the config and its _base_ files travel
in a ConfigMap. {WORK_DIR_MOUNT} is on a claim kctl creates (NAME-work-dir, --work-dir-size) or on
--work-dir-pvc; the claim outlives the job, so a job deleted (kctl delete NAME) and submitted
again under the same NAME resumes from its last checkpoint.

Kinds: a PyTorchJob (Kubeflow training operator v1.9) or a TrainJob (Kubeflow Trainer v2.3, against
the ClusterTrainingRuntime torch-distributed unless --runtime says otherwise). Without --kind,
kctl submits what the cluster serves (a PyTorchJob where it serves both); --dry-run prints a
PyTorchJob.

Restarts and preemption: pods restart OnFailure. A container that fails or is killed is restarted
in its pod, its peers' containers with it, and all resume from the last checkpoint (a PyTorchJob
survives --max-restarts such failures: runPolicy.backoffLimit = K x nodes; a TrainJob its runtime's
backoffLimit); a pod that is deleted, evicted or preempted gets SIGTERM (the trainer saves a
checkpoint and exits 143) and SIGKILL 30 s later, and the operator creates it again. CPU jobs with
--cpu C give each process OMP_NUM_THREADS = C / processes, so they compute the same numbers on any
node.

Examples:
  # Print the manifest for 2 nodes x 8 GPUs, checkpoints on the ReadWriteMany claim 'shared'
  kctl train configs/resnet/resnet18_1xb64_digits.py --gpus 8 --nodes 2 \\
      --work-dir-pvc shared --dry-run

  # The same as a Kubeflow Trainer v2 TrainJob
  kctl train configs/resnet/resnet18_1xb64_digits.py --gpus 8 --nodes 2 \\
      --work-dir-pvc shared --kind TrainJob --dry-run

  # CPU training (gloo), 2 processes in one pod, following its logs to the end (exit status:
  # the job's outcome)
  kctl train configs/resnet/resnet18_1xb64_digits.py --gpus 0 --cpu-procs 2 --cpu 2 --memory 4Gi -f

  # Through a Kueue queue, gang-scheduled, with a dataset claim, passing trainer arguments
  kctl train CONFIG --gpus 8 --nodes 4 --work-dir-pvc shared --data-pvc imagenet:/data \\
      --queue team-a --gang --priority-class high -- --amp --cfg-options train_cfg.max_epochs=90

  # Check the printed manifest offline (CRD schema, webhook rules), or with the cluster
  kctl train CONFIG --gpus 8 --dry-run | kctl validate -
  kctl train CONFIG --gpus 8 --dry-run -o json | kubectl apply --dry-run=server -f -
"""


def add_arguments(parser) -> None:
    parser.add_argument("config", metavar="CONFIG", help="the mmengine config file (.py)")
    parser.add_argument("--kind", choices=opts.KINDS,
                        help="PyTorchJob or TrainJob (default: what the cluster serves; "
                             "PyTorchJob with --dry-run)")
    opts.add_arguments(parser)
    add_cluster_arguments(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="print the manifest, do not validate or create it")
    parser.add_argument("-o", "--output", choices=("yaml", "json"),
                        help="print the manifest as yaml or json (a v1 List)")
    parser.add_argument("-f", "--follow", action="store_true",
                        help="after submitting, stream the logs like kctl logs -f and exit with "
                             "the job's outcome (0 succeeded, 1 failed)")
    parser.add_passthrough("trainer_args", "TRAINER_ARGS",
                           "arguments for python -m trainer, e.g. --amp --cfg-options k=v")


def build_job(args, backend: KubernetesBackend) -> Job:
    """The job from the command line (topology, name, config, trainer arguments)."""
    values = opts.settings(backend.kind, vars(args))
    if values.cpu_procs is not None and values.gpus != 0:
        raise UsageError("--cpu-procs applies to CPU training (--gpus 0) only; with GPUs there "
                         "is one process per GPU")
    topology = Topology.per_node(values.gpus, values.nodes,
                                 1 if values.cpu_procs is None else values.cpu_procs)
    name = (check_dns1035(values.name, what="--name") if values.name
            else default_name(args.config, backend.name_limit(topology.nodes)))
    return Job(config=resolve_config(args.config), topology=topology, name=name,
               trainer_args=tuple(args.trainer_args))


def render(args, backend: KubernetesBackend):
    """The job and its manifest for ``backend`` (a flag the kind does not take is refused)."""
    job = build_job(args, backend)
    return job, backend.render(job, namespace=args.namespace, **opts.given(vars(args)))


def choose_kind(cluster) -> KubernetesBackend:
    """The backend of the kind the cluster serves: TrainJob where it serves only TrainJobs, else
    PyTorchJob (with a note where it serves both)."""
    from kctl.backends import kubernetes_backends
    from kctl.k8s.discovery import served_kinds
    from kctl.k8s.jobs import not_served

    kinds = kubernetes_backends()
    served = served_kinds(cluster, kinds)
    if not served:
        raise KctlError(not_served(kinds))
    if len(served) > 1:
        sys.stderr.write(f"kctl: note: this cluster serves {' and '.join(k.kind for k in served)}"
                         f"; submitting a {served[0].kind} (--kind {served[1].kind} submits a "
                         f"{served[1].kind})\n")
    return served[0]


def as_json(objects: list[dict]) -> str:
    """The objects as one ``v1`` ``List``, the shape ``kubectl get -o json`` prints for several
    objects (``kubectl apply -f`` and ``kctl validate`` take it)."""
    listing = {"apiVersion": "v1", "items": objects, "kind": "List",
               "metadata": {"resourceVersion": ""}}
    return json.dumps(listing, indent=4, ensure_ascii=False) + "\n"


def next_steps(name: str, namespace: str | None, context: str | None) -> str:
    """What to run next, on stderr so that stdout stays ``kubectl create``'s one line."""
    where = "".join(f" {flag} {value}" for flag, value in (("-n", namespace), ("--context", context))
                    if value)
    return (f"Watch it:   kctl status {name}{where}\n"
            f"Its logs:   kctl logs {name}{where} -f\n"
            f"Stop it:    kctl delete {name}{where}\n")


def _warn(dryrun) -> None:
    for warning in dryrun.warnings:
        sys.stderr.write(f"kctl: warning: {warning}\n")


def run(args) -> int:
    opts.settings(None, vars(args))  # every value given is well-formed, before any connection
    if args.dry_run or args.kind:
        backend = load_backend((args.kind or opts.KINDS[0]).lower())
        _, dryrun = render(args, backend)
        _warn(dryrun)
        if args.dry_run:
            sys.stdout.write(as_json(dryrun.request) if args.output == "json" else dryrun.text)
            return 0
    from kctl.k8s.cluster import connect

    with connect(args.context, args.namespace, args.request_timeout) as cluster:
        if not args.kind:
            backend = choose_kind(cluster)
            _, dryrun = render(args, backend)
            _warn(dryrun)
        else:
            from kctl.k8s.discovery import serves

            if not serves(cluster, backend):
                raise KctlError(backend.install)
        name = backend.submit(dryrun, cluster)
        if args.output is None:
            sys.stdout.write(f"{backend.kind.lower()}.{backend.group}/{name} created\n")
            if not args.follow:
                sys.stderr.write(next_steps(name, args.namespace, args.context))
        else:
            sys.stdout.write(as_json(dryrun.request) if args.output == "json" else dryrun.text)
        sys.stdout.flush()
        return follow(cluster, backend, name) if args.follow else 0


def follow(cluster, backend: KubernetesBackend, name: str) -> int:
    """``--follow``: every replica's log until the job ends; 0 if it succeeded, else 1."""
    from kctl.k8s.wait import HOLDS, wait_for

    job = backend.get(cluster, name, cluster.namespace)
    backend.logs(cluster, job, backend.replicas(job), follow=True)
    code, line = wait_for(cluster, backend, job, "succeeded", timeout=None)
    sys.stderr.write(f"kctl: {line}\n" if code == HOLDS else f"kctl: error: {line}\n")
    return code
