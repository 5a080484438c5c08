"""Kubeflow PyTorchJob (training operator v1.9): the target of ``kctl train``.

One job becomes, in ``kctl/templates/pytorchjob.yaml.j2``:

- a ConfigMap ``<name>-config`` holding the config and every ``_base_`` file it inherits from,
  mounted read-only at :data:`CONFIG_MOUNT` with the tree's relative layout (none with
  ``config_in_image``);
- a ``kubeflow.org/v1`` PyTorchJob: ``Master`` (1 replica) plus ``Worker`` (N-1 replicas, absent
  for one node), one pod per node, each running ``torchrun -m trainer CONFIG --launcher pytorch
  --work-dir /work_dirs/<name> --resume [TRAINER_ARGS]``. ``torchrun`` gets no topology flags:
  it reads the operator's ``PET_NNODES``, ``PET_NPROC_PER_NODE``, ``PET_NODE_RANK``,
  ``PET_MASTER_ADDR`` and ``PET_MASTER_PORT``, so the manifest states the topology once
  (``replicas`` and ``nprocPerNode``).

work_dir lives on a PersistentVolumeClaim when one is given, so a restarted or re-created pod
resumes from the last checkpoint (``--resume``); resubmitting a job of the same name resumes too.
Before anything is submitted, the rendered manifest is validated (vendored CRD schema, webhook
rules: :func:`kctl.validate.manifest.check_rendered`); a dry run only prints it (validating costs
0.3 s: the 609 KB CRD and jsonschema), ``kctl validate`` checks it on demand.

Restarts and preemption. The replicas' ``restartPolicy`` is ``OnFailure``: a container that exits
non-zero for any reason (a crash, an OOM kill = 137, a rank that failed or was killed, which
``torchrun`` reports as exit 1) is restarted in the same pod by the kubelet and resumes. The ranks
of the other pods fail with their lost peer and are restarted the same way, so one failure costs
one container restart per node: the operator counts every one against ``runPolicy.backoffLimit``,
which is therefore ``--max-restarts`` (failures the job survives) x nodes.

A restarted pod's ``torchrun`` can reach the master's rendezvous store before the master's old
``torchrun`` has exited (the kubelet restarts a container at once the first time). Left to
itself, it would then read its ranks from that old store, and the new master would wait for
ranks that were already given out: a job that hangs until the rendezvous times out (10 minutes).
Every node runs the same number of processes, so the pods set ``TORCH_ELASTIC_WORKER_IDENTICAL=1``
and ``torchrun`` computes the ranks itself (node rank x processes per node + local rank, the
arithmetic of :meth:`kctl.job.Topology.rank`) instead of exchanging them through the store. What is
left of that race costs time, not the job: a rank that started in the old store fails with it
and its pod restarts once more; a rank whose ``torchrun`` saw the old store but which itself
joined the new one trains to the end, and the master's ``torchrun`` then waits out its 300 s
exit barrier for that node before the job succeeds.

A pod that is deleted, evicted or preempted gets SIGTERM (to ``torchrun``, which passes it to
the ranks: the trainer finishes its iteration, saves a checkpoint and exits 143, "preempted,
checkpoint saved: retry") and SIGKILL after ``terminationGracePeriodSeconds`` (30 s by default);
the operator creates the pod again and it resumes from that checkpoint. Under the operator's
other policy, ``ExitCode``, exit codes >= 128 (143, 137) are retryable (the pod is re-created)
and 1-127 fail the job: but ``torchrun`` itself exits 1 when a rank fails or when it is stopped
by SIGTERM, so a rank's 143 would end the job there; that is why kctl renders ``OnFailure``.

CPU jobs (``--gpus 0``) with ``--cpu`` get ``OMP_NUM_THREADS`` = the CPUs per process (at least
1), like ``kctl slurm-script``'s ``--cpus-per-task``: a CPU job's results depend on its thread
count, which then does not depend on the node it lands on (:func:`threads_per_process`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kctl import __version__
from kctl.backends.base import Backend, DryRun, render_template
from kctl.configfiles import collect, lookup, read_values
from kctl.errors import UsageError
from kctl.job import TRAINER_MODULE, Job
from kctl.validate.limits import (CONFIG_MAP_LIMIT, QUANTITY_PATTERN, config_map_key_error,
                                  data_size)
from kctl.validate.metadata import (dns1123_label_error, dns1123_subdomain_error,
                                    label_value_error)

#: The trainer image (Dockerfile in the repository root); its tag follows kctl's version.
DEFAULT_IMAGE = f"ghcr.io/kctl-dev/kctl-trainer:{__version__}"

#: The operator's names: container, rendezvous port name and its default number.
CONTAINER_NAME = "pytorch"
PORT_NAME = "pytorchjob-port"
PORT = 23456

#: Where the pods see the config tree, the work-dir volume and shared memory.
CONFIG_MOUNT = "/config"
WORK_DIR_MOUNT = "/work_dirs"
SHM_MOUNT = "/dev/shm"

#: Size limit of the memory-backed ``/dev/shm`` (DataLoader workers pass batches through it;
#: a limit, not a reservation: only what is used counts against the pod's memory).
DEFAULT_SHM_SIZE = "8Gi"

#: Failures the job survives before it is marked Failed (``--max-restarts``); rendered as
#: ``runPolicy.backoffLimit`` = this x nodes (:func:`backoff_limit`).
DEFAULT_MAX_RESTARTS = 3

#: Environment of every container: torchrun computes the ranks of identical nodes itself, so a
#: restarted node cannot take stale ranks from the previous master's store (module docstring).
TORCHRUN_ENV = {"TORCH_ELASTIC_WORKER_IDENTICAL": "1"}

#: Containers restart in place (``emptyDir`` volumes survive); the operator re-creates failed pods.
RESTART_POLICY = "OnFailure"

#: When the job has finished, stop pods still running or pending (e.g. workers left waiting after
#: the master failed) but keep finished pods, so ``kctl logs`` still works.
CLEAN_POD_POLICY = "Running"

#: The PyTorchJob, its pods and ConfigMap are deleted a week after the job finished.
TTL_SECONDS_AFTER_FINISHED = 7 * 24 * 3600

#: Non-root user, group and fsGroup (so the work-dir claim is writable); the image's user.
RUN_AS_USER = 1000

#: Labels on the PyTorchJob, the ConfigMap and the pod templates.
LABEL_APP = "app.kubernetes.io/name"
APP = "kctl-trainer"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "kctl"
LABEL_CONFIG = "kctl.dev/config"
#: Kueue's label naming the LocalQueue (on the PyTorchJob only).
LABEL_QUEUE = "kueue.x-k8s.io/queue-name"

#: ``_base_/models/resnet18.py`` is stored under the ConfigMap key ``_base___models__resnet18.py``
#: (keys cannot hold '/'); the volume's ``items`` put it back at its relative path.
KEY_SEPARATOR = "__"

_QUANTITY = re.compile(QUANTITY_PATTERN)
_LABEL_VALUE_BAD = re.compile(r"[^-A-Za-z0-9_.]+")


@dataclass(frozen=True)
class DataVolume:
    """A PersistentVolumeClaim mounted read-only, from ``--data-pvc CLAIM:MOUNT``."""

    claim: str
    mount: str

    @classmethod
    def parse(cls, spec: str) -> "DataVolume":
        claim, sep, mount = spec.partition(":")
        if not sep or not claim or not mount:
            raise UsageError(f"--data-pvc must be CLAIM:MOUNT (e.g. imagenet:/data), got {spec!r}")
        return cls(claim=claim, mount=mount)


@dataclass(frozen=True)
class ClusterOptions:
    """Where and how the job's pods run; each field is the ``kctl train`` flag of the same name.

    Args:
        namespace: Namespace written into the manifest. Defaults to ``None``: none is written and
            the kubeconfig context's namespace is used on submit, as with kubectl.
        image: Container image with the trainer. Defaults to :data:`DEFAULT_IMAGE`.
        work_dir_pvc: Existing claim holding work_dirs (ReadWriteMany when nodes > 1). Defaults
            to ``None``: an ``emptyDir``, allowed on one node only.
        data_pvc: An existing claim mounted read-only for datasets. Defaults to ``None``.
        cpu: CPU request and limit per node (pod), a Kubernetes quantity. Defaults to ``None``.
        memory: Memory request and limit per node (pod). Defaults to ``None``.
        shm_size: Size limit of ``/dev/shm``. Defaults to :data:`DEFAULT_SHM_SIZE`.
        queue: Kueue LocalQueue; the job is created suspended for Kueue to admit. Defaults to
            ``None``.
        gang: Gang-schedule all pods (``schedulingPolicy.minAvailable``, for Volcano or
            scheduler-plugins). Defaults to ``False``.
        priority_class: PriorityClass of the pods (and of the gang). Defaults to ``None``.
        max_restarts: Failures the job survives (``runPolicy.backoffLimit`` = this x nodes).
            Defaults to :data:`DEFAULT_MAX_RESTARTS`.
        config_in_image: Path of the config inside the image; no ConfigMap is made. Defaults
            to ``None``.
    """

    namespace: str | None = None
    image: str = DEFAULT_IMAGE
    work_dir_pvc: str | None = None
    data_pvc: DataVolume | None = None
    cpu: str | None = None
    memory: str | None = None
    shm_size: str = DEFAULT_SHM_SIZE
    queue: str | None = None
    gang: bool = False
    priority_class: str | None = None
    max_restarts: int = DEFAULT_MAX_RESTARTS
    config_in_image: str | None = None

    def __post_init__(self):
        if self.namespace is not None:
            _check("--namespace", dns1123_label_error(self.namespace))
        if not self.image or any(c.isspace() for c in self.image):
            raise UsageError(f"--image must be an image reference without spaces, "
                             f"got {self.image!r}")
        for flag, claim in (("--work-dir-pvc", self.work_dir_pvc),
                            ("--data-pvc", self.data_pvc and self.data_pvc.claim),
                            ("--priority-class", self.priority_class)):
            if claim is not None:
                _check(flag, dns1123_subdomain_error(claim))
        if self.queue is not None:
            _check("--queue", dns1123_subdomain_error(self.queue) or label_value_error(self.queue))
        for flag, quantity in (("--cpu", self.cpu), ("--memory", self.memory),
                               ("--shm-size", self.shm_size)):
            if quantity is not None and (not _QUANTITY.match(quantity) or quantity[0] in "+-"):
                raise UsageError(f"{flag} must be a Kubernetes quantity such as 4, 500m or 16Gi, "
                                 f"got {quantity!r}")
        if self.max_restarts < 0:
            raise UsageError(f"--max-restarts must not be negative, got {self.max_restarts}")
        if self.data_pvc is not None:
            _check_data_mount(self.data_pvc.mount)
        if self.config_in_image is not None and not self.config_in_image.strip():
            raise UsageError("--config-in-image must name the config's path inside the image")


_CPU_CORES = re.compile(r"^(\d+(\.\d*)?|\.\d+)(m?)$")


def threads_per_process(cpu: str | None, procs: int) -> int | None:
    """``OMP_NUM_THREADS`` for a CPU job: whole CPUs of ``cpu`` (a quantity such as ``4``,
    ``1.5`` or ``500m``) per process, at least 1; ``None`` without ``cpu`` or for a quantity
    written otherwise (``2k``, ``1e3``), where torchrun's default stays."""
    match = _CPU_CORES.match(str(cpu)) if cpu is not None else None
    if match is None:
        return None
    millicores = float(match.group(1)) * (1 if match.group(3) else 1000)
    return max(1, int(millicores) // (1000 * procs))


def backoff_limit(max_restarts: int, nodes: int) -> int:
    """``runPolicy.backoffLimit`` for a job that survives ``max_restarts`` failures: the operator
    counts container restarts, and one failure restarts the container of every node."""
    return max_restarts * nodes


def _check(flag: str, error: str | None) -> None:
    if error:
        raise UsageError(f"{flag}: {error}")


def _check_data_mount(mount: str) -> None:
    path = PurePosixPath(mount)
    if not path.is_absolute() or ".." in path.parts or path == PurePosixPath("/"):
        raise UsageError(f"--data-pvc mount path must be an absolute folder other than /, "
                         f"got {mount!r}")
    for taken in (CONFIG_MOUNT, WORK_DIR_MOUNT, SHM_MOUNT):
        taken_path = PurePosixPath(taken)
        if path == taken_path or taken_path in path.parents or path in taken_path.parents:
            raise UsageError(f"--data-pvc mount path {mount} overlaps {taken}, where kctl "
                             "mounts its own volume")


def config_label(config: Path | str) -> str:
    """The config's file name without ``.py``, made a valid label value (≤ 63 characters)."""
    stem = Path(config).name
    stem = stem[:-3] if stem.endswith(".py") else stem
    value = _LABEL_VALUE_BAD.sub("_", stem)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value) or "config"


