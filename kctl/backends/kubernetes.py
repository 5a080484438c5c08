"""What every Kubernetes target shares: the pod kctl runs and the cluster operations.

A job becomes a ConfigMap ``<name>-config`` holding the config and every ``_base_`` file it
inherits from (mounted read-only at :data:`CONFIG_MOUNT` with the tree's relative layout; none with
``config_in_image``), and one object of the backend's kind whose pods each run ``torchrun -m
trainer CONFIG --launcher pytorch --work-dir /work_dirs/<name> --resume [TRAINER_ARGS]``.
``torchrun`` gets no topology flags: it reads the operator's ``PET_*`` variables, so the manifest
states the topology once. The pods run as uid :data:`RUN_AS_USER`, with work_dir, an optional
read-only data claim and a memory-backed ``/dev/shm``, on a read-only root filesystem (``/tmp`` is
an emptyDir: the image keeps its caches there).

:class:`KubernetesBackend` computes all of that (:meth:`~KubernetesBackend.pod`), submits
(validate, then create through :func:`kctl.k8s.apply.create`) and operates jobs: ``describe``,
``list_jobs``, ``logs``, ``cancel``. A kind's backend (:mod:`kctl.backends.pytorchjob`,
:mod:`kctl.backends.trainjob`) names its API resource, pod labels and container, lays the pod out
in its template, and answers a few questions about its objects (replicas, state, size).

CPU jobs (``--gpus 0``) with ``--cpu`` get ``OMP_NUM_THREADS`` = the CPUs per process (at least
1), like ``kctl slurm-script``'s ``--cpus-per-task``: a CPU job's results depend on its thread
count, which then does not depend on the node it lands on (:func:`threads_per_process`).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from kctl import options as opts
from kctl.backends.base import Backend, DryRun, render_template
from kctl.configfiles import collect, lookup, read_values
from kctl.errors import UsageError
from kctl.job import TRAINER_MODULE, Job
from kctl.validate.limits import CONFIG_MAP_LIMIT, config_map_key_error, data_size
from kctl.validate.names import dns1123_label_error

#: Where the pods see the config tree, the work-dir volume and shared memory.
CONFIG_MOUNT = "/config"
WORK_DIR_MOUNT = "/work_dirs"
SHM_MOUNT = "/dev/shm"
#: The root filesystem is read-only; the image points the caches of PyTorch, mmengine and
#: matplotlib (``XDG_CACHE_HOME``, ``MPLCONFIGDIR``) here, an emptyDir.
TMP_MOUNT = "/tmp"

#: Non-root user, group and fsGroup (so the work-dir claim is writable); the image's user.
RUN_AS_USER = 1000

#: Environment of every container: torchrun computes the ranks of identical nodes itself, so a
#: restarted node cannot take stale ranks from the previous master's store (see
#: :mod:`kctl.backends.pytorchjob`).
TORCHRUN_ENV = {"TORCH_ELASTIC_WORKER_IDENTICAL": "1"}

#: Labels on the job, the ConfigMap and the pod templates.
LABEL_APP = "app.kubernetes.io/name"
APP = "kctl-trainer"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "kctl"
LABEL_CONFIG = "kctl.dev/config"
#: Kueue's label naming the LocalQueue (on the job only).
LABEL_QUEUE = "kueue.x-k8s.io/queue-name"

#: The resource name of NVIDIA GPUs (the device plugin's).
GPU_RESOURCE = "nvidia.com/gpu"

#: ``_base_/models/resnet18.py`` is stored under the ConfigMap key ``_base___models__resnet18.py``
#: (keys cannot hold '/'); the volume's ``items`` put it back at its relative path.
KEY_SEPARATOR = "__"

_LABEL_VALUE_BAD = re.compile(r"[^-A-Za-z0-9_.]+")
#: CPUs as a whole or decimal number of cores or millicores (compiled on first use: --cpu).
_CPU_CORES = r"^(\d+(\.\d*)?|\.\d+)(m?)$"


def threads_per_process(cpu: str | None, procs: int) -> int | None:
    """``OMP_NUM_THREADS`` for a CPU job: whole CPUs of ``cpu`` (a quantity such as ``4``,
    ``1.5`` or ``500m``) per process, at least 1; ``None`` without ``cpu`` or for a quantity
    written otherwise (``2k``, ``1e3``), where torchrun's default stays."""
    match = re.match(_CPU_CORES, str(cpu)) if cpu is not None else None
    if match is None:
        return None
    millicores = float(match.group(1)) * (1 if match.group(3) else 1000)
    return max(1, int(millicores) // (1000 * procs))


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


def config_files(job: Job) -> tuple[str, list[dict]]:
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


def _check_data_mount(mount: str) -> None:
    path = PurePosixPath(mount)
    for taken in (CONFIG_MOUNT, WORK_DIR_MOUNT, SHM_MOUNT, TMP_MOUNT):
        taken_path = PurePosixPath(taken)
        if path == taken_path or taken_path in path.parents or path in taken_path.parents:
            raise UsageError(f"--data-pvc mount path {mount} overlaps {taken}, where kctl "
                             "mounts its own volume")


class KubernetesBackend(Backend):
    """A kind served by the Kubernetes API (see the module docstring).

    Subclasses set the class attributes below and implement the hooks under "kind-specific".
    """

    #: The kind and its API: ``PyTorchJob``, ``kubeflow.org``, ``v1``, ``pytorchjobs``.
    kind: str = ""
    group: str = ""
    version: str = ""
    plural: str = ""
    #: The container that runs the trainer in every pod.
    container: str = ""
    #: How to install the operator serving this kind (one line, for "not installed" errors).
    install: str = ""
    #: What Pod Security ``restricted`` rejects of this kind's pods (``kctl doctor``), if any.
    restricted_rejects: str = ""

    @property
    def name(self) -> str:  # the backend's name, as for the other targets
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def resource(self):
        """The kind as :class:`kctl.k8s.Resource`, for requests and their error messages."""
        from kctl.k8s import Resource

        return Resource(self.plural, self.group, self.kind, missing=self.install)

    def options(self) -> list[opts.Option]:
        """The rows of :data:`kctl.options.OPTIONS` this kind takes (TorchX's ``run_opts``)."""
        return [option for option in opts.OPTIONS if self.kind in option.kinds]

    # -- rendering ---------------------------------------------------------------------------

    def render(self, job: Job, namespace: str | None = None, **values: Any) -> DryRun:
        """The manifest for ``job`` in ``namespace`` (``None``: none is written, the context's
        is used on submit, as with kubectl), with the option ``values`` given by name
        (:data:`kctl.options.OPTIONS`; the rest take their defaults).

        ``DryRun.text`` is the multi-document YAML, ``DryRun.request`` the same objects as dicts
        (ConfigMap first, the job last; parsed on first use), ``DryRun.warnings`` what the user
        should know. Nothing is validated here: :meth:`submit` does that.
        """
        settings = opts.settings(self.kind, values)
        if namespace is not None:
            error = dns1123_label_error(namespace)
            if error:
                raise UsageError(f"--namespace: {error}")
        warnings: list[str] = []
        context = self.pod(job, settings, warnings)
        context["namespace"] = namespace
        context.update(self.kind_context(job, settings, warnings))
        text = render_template(self.template, **context)
        return DryRun(backend=self.name, text=text, warnings=warnings, parse=_objects)

    def pod(self, job: Job, settings: opts.Settings, warnings: list[str]) -> dict:
        """What every kind's pod holds (template variables): labels, the config tree, the
        work-dir claim, the command, environment, resources, volumes and placement."""
        limit = self.name_limit(job.topology.nodes)
        if len(job.name) > limit:
            raise UsageError(f"job name {job.name!r} is {len(job.name)} characters; a "
                             f"{self.kind} of {job.topology.nodes} node(s) takes at most {limit} "
                             f"({self.name_limit_why})")
        if settings.data_pvc is not None:
            _check_data_mount(settings.data_pvc.mount)
        topology = job.topology
        batch_warning = batch_size_warning(job)
        if batch_warning:
            warnings.append(batch_warning)

        if settings.config_in_image is not None:
            config_path, files = settings.config_in_image, None
        else:
            config_path, files = config_files(job)
        labels = {LABEL_APP: APP, LABEL_INSTANCE: job.name, LABEL_MANAGED_BY: MANAGED_BY,
                  LABEL_CONFIG: config_label(job.config)}
        for key in settings.label:
            if key in labels or key == LABEL_QUEUE:
                raise UsageError(f"--label {key}=...: kctl sets the label {key} itself")
        labels.update(settings.label)
        job_labels = {**labels, LABEL_QUEUE: settings.queue} if settings.queue else labels
        command = ["torchrun", "-m", TRAINER_MODULE,
                   *job.trainer_args_for(config_path, "pytorch", work_dir_for(job.name))]
        resources: dict[str, dict] = {}
        for key, value in (("cpu", settings.cpu), ("memory", settings.memory)):
            if value is not None:
                resources.setdefault("limits", {})[key] = value
                resources.setdefault("requests", {})[key] = value
        if topology.uses_gpus:
            resources.setdefault("limits", {})[GPU_RESOURCE] = topology.gpus_per_node
        env = dict(TORCHRUN_ENV)
        if not topology.uses_gpus:
            # CPU training: a node whose container runtime shows every GPU to pods that request
            # none must not turn this into a GPU job; the trainer trains on the CPU when CUDA
            # sees nothing. The CPUs per process: the results of CPU training depend on them.
            env["CUDA_VISIBLE_DEVICES"] = ""
            threads = threads_per_process(settings.cpu, topology.procs_per_node)
            if threads is not None:
                env["OMP_NUM_THREADS"] = str(threads)
        env.update(settings.env)  # the user's value of a name kctl sets wins, as in kubectl
        return dict(
            job_name=job.name,
            labels=labels,
            job_labels=job_labels,
            pod_annotations=settings.annotation,
            suspend=settings.queue is not None,
            config_map_name=f"{job.name}-config",
            config_files=files,
            config_mount=CONFIG_MOUNT,
            run_as_user=RUN_AS_USER,
            container_name=self.container,
            image=settings.image,
            image_pull_policy=settings.image_pull_policy,
            image_pull_secrets=settings.image_pull_secret,
            node_selector=settings.node_selector,
            tolerations=settings.toleration,
            service_account=settings.service_account,
            command=command,
            env=env,
            resources=resources,
            work_dir_mount=WORK_DIR_MOUNT,
            work_dir_claim=self.work_dir(job, settings, labels, warnings),
            data_pvc=settings.data_pvc,
            shm_mount=SHM_MOUNT,
            tmp_mount=TMP_MOUNT,
            shm_size=settings.shm_size,
        )

    def work_dir(self, job: Job, settings: opts.Settings, labels: dict,
                 warnings: list[str]) -> dict | None:
        """The claim holding ``/work_dirs``: ``name``, and ``size``, ``access_mode`` and
        ``storage_class`` when kctl creates it; ``None`` for an emptyDir (``--work-dir-size 0``).

        A claim kctl creates is ``<job>-work-dir``. It is not owned by the job: it outlives
        ``kctl delete``, and the same job submitted again reuses it and resumes.
        """
        if settings.work_dir_pvc is not None:
            for name in ("work_dir_size", "storage_class"):
                if name in settings.given:
                    raise UsageError(f"{opts.BY_NAME[name].flag} is for the claim kctl creates; "
                                     f"--work-dir-pvc {settings.work_dir_pvc} names an existing "
                                     "one")
            shared = self.claim_access(job) == "ReadWriteMany"
            if shared:
                warnings.append(f"every node of this {self.kind} mounts --work-dir-pvc "
                                f"{settings.work_dir_pvc}: it must be a ReadWriteMany claim")
            return {"name": settings.work_dir_pvc}
        if settings.work_dir_size is None:
            if "storage_class" in settings.given:
                raise UsageError("--storage-class is for the claim kctl creates; "
                                 "--work-dir-size 0 asks for none")
            warnings.append(f"--work-dir-size 0: {work_dir_for(job.name)} is an emptyDir; "
                            "checkpoints survive container restarts but die with the pod")
            return None
        access = self.claim_access(job)
        if access == "ReadWriteMany":
            warnings.append(f"every node of a {self.kind} mounts the work-dir claim, so kctl asks "
                            f"for a ReadWriteMany claim ({job.name}-work-dir): the storage class "
                            "must offer it (kctl doctor tells)")
        return {"name": f"{job.name}-work-dir", "size": settings.work_dir_size,
                "access_mode": access, "storage_class": settings.storage_class,
                "labels": labels}

    # -- kind-specific -----------------------------------------------------------------------

    #: Why :meth:`name_limit` is the limit, for the error message.
    name_limit_why = "its pods' names are made from it"

    def name_limit(self, nodes: int) -> int:
        """The longest name a job of ``nodes`` nodes can have."""
        raise NotImplementedError

    def claim_access(self, job: Job) -> str:
        """The access mode the work-dir claim needs: ``ReadWriteOnce`` where only the pod of
        rank 0 mounts it, ``ReadWriteMany`` where several nodes do."""
        raise NotImplementedError

    def kind_context(self, job: Job, settings: opts.Settings, warnings: list[str]) -> dict:
        """The template variables only this kind has."""
        raise NotImplementedError

    def pod_selector(self, name: str) -> str:
        """The label selector of every pod of job ``name``."""
        raise NotImplementedError

    def replica_selector(self, name: str, replica: str) -> str:
        """The label selector of the pods of one replica (``master-0``, ``node-1``)."""
        raise NotImplementedError

    def replicas(self, job: dict) -> list[str]:
        """The job's replicas in kctl's names, in order (rank 0's first)."""
        raise NotImplementedError

    def replica_of(self, pod: dict) -> str:
        """A pod's replica, from the operator's labels."""
        raise NotImplementedError

    def state(self, job: dict) -> str | None:
        """The job's state as ``kctl list`` shows it; ``None`` before the operator saw it."""
        raise NotImplementedError

    def outcome(self, job: dict) -> str | None:
        """``Succeeded`` or ``Failed`` once the job has ended, else ``None``."""
        raise NotImplementedError

    def pod_specs(self, job: dict) -> list[dict]:
        """The pod specs the job's manifest states (one per replica type)."""
        raise NotImplementedError

    def nodes(self, job: dict) -> int:
        """How many pods (nodes) the job runs."""
        raise NotImplementedError

    def expected_pod_name(self, name: str, replica: str) -> str:
        """The name a replica's pod will have, for a pod not created yet; ``-`` if unknown."""
        return "-"

    def installation(self, cluster) -> tuple[str, str]:
        """``kctl doctor``'s mark and line for this kind, whose CRD the cluster serves: is what
        serves it fit for what kctl renders?"""
        from kctl.k8s.doctor import OK

        return OK, f"{self.api_version} served"

    def references(self, job: dict, namespace: str) -> list:
        """What the job names but kctl does not create, to look up before submitting
        (:class:`kctl.k8s.apply.Reference` s)."""
        return []

    def summary(self, job: dict) -> list[tuple[str, str]]:
        """Extra ``kctl status`` summary rows (label, value) of this kind."""
        return []

    def failure(self, cluster, job: dict, pods: list[dict]) -> str:
        """``kctl status``'s word on why a failed job failed; empty when it has not failed."""
        return ""

    # -- facts every kind answers the same way -----------------------------------------------

    def node_resources(self, job: dict) -> dict:
        """The trainer container's ``resources`` (requests and limits) on each node."""
        from kctl.k8s.pods import main_container

        specs = self.pod_specs(job)
        return ((main_container(specs[0], self.container) or {}).get("resources") or {}
                if specs else {})

    def gpus_per_node(self, job: dict) -> int:
        """``nvidia.com/gpu`` per node (0 when CPU-only)."""
        resources = self.node_resources(job)
        for part in ("limits", "requests"):
            value = (resources.get(part) or {}).get(GPU_RESOURCE)
            if value is not None:
                try:
                    return int(value)
                except (TypeError, ValueError):
                    return 0
        return 0

    def size(self, job: dict) -> str:
        """``NODESxGPUS``, e.g. ``2x8``; GPUs are per node."""
        return f"{self.nodes(job)}x{self.gpus_per_node(job)}"

    def claims(self, job: dict) -> list[str]:
        """Names of the PersistentVolumeClaims the job's pods mount, in order of appearance."""
        names = []
        for spec in self.pod_specs(job):
            for volume in spec.get("volumes") or []:
                claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
                if claim and claim not in names:
                    names.append(claim)
        return names

    # -- operations ------------------------------------------------------------------------

    def submit(self, dryrun: DryRun, cluster) -> str:
        """Validate the rendered objects, create them (the ConfigMap owned by the job) and
        return the job's name. The namespace is the manifest's, else ``cluster``'s."""
        from kctl.k8s.apply import create
        from kctl.validate.manifest import check_rendered

        objects = dryrun.request
        check_rendered(objects)
        return create(cluster, self, objects, objects[-1]["metadata"].get("namespace"))

    def get(self, cluster, name: str, namespace: str, missing_ok: bool = False) -> dict | None:
        """The job ``name``; a one-line error (or ``None`` with ``missing_ok``) if absent."""
        from kctl.k8s.jobs import get_job

        return get_job(cluster, self, name, namespace, missing_ok)

    def list_jobs(self, cluster, namespace: str | None) -> list[dict]:
        """The jobs of this kind in ``namespace``, or in every namespace when it is ``None``."""
        from kctl.k8s.jobs import list_jobs

        return list_jobs(cluster, self, namespace)

    def cancel(self, cluster, job: dict) -> None:
        """Delete ``job`` with its pods and ConfigMap (claims are kept)."""
        from kctl.k8s.jobs import delete_job

        delete_job(cluster, self, job)

    def describe(self, cluster, name: str, namespace: str) -> str:
        """What ``kctl status`` prints for job ``name``."""
        from kctl.k8s.status import describe

        return describe(cluster, self, name, namespace)

    def logs(self, cluster, job: dict, replicas: list[str], follow: bool = False) -> None:
        """Print the replicas' logs, ``[replica]``-prefixed; with ``follow`` until the job ends."""
        from kctl.k8s import logs

        if follow:
            logs.follow_logs(cluster, self, job, replicas)
        else:
            logs.print_logs(cluster, self, job, replicas)


def _objects(text: str) -> list:
    """The rendered YAML's objects as dicts (what ``-o json`` prints and ``submit`` creates).
    Parsed on first use: printing the YAML needs neither PyYAML nor this."""
    from kctl.validate.manifest import load_documents

    return load_documents(text)
