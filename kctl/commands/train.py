"""``kctl train CONFIG --gpus G --nodes N``: run the job on Kubernetes as a Kubeflow PyTorchJob.

Renders a ConfigMap with the config tree and a PyTorchJob (:mod:`kctl.backends.pytorchjob`),
then validates and creates them in the cluster, or only prints them with ``--dry-run``
(``kctl validate -`` checks that output). Rendering never imports torch, mmengine or kubernetes;
only submitting talks to a cluster.
"""

from __future__ import annotations

import json
import sys

from kctl.backends.pytorchjob import (BACKEND, CONFIG_MOUNT, DEFAULT_IMAGE, DEFAULT_MAX_RESTARTS,
                                      DEFAULT_SHM_SIZE, WORK_DIR_MOUNT, DataVolume)
from kctl.configfiles import resolve_config
from kctl.errors import UsageError
from kctl.job import Job, Topology, check_dns1035, default_name
from kctl.k8s import add_cluster_arguments

NAME = "train"
HELP = "Train on Kubernetes as a Kubeflow PyTorchJob (print the manifest with --dry-run)"
ORDER = 20
EXAMPLES = f"""\
The pods run `torchrun -m trainer {CONFIG_MOUNT}/CONFIG --launcher pytorch
--work-dir {WORK_DIR_MOUNT}/NAME --resume [TRAINER_ARGS]`; the config and its _base_ files travel
in a ConfigMap. With --work-dir-pvc, a job deleted (kctl delete NAME) and submitted again under
the same NAME resumes from its last checkpoint.

Restarts and preemption: replicas restart OnFailure. A container that fails or is killed is
restarted in its pod, its peers' containers with it, and all resume from the last checkpoint
(the job survives --max-restarts such failures: runPolicy.backoffLimit = K x nodes);
a pod that is deleted, evicted or preempted gets SIGTERM (the trainer saves a checkpoint and exits
143) and SIGKILL 30 s later, and the operator creates it again. CPU jobs with --cpu C give each
process OMP_NUM_THREADS = C / processes, so they compute the same numbers on any node.

Examples:
  # Print the manifest for 2 nodes x 8 GPUs, checkpoints on the ReadWriteMany claim 'shared'
  kctl train configs/resnet/resnet18_1xb64_digits.py --gpus 8 --nodes 2 \\
      --work-dir-pvc shared --dry-run

  # CPU training (gloo), 2 processes in one pod, then follow it
  kctl train configs/resnet/resnet18_1xb64_digits.py --gpus 0 --cpu-procs 2 --cpu 2 --memory 4Gi
  kctl logs resnet18-1xb64-digits -f

  # Through a Kueue queue, gang-scheduled, with a dataset claim, passing trainer arguments
  kctl train CONFIG --gpus 8 --nodes 4 --work-dir-pvc shared --data-pvc imagenet:/data \\
      --queue team-a --gang --priority-class high -- --amp --cfg-options train_cfg.max_epochs=90

  # Check the printed manifest offline (CRD schema, webhook rules), or with the cluster
  kctl train CONFIG --gpus 8 --dry-run | kctl validate -
  kctl train CONFIG --gpus 8 --dry-run -o json | kubectl apply --dry-run=server -f -
"""


def add_arguments(parser) -> None:
    parser.add_argument("config", metavar="CONFIG", help="the mmengine config file (.py)")
    parser.add_argument("--gpus", type=int, required=True, metavar="G",
                        help="GPUs per node, one process each; 0 trains on CPUs with gloo")
    parser.add_argument("--nodes", type=int, default=1, metavar="N",
                        help="nodes (pods): 1 Master + N-1 Workers (default: 1)")
    parser.add_argument("--cpu-procs", type=int, metavar="P",
                        help="processes per node with --gpus 0 (default: 1)")
    parser.add_argument("--name", metavar="NAME",
                        help="job name (default: from the config's file name)")
    add_cluster_arguments(parser)
    parser.add_argument("--image", default=DEFAULT_IMAGE, metavar="IMAGE",
                        help=f"trainer image (default: {DEFAULT_IMAGE})")
    parser.add_argument("--config-in-image", metavar="PATH",
                        help="run this config from the image instead of shipping CONFIG")
    parser.add_argument("--work-dir-pvc", metavar="CLAIM",
                        help=f"claim for {WORK_DIR_MOUNT} (checkpoints); required with --nodes > 1")
    parser.add_argument("--data-pvc", metavar="CLAIM:MOUNT",
                        help="claim mounted read-only at MOUNT, e.g. imagenet:/data")
    parser.add_argument("--cpu", metavar="C", help="CPU request and limit per node, e.g. 8")
    parser.add_argument("--memory", metavar="M",
                        help="memory request and limit per node, e.g. 64Gi")
    parser.add_argument("--shm-size", default=DEFAULT_SHM_SIZE, metavar="SIZE",
                        help=f"size limit of /dev/shm (default: {DEFAULT_SHM_SIZE})")
    parser.add_argument("--queue", metavar="Q",
                        help="Kueue LocalQueue; the job starts suspended until admitted")
    parser.add_argument("--gang", action="store_true",
                        help="gang-schedule all pods (Volcano / scheduler-plugins)")
    parser.add_argument("--priority-class", metavar="P", help="PriorityClass of the pods")
    parser.add_argument("--max-restarts", type=int, default=DEFAULT_MAX_RESTARTS, metavar="K",
                        help=f"failures the job survives (default: {DEFAULT_MAX_RESTARTS})")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the manifest, do not validate or create it")
    parser.add_argument("-o", "--output", choices=("yaml", "json"),
                        help="print the manifest as yaml or json (a v1 List)")
    parser.add_passthrough("trainer_args", "TRAINER_ARGS",
                           "arguments for python -m trainer, e.g. --amp --cfg-options k=v")


def build_job(args) -> Job:
    """The job from the command line (topology, name, config, trainer arguments)."""
    if args.cpu_procs is not None and args.gpus != 0:
        raise UsageError("--cpu-procs applies to CPU training (--gpus 0) only; with GPUs there "
                         "is one process per GPU")
    topology = Topology.per_node(args.gpus, args.nodes,
                                 1 if args.cpu_procs is None else args.cpu_procs)
    name = check_dns1035(args.name, what="--name") if args.name else default_name(args.config)
    return Job(config=resolve_config(args.config), topology=topology, name=name,
               trainer_args=tuple(args.trainer_args))


def cluster_options(args) -> dict:
    """The :class:`~kctl.backends.pytorchjob.ClusterOptions` fields from the command line."""
    return dict(namespace=args.namespace, image=args.image, work_dir_pvc=args.work_dir_pvc,
                data_pvc=DataVolume.parse(args.data_pvc) if args.data_pvc else None,
                cpu=args.cpu, memory=args.memory, shm_size=args.shm_size, queue=args.queue,
                gang=args.gang, priority_class=args.priority_class,
                max_restarts=args.max_restarts, config_in_image=args.config_in_image)


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


def run(args) -> int:
    job = build_job(args)
    dryrun = BACKEND.render(job, **cluster_options(args))
    for warning in dryrun.warnings:
        sys.stderr.write(f"kctl: warning: {warning}\n")
    if not args.dry_run:
        name = BACKEND.submit(dryrun, context=args.context, timeout=args.request_timeout)
        if args.output is None:
            sys.stdout.write(f"pytorchjob.kubeflow.org/{name} created\n")
            sys.stderr.write(next_steps(name, args.namespace, args.context))
            return 0
    sys.stdout.write(as_json(dryrun.request) if args.output == "json" else dryrun.text)
    return 0