def config_key(relative: str) -> str:
    """The ConfigMap key for a file of the config tree (see :data:`KEY_SEPARATOR`)."""
    return relative.replace("/", KEY_SEPARATOR)


def work_dir_for(name: str) -> str:
    """The trainer's ``--work-dir`` in the pods: one folder per job name on the work-dir volume."""
    return f"{WORK_DIR_MOUNT}/{name}"


def _config_files(job: Job) -> tuple[str, list[dict]]:
    """The config's path in the pods and the ConfigMap's entries (key, path, text)."""
    tree = collect(job.config)
    files, keys = [], {}
    for relative, path in tree.files.items():
        key = config_key(relative)
        error = config_map_key_error(key)
        if error:
            raise UsageError(f"config file {relative} cannot travel in a ConfigMap ({error}); "
                             "rename it or use --config-in-image")
        if key in keys:
            raise UsageError(f"config files {keys[key]} and {relative} would share the ConfigMap "
                             f"key {key!r}; rename one or use --config-in-image")
        keys[key] = relative
        files.append({"key": key, "path": relative, "text": path.read_text(encoding="utf-8")})
    size = data_size({"data": {f["key"]: f["text"] for f in files}})
    if size > CONFIG_MAP_LIMIT:
        raise UsageError(f"the config and its _base_ files hold {size} bytes, more than a "
                         f"ConfigMap's {CONFIG_MAP_LIMIT}; use --config-in-image")
    return f"{CONFIG_MOUNT}/{tree.main}", files


def _int_override(trainer_args: tuple[str, ...], key: str) -> int | None:
    """The last ``key=N`` among the trainer's ``--cfg-options``, if any."""
    value = None
    for arg in trainer_args:
        if arg.startswith(key + "="):
            try:
                value = int(arg.split("=", 1)[1])
            except ValueError:
                value = None
    return value


def batch_size_warning(job: Job) -> str | None:
    """A warning when the total batch differs from ``auto_scale_lr.base_batch_size`` and the
    learning rate will not be scaled; ``None`` when they agree, a value is unknown, or the
    trainer already gets ``--auto-scale-lr``."""
    if "--auto-scale-lr" in job.trainer_args:
        return None
    values = read_values(job.config)
    batch = _int_override(job.trainer_args, "train_dataloader.batch_size")
    base = _int_override(job.trainer_args, "auto_scale_lr.base_batch_size")
    batch = batch if batch is not None else lookup(values, "train_dataloader.batch_size")
    base = base if base is not None else lookup(values, "auto_scale_lr.base_batch_size")
    if type(batch) is not int or type(base) is not int:
        return None
    processes = job.topology.world_size
    total = processes * batch
    if total == base:
        return None
    return (f"total batch size is {processes} processes x {batch} "
            f"(train_dataloader.batch_size) = {total}, but the config's learning rate is set "
            f"for auto_scale_lr.base_batch_size={base}; to scale it to {total}, pass "
            f"--auto-scale-lr to the trainer (append `-- --auto-scale-lr`)")


class PyTorchJobBackend(Backend):
    """Kubeflow PyTorchJob: ConfigMap + PyTorchJob, validated, created through
    :func:`kctl.k8s.apply.create`."""

    name = "pytorchjob"
    template = "pytorchjob.yaml.j2"
    capabilities = frozenset({"multi_node", "gpu", "cpu", "submit", "status", "logs", "delete",
                              "list"})

    def render(self, job: Job, **options) -> DryRun:
        """The manifest for ``job``; ``options`` are :class:`ClusterOptions` fields.

        ``DryRun.text`` is the multi-document YAML, ``DryRun.request`` the same objects as
        dicts (ConfigMap first, PyTorchJob last; parsed on first use), ``DryRun.warnings`` what
        the user should know. Nothing is validated here: :meth:`submit` does that.
        """
        opts = ClusterOptions(**options)
        topology = job.topology
        warnings = []
        if opts.work_dir_pvc is None:
            if topology.nodes > 1:
                raise UsageError(
                    f"--nodes {topology.nodes} needs --work-dir-pvc CLAIM (a ReadWriteMany claim): "
                    "every node must read the same checkpoints to resume")
            warnings.append(f"no --work-dir-pvc: {work_dir_for(job.name)} is an emptyDir; "
                            "checkpoints survive container restarts but die with the pod")
        batch_warning = batch_size_warning(job)
        if batch_warning:
            warnings.append(batch_warning)

        if opts.config_in_image is not None:
            config_path, config_files = opts.config_in_image, None
        else:
            config_path, config_files = _config_files(job)
        labels = {LABEL_APP: APP, LABEL_INSTANCE: job.name, LABEL_MANAGED_BY: MANAGED_BY,
                  LABEL_CONFIG: config_label(job.config)}
        job_labels = {**labels, LABEL_QUEUE: opts.queue} if opts.queue else labels
        command = ["torchrun", "-m", TRAINER_MODULE,
                   *job.trainer_args_for(config_path, "pytorch", work_dir_for(job.name))]
        resources: dict[str, dict] = {}
        for key, value in (("cpu", opts.cpu), ("memory", opts.memory)):
            if value is not None:
                resources.setdefault("limits", {})[key] = value
                resources.setdefault("requests", {})[key] = value
        if topology.uses_gpus:
            resources.setdefault("limits", {})["nvidia.com/gpu"] = topology.gpus_per_node
        replicas = {"Master": 1}
        if topology.nodes > 1:
            replicas["Worker"] = topology.nodes - 1

        text = render_template(
            self.template,
            job_name=job.name,
            namespace=opts.namespace,
            labels=labels,
            job_labels=job_labels,
            config_map_name=f"{job.name}-config",
            config_files=config_files,
            config_mount=CONFIG_MOUNT,
            nproc_per_node=str(topology.procs_per_node),
            clean_pod_policy=CLEAN_POD_POLICY,
            backoff_limit=backoff_limit(opts.max_restarts, topology.nodes),
            ttl_seconds_after_finished=TTL_SECONDS_AFTER_FINISHED,
            suspend=opts.queue is not None,
            min_available=topology.nodes if opts.gang else None,
            priority_class=opts.priority_class,
            replicas=replicas,
            restart_policy=RESTART_POLICY,
            run_as_user=RUN_AS_USER,
            container_name=CONTAINER_NAME,
            image=opts.image,
            command=command,
            env=TORCHRUN_ENV,
            hide_gpus=not topology.uses_gpus,
            omp_threads=(None if topology.uses_gpus
                         else threads_per_process(opts.cpu, topology.procs_per_node)),
            port_name=PORT_NAME,
            port=PORT,
            resources=resources,
            work_dir_mount=WORK_DIR_MOUNT,
            work_dir_pvc=opts.work_dir_pvc,
            data_pvc=opts.data_pvc,
            shm_mount=SHM_MOUNT,
            shm_size=opts.shm_size,
        )
        return DryRun(backend=self.name, text=text, warnings=warnings, parse=_objects)

    def submit(self, dryrun: DryRun, context: str | None = None, **connection) -> str:
        """Create the rendered objects (ConfigMap owned by the job) and return the job's name.

        The namespace is the manifest's, else the kubeconfig context's; ``context`` is the
        kubeconfig context (default: the current one); ``connection`` goes to
        :func:`kctl.k8s.apply.create` (e.g. ``timeout``).
        """
        from kctl.k8s.apply import create
        from kctl.validate.manifest import check_rendered

        objects = dryrun.request
        check_rendered(objects)
        return create(objects, objects[-1]["metadata"].get("namespace"), context, **connection)


def _objects(text: str) -> list:
    """The rendered YAML's objects as dicts (what ``-o json`` prints and ``submit`` creates).
    Parsed on first use: printing the YAML needs neither PyYAML nor this."""
    from kctl.validate.manifest import load_documents

    return load_documents(text)


BACKEND = PyTorchJobBackend()
