"""Run a TrainJob on this machine the way Kubeflow Trainer v2.3.0 would, with JobSet v0.12.0 and
the Kubernetes Job controller under it.

Facts and line references: the reference set's ``trainjob/trainjob-facts.md`` (sections 2, 3 and
5). The PyTorchJob mode is :mod:`tests.support.operator_emulator`; the kubelet's part (volumes,
environment, restarts of a container, logs) is shared in :mod:`tests.support.pod_runner`, and how
a container runs is :mod:`tests.support.containers`.

Given the objects of a manifest (the TrainJob, its ConfigMaps and PersistentVolumeClaims, and the
(Cluster)TrainingRuntime it names if the manifest brings one; the default ``torch-distributed``
ClusterTrainingRuntime is vendored in ``tests/support/data/trainjob/``), the emulator

1. builds the JobSet the trainer's controller would create (:func:`build_jobset`): the runtime's
   template, then each of ``runtimePatches`` in list order as a strategic-merge patch (lists of
   containers, volumes, env, replicated jobs merged by ``name``, volumeMounts by ``mountPath``,
   maps such as ``securityContext`` and labels merged key by key, anything else replaced); then,
   on the ``node`` container of the trainer's replicated job (Job-template label
   ``trainer.kubeflow.org/trainjob-ancestor-step: trainer``), ``trainer.image``, ``command`` and
   ``args`` replace the runtime's, ``trainer.env`` is merged in by name, ``resourcesPerNode`` is
   merged key by key into the runtime's resources, and the torch plugin adds its five ``PET_``
   variables (:func:`torch_env`, with :func:`nproc_per_node`) and containerPort 29500;
   ``trainer.numNodes`` (else the runtime's ``mlPolicy.numNodes``) becomes the Job's
   ``parallelism`` and ``completions``; last the JobSet webhook's defaults (``completionMode:
   Indexed``, pod ``restartPolicy: OnFailure`` when unset, success policy ``All``);
2. runs its one Indexed Job ``<tj>-node-0``: ``numNodes`` pods ``<tj>-node-0-<i>-<5 random
   characters>`` with hostname ``<tj>-node-0-<i>``, the JobSet's and the Job's pod labels, the
   completion-index annotation (which ``PET_NODE_RANK`` reads) and ``JOB_COMPLETION_INDEX``;
3. restarts a container in its pod under ``OnFailure`` as the kubelet does (CrashLoopBackOff);
4. applies the Job controller's rules: the Job fails (``BackoffLimitExceeded``) when the restart
   counts of its pods that are still running reach ``backoffLimit`` (the runtime's Job template,
   6 by default; 0 means the first restart), or when more of its pods have failed than it allows
   (a deleted pod counts as failed); then it deletes its active pods, the crash-looping one
   included (Kubernetes' Job documentation: under ``OnFailure`` "the Pod running the Job will be
   terminated once the job backoff limit has been reached"), so only pods that failed under
   ``Never`` are left to read. A deleted pod (SIGTERM,
   ``grace_period``, SIGKILL), or a failed one under ``restartPolicy: Never``, is replaced by a new
   pod of the same index (a new name, new emptyDirs) after the Job's pod-failure backoff (10 s,
   doubling per failure since the last success, at most 10 minutes). The Job is complete when
   every index has a pod that exited 0;
5. sets the TrainJob's conditions as JobSet and the trainer do: the first failed Job fails the
   JobSet (``FailedJobs``; torch-distributed has no failurePolicy, so nothing is restarted) and the
   TrainJob becomes ``Failed`` with its reason and message ("jobset failed due to one or more job
   failures (first failed job: <tj>-node-0)"); a complete Job completes the JobSet and the TrainJob
   becomes ``Complete`` (``AllJobsCompleted``). There is no ``Created`` or ``Running`` condition;
   :attr:`TrainJobEmulator.phase` is ``Running`` in between, and
   :attr:`TrainJobEmulator.jobs_status` is the TrainJob's ``jobsStatus`` (Jobs counted, not pods:
   each 0 or 1).

What differs from a cluster, and why
------------------------------------
1. ``PET_MASTER_ADDR``: ``<tj>-node-0-0.<tj>`` is node 0's name through the JobSet's headless
   Service. There is no DNS here, so local processes get ``127.0.0.1``, where node 0 is when every
   pod runs on this machine (as the PyTorchJob mode does for its Service name). Other uses of pod
   DNS names (written into ``args``) do not resolve.
2. ``PET_MASTER_PORT``: 29500 on a cluster, where each pod has its own network namespace; here all
   share one, so by default it is replaced by a free local port and two emulated jobs cannot
   clash (``master_port="manifest"`` keeps 29500). The same caveat as the PyTorchJob mode's
   deviation 2: every pod sees node 0's address as its own.
3. Paths, the image, GPUs and what is not enforced (``securityContext``, ``readOnly``,
   ``resources`` other than GPUs, ``sizeLimit``) are as in the PyTorchJob mode (its deviations 3 to
   6), and so is the kubelet's timing (deviation 7; ``restart_delay`` also scales the Job's
   pod-failure backoff).

   In container mode (``runtime=PodmanRuntime(podman)``, see the PyTorchJob mode's "Container
   mode") deviations 1 to 3 go as they do there: each node's container is reachable as
   ``<tj>-node-0-<i>.<tj>`` (a network alias on the job's podman network), so ``PET_MASTER_ADDR``
   and 29500 are used unchanged, and volumes, the image and the ``securityContext`` are real.
4. A container restart counts towards ``backoffLimit`` when the container exits. On a cluster
   ``restartCount`` grows when the kubelet starts it again, after the CrashLoopBackOff wait, so
   there the Job fails only once that further start has begun (and its pods are then deleted).
5. A replacement pod is created after the Job's backoff and once the old pod's processes are
   gone. On a cluster (``podReplacementPolicy: TerminatingOrFailed``, the default without a
   ``podFailurePolicy``) it can be created while the old pod is still terminating; here the two
   would share node 0's port and the same hostname.
6. All pods start at once (no scheduling, ``podGroupPolicy`` is ignored), and when the Job fails
   the TrainJob's ``Failed`` condition is set once its pods are gone (on a cluster it can appear
   while they still terminate): a test must leave no process behind.
7. Refused with :class:`EmulatorError`, not emulated: ``suspend: true`` (a job queued for Kueue),
   ``activeDeadlineSeconds``, ``initializer``, ``managedBy`` other than the trainer's, a runtime
   ``failurePolicy`` (JobSet restarts) or replicated jobs besides the trainer's, init containers or
   more than one container, a Job ``backoffLimitPerIndex``, ``podFailurePolicy`` or
   ``successPolicy``, and what the PyTorchJob mode refuses in a pod (its deviation 10).
8. Refused as the admission webhooks refuse them (so nothing would run on a cluster either): a
   runtime kind or group the trainer does not support, a runtime that does not exist, ``PET_``
   variables in ``trainer.env``, a runtime patch naming a replicated job or container the runtime
   does not have, or setting ``env`` on ``node``. Refused because the cluster would accept the job
   and never run it: a name longer than 48 characters (the JobSet's pod names would exceed 63),
   ``numNodes`` below 1.

Usage from a test::

    with TrainJobEmulator(objects, tmp_path / "emu", pvc_root=tmp_path / "pvc") as emu:
        emu.start()
        emu.wait_until(lambda: "epoch 1" in emu.logs(0), timeout=120)   # node 0's current pod
        emu.kill(1)         # or pause(1), delete_pod(1): by node index, or by pod name
        assert emu.wait(timeout=300) == "Complete"
"""

from __future__ import annotations

import copy
import math
import random
import time
from pathlib import Path

import yaml

from tests.support.pod_runner import (LOCAL_ADDR, Condition, EmulatorError, Pod, PodRunner,
                                      gpu_count, host_gpu_count, quantity)

GROUP = "trainer.kubeflow.org"
RUNTIME_KINDS = ("ClusterTrainingRuntime", "TrainingRuntime")
#: The default ClusterTrainingRuntime (see tests/support/data/trainjob/README.md).
DEFAULT_RUNTIME = Path(__file__).parent / "data" / "trainjob" / "torch_distributed.yaml"
#: The trainer's replicated job and container (``constants.Node``), and the label that marks it.
NODE = "node"
ANCESTOR_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"
#: ``constants.ContainerTrainerPort``.
MASTER_PORT = 29500
#: Kubernetes' default ``backoffLimit`` of a Job.
DEFAULT_BACKOFF_LIMIT = 6
#: The longest TrainJob name whose JobSet pod names fit in 63 characters (1 to 10 nodes).
MAX_NAME = 48
#: The torch plugin's variables (``constants.TorchRunReservedEnvNames``).
PET_ENV = ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR",
           "PET_MASTER_PORT")
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
COMPLETION_INDEX_FIELD = f"metadata.annotations['{COMPLETION_INDEX}']"
#: Kubernetes' alphabet of generated name suffixes (``utilrand.String``).
_SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"
#: JobSet's condition reasons and messages (``pkg/constants/constants.go``).
FAILED_JOBS = ("FailedJobs", "jobset failed due to one or more job failures")
ALL_JOBS_COMPLETED = ("AllJobsCompleted", "jobset completed successfully")
#: The strategic-merge keys of the lists a runtime patch can reach (Kubernetes' and JobSet's
#: ``patchMergeKey``s); other lists are replaced.
MERGE_KEYS = {"replicatedJobs": "name", "containers": "name", "initContainers": "name",
              "volumes": "name", "volumeMounts": "mountPath", "env": "name",
              "ports": "containerPort", "imagePullSecrets": "name", "schedulingGates": "name"}


# ---------------------------------------------------------------------------------------------
# What the trainer's controller computes (pure functions of the manifest)
# ---------------------------------------------------------------------------------------------

def find_runtime(trainjob: dict, objects: list[dict]) -> dict:
    """The (Cluster)TrainingRuntime ``trainjob`` references: from ``objects``, else the vendored
    ``torch-distributed``; refused as the trainer's webhook refuses it otherwise."""
    ref = trainjob["spec"]["runtimeRef"]
    kind, group = ref.get("kind", RUNTIME_KINDS[0]), ref.get("apiGroup", GROUP)
    if group != GROUP or kind not in RUNTIME_KINDS:
        raise EmulatorError(f"unsupported runtime: {kind}.{group}")
    namespace = trainjob["metadata"].get("namespace", "default")
    for obj in objects:
        if (obj.get("kind") == kind and obj["metadata"]["name"] == ref["name"]
                and (kind == "ClusterTrainingRuntime"
                     or obj["metadata"].get("namespace", "default") == namespace)):
            return obj
    if kind == "ClusterTrainingRuntime" and ref["name"] == "torch-distributed":
        return yaml.safe_load(DEFAULT_RUNTIME.read_text())
    raise EmulatorError(f"{kind} {ref['name']!r} is not in the manifest: the trainer's webhook "
                        f"refuses the TrainJob (the runtime must be created before the TrainJob)")


def strategic_merge(base: dict, patch: dict) -> dict:
    """``patch`` applied to ``base`` as a Kubernetes strategic-merge patch: maps merged key by
    key (``null`` removes a key), lists in :data:`MERGE_KEYS` merged item by item on their key
    (new items appended), other values replaced. Neither argument is changed."""
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if key.startswith("$"):
            raise EmulatorError(f"patch directive {key!r} is not emulated")
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = strategic_merge(merged[key], value)
        elif key in MERGE_KEYS and isinstance(value, list) and isinstance(merged.get(key), list):
            merge_key, items = MERGE_KEYS[key], merged[key]
            for item in value:
                same = [i for i, old in enumerate(items) if old.get(merge_key) == item[merge_key]]
                if same:
                    items[same[0]] = strategic_merge(items[same[0]], item)
                else:
                    items.append(copy.deepcopy(item))
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def upsert(entries: list[dict], new: list[dict], key: str) -> list[dict]:
    """``entries`` with each of ``new`` replacing the entry of the same ``key``, or appended
    (the trainer's ``apply.UpsertEnvVars``, ``UpsertPort``)."""
    result = list(entries)
    for entry in new:
        same = [i for i, old in enumerate(result) if old.get(key) == entry[key]]
        if same:
            result[same[0]] = entry
        else:
            result.append(entry)
    return result


def nproc_per_node(trainer: dict, runtime_container: dict) -> str:
    """``PET_NPROC_PER_NODE`` as the torch plugin computes it (facts section 2):
    ``trainer.numProcPerNode`` if set; otherwise ``auto``, which stays ``auto`` (torchrun counts
    the GPUs) when a resource name contains "gpu", and otherwise becomes the CPU request (the limit
    without a request) rounded up, at least 1. The resources are ``trainer.resourcesPerNode``,
    else the runtime's ``node`` container's."""
    if trainer.get("numProcPerNode") is not None:
        return str(int(trainer["numProcPerNode"]))
    resources = trainer.get("resourcesPerNode") or runtime_container.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    if any("gpu" in name.lower() for name in (*limits, *requests)):
        return "auto"
    cpu = requests.get("cpu", limits.get("cpu"))
    return str(max(1, math.ceil(quantity(cpu)))) if cpu is not None else "1"


def torch_env(name: str, num_nodes: int, nproc: str) -> list[dict]:
    """The torch plugin's variables for TrainJob ``name``, in its order (TORCH:145-162)."""
    return [{"name": "PET_NNODES", "value": str(num_nodes)},
            {"name": "PET_NPROC_PER_NODE", "value": nproc},
            {"name": "PET_NODE_RANK",
             "valueFrom": {"fieldRef": {"fieldPath": COMPLETION_INDEX_FIELD}}},
            {"name": "PET_MASTER_ADDR", "value": f"{name}-{NODE}-0-0.{name}"},
            {"name": "PET_MASTER_PORT", "value": str(MASTER_PORT)}]


def _trainer_job(replicated_jobs: list[dict]) -> dict:
    for rjob in replicated_jobs:
        labels = (rjob.get("template", {}).get("metadata") or {}).get("labels") or {}
        if labels.get(ANCESTOR_LABEL) == "trainer":
            return rjob
    raise EmulatorError(f"the runtime has no replicated job labelled {ANCESTOR_LABEL}: trainer")


def _node_container(rjob: dict) -> dict:
    for container in rjob["template"]["spec"]["template"]["spec"].get("containers") or []:
        if container["name"] == NODE:
            return container
    raise EmulatorError(f"the runtime's job {rjob['name']!r} has no container {NODE!r}")


def _check_patch(patch: dict, replicated_jobs: list[dict]) -> None:
    """The trainer webhook's rules for one runtime patch that would change what runs (JS:172-209):
    its replicated jobs and containers must exist in the runtime; no ``env`` on ``node``."""
    template = (patch.get("trainingRuntimeSpec") or {}).get("template") or {}
    runtime_jobs = {rjob["name"]: rjob for rjob in replicated_jobs}
    for rjob in (template.get("spec") or {}).get("replicatedJobs") or []:
        if rjob["name"] not in runtime_jobs:
            raise EmulatorError(f"runtimePatches[{patch.get('manager')}]: the runtime has no "
                                f"replicated job {rjob['name']!r}")
        pod_spec = runtime_jobs[rjob["name"]]["template"]["spec"]["template"]["spec"]
        patched = (((rjob.get("template") or {}).get("spec") or {}).get("template") or {}).get(
            "spec") or {}
        for field in ("containers", "initContainers"):
            have = {c["name"] for c in pod_spec.get(field) or []}
            for container in patched.get(field) or []:
                if container["name"] not in have:
                    raise EmulatorError(
                        f"runtimePatches[{patch.get('manager')}]: {field} {container['name']!r} "
                        f"does not exist in the runtime's job {rjob['name']!r}")
                if container["name"] == NODE and "env" in container:
                    raise EmulatorError(f"runtimePatches[{patch.get('manager')}]: env must not "
                                        f"be set on container {NODE!r}; use spec.trainer.env")


def build_jobset(trainjob: dict, runtime: dict) -> dict:
    """The JobSet the v2.3.0 controller creates for ``trainjob`` from ``runtime``, as the JobSet
    webhook admits it (its defaults added); see the module docstring, step 1."""
    name = trainjob["metadata"]["name"]
    spec = trainjob["spec"]
    template = copy.deepcopy(runtime["spec"]["template"])
    for patch in spec.get("runtimePatches") or []:
        _check_patch(patch, template["spec"]["replicatedJobs"])
        template = strategic_merge(
            template, (patch.get("trainingRuntimeSpec") or {}).get("template") or {})
    replicated_jobs = template["spec"]["replicatedJobs"]
    rjob = _trainer_job(replicated_jobs)
    container = _node_container(rjob)
    ml_policy = runtime["spec"].get("mlPolicy") or {}
    trainer = spec.get("trainer")
    num_nodes = int(ml_policy.get("numNodes", 1))
    if trainer is not None:
        reserved = sorted({e["name"] for e in trainer.get("env") or []} & set(PET_ENV))
        if reserved:
            raise EmulatorError(f"spec.trainer.env must not have reserved envs, invalid envs "
                                f"configured: {reserved}")
        num_nodes = int(trainer.get("numNodes", num_nodes))
        nproc = nproc_per_node(trainer, container)
        for field in ("image", "command", "args"):
            if trainer.get(field) is not None:
                container[field] = copy.deepcopy(trainer[field])
        resources = copy.deepcopy(container.get("resources") or {})
        for section, amounts in (trainer.get("resourcesPerNode") or {}).items():
            resources[section] = {**(resources.get(section) or {}), **amounts}
        if resources:
            container["resources"] = resources
        env = upsert(container.get("env") or [], copy.deepcopy(trainer.get("env") or []), "name")
        if "torch" in ml_policy:
            env = upsert(env, torch_env(name, num_nodes, nproc), "name")
            container["ports"] = upsert(container.get("ports") or [],
                                        [{"containerPort": MASTER_PORT}], "containerPort")
        if env:
            container["env"] = env
    if num_nodes < 1:
        raise EmulatorError(f"numNodes {num_nodes}: a TrainJob needs at least one node")
    rjob["template"]["spec"].update(parallelism=num_nodes, completions=num_nodes)
    for each in replicated_jobs:  # the trainer forces one Job per replicated job; JobSet defaults
        each["replicas"] = 1
        each["template"]["spec"].setdefault("completionMode", "Indexed")
        each["template"]["spec"]["template"]["spec"].setdefault("restartPolicy", "OnFailure")
    metadata = {"name": name, "namespace": trainjob["metadata"].get("namespace", "default")}
    for key in ("labels", "annotations"):
        if (template.get("metadata") or {}).get(key):
            metadata[key] = template["metadata"][key]
    return {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "metadata": metadata,
            "spec": {"suspend": bool(spec.get("suspend", False)),
                     "replicatedJobs": replicated_jobs,
                     "network": {"enableDNSHostnames": True, "publishNotReadyAddresses": True},
                     "successPolicy": {"operator": "All"},
                     "startupPolicy": {"startupPolicyOrder": "AnyOrder"}}}


# ---------------------------------------------------------------------------------------------
# The controllers
# ---------------------------------------------------------------------------------------------

class TrainJobEmulator(PodRunner):
    """Run the TrainJob in ``objects`` as local processes (see the module docstring).

    Pods are named by Kubernetes (a random suffix) and change when one is replaced: the methods
    that take a pod (:meth:`kill`, :meth:`pause`, :meth:`delete_pod`, :meth:`processes`,
    :meth:`logs`, :meth:`all_logs`, :meth:`prepare`) take a node index (that node's current pod)
    or a pod name; :attr:`pods` holds every pod created, replaced ones included.

    Args:
        objects: The manifest's objects (one TrainJob, its ConfigMaps and PVCs, and the runtime
            it names unless that is the default ``torch-distributed``).
        workspace: A folder of the emulator's own: logs (``logs/<pod>.log``), pod folders.
        pvc_root: Where PersistentVolumeClaims live, one folder each (see
            :class:`~tests.support.pod_runner.PodRunner`).
        master_port: The port local processes get as ``PET_MASTER_PORT``; ``None`` (default)
            picks a free one, ``"manifest"`` keeps 29500.
        runtime: How containers run (:mod:`tests.support.containers`). Defaults to local
            processes of the trainer image's layout.
        restart_delay: The kubelet's CrashLoopBackOff (the first restart at once, then this many
            seconds, doubling up to 30 times it) and the Job's pod-failure backoff (this many
            seconds, doubling up to 60 times it). Defaults to 10, as on a cluster.
        grace_period: Seconds between SIGTERM and SIGKILL when a pod is deleted. Defaults to 5.
        host_gpus: GPUs this machine offers to pods. Defaults to ``nvidia-smi -L``'s count.
        seed: Seeds the pods' random name suffixes (default: not seeded).
    """

    kind = "TrainJob"
    SUCCEEDED = "Complete"

    def __init__(self, objects: list[dict], workspace, *, pvc_root=None,
                 master_port: int | str | None = None, runtime=None,
                 restart_delay: float = 10.0, grace_period: int = 5,
                 host_gpus: int | None = None, seed: int | None = None):
        super().__init__(objects, workspace, pvc_root=pvc_root, runtime=runtime,
                         restart_delay=restart_delay, grace_period=grace_period)
        if len(self.name) > MAX_NAME:
            raise EmulatorError(
                f"TrainJob name {self.name!r} is {len(self.name)} characters: its JobSet's pod "
                f"names would exceed 63, so the cluster accepts it and never creates its pods "
                f"(at most {MAX_NAME})")
        self._refuse_unemulated(self.job["spec"])
        self.training_runtime = find_runtime(self.job, objects)
        if (self.training_runtime["spec"]["template"]["spec"].get("failurePolicy")
                is not None):
            raise EmulatorError("the runtime's JobSet failurePolicy is not emulated")
        self.jobset = build_jobset(self.job, self.training_runtime)
        rjobs = self.jobset["spec"]["replicatedJobs"]
        if len(rjobs) != 1:
            raise EmulatorError(f"the runtime has replicated jobs {[r['name'] for r in rjobs]}; "
                                "only the trainer's is emulated")
        rjob = rjobs[0]
        self.replicated_job = rjob["name"]
        self.job_name = f"{self.name}-{self.replicated_job}-0"
        job_spec = rjob["template"]["spec"]
        for field in ("backoffLimitPerIndex", "podFailurePolicy", "successPolicy"):
            if job_spec.get(field) is not None:
                raise EmulatorError(f"the node Job's {field} is not emulated")
        self.num_nodes = int(job_spec["completions"])
        self.backoff_limit = int(job_spec.get("backoffLimit", DEFAULT_BACKOFF_LIMIT))
        self.pod_template = job_spec["template"]
        pod_spec = self.pod_template["spec"]
        self.restart_policy = pod_spec["restartPolicy"]
        if self.restart_policy not in ("OnFailure", "Never"):
            raise EmulatorError(f"restartPolicy {self.restart_policy!r}: a Job's pods take "
                                "OnFailure or Never")
        if pod_spec.get("initContainers") or len(pod_spec.get("containers") or []) != 1:
            raise EmulatorError("the emulator runs pods with exactly one container (named "
                                f"{NODE!r}) and no init containers")
        container = _node_container(rjob)
        env = [e["name"] for e in container.get("env") or []]
        self.local_port = self.choose_port(master_port, MASTER_PORT)
        self._overrides = {env.index(var): value for var, value in
                           (("PET_MASTER_ADDR", LOCAL_ADDR),
                            ("PET_MASTER_PORT", str(self.local_port))) if var in env}
        self._random = random.Random(seed)
        self._gpus = self.assign_gpus([gpu_count(container)] * self.num_nodes,
                                      host_gpu_count() if host_gpus is None else host_gpus)
        self.check_volumes(self.job_name, self.pod_template, container)
        #: The Job's and the JobSet's last condition (``None`` while the Job runs).
        self.job_condition: Condition | None = None
        #: The Job's ``status.failed``: pods that failed, deleted ones included.
        self.failed = 0
        self._failures_since_success = 0
        self._replace_at: dict[int, float] = {}
        self.nodes: list[Pod] = [self._new_pod(index) for index in range(self.num_nodes)]

    @staticmethod
    def _refuse_unemulated(spec: dict) -> None:
        for field, what in (("suspend", "suspend: true (a TrainJob waiting for Kueue)"),
                            ("activeDeadlineSeconds", "activeDeadlineSeconds"),
                            ("initializer", "initializer")):
            if spec.get(field):
                raise EmulatorError(f"{what} is not emulated")
        if spec.get("managedBy", f"{GROUP}/trainjob-controller") != f"{GROUP}/trainjob-controller":
            raise EmulatorError(f"managedBy {spec['managedBy']!r}: the trainer's controller "
                                "leaves the job alone; not emulated")

    # -- pods -----------------------------------------------------------------------------------

    def _new_pod(self, index: int) -> Pod:
        """A pod of the node Job for completion ``index``, as the Job controller creates it."""
        while True:
            suffix = "".join(self._random.choice(_SUFFIX_CHARS) for _ in range(5))
            name = f"{self.job_name}-{index}-{suffix}"
            if name not in self.pods:
                break
        metadata = self.pod_template.get("metadata") or {}
        labels = {**(metadata.get("labels") or {}),
                  "jobset.sigs.k8s.io/jobset-name": self.name,
                  "jobset.sigs.k8s.io/replicatedjob-name": self.replicated_job,
                  "jobset.sigs.k8s.io/job-index": "0", "jobset.sigs.k8s.io/job-global-index": "0",
                  "jobset.sigs.k8s.io/restart-attempt": "0",
                  "batch.kubernetes.io/job-name": self.job_name, "job-name": self.job_name,
                  COMPLETION_INDEX: str(index)}
        annotations = {**(metadata.get("annotations") or {}), COMPLETION_INDEX: str(index)}
        container = copy.deepcopy(self.pod_template["spec"]["containers"][0])
        env = container.get("env") or []
        if "JOB_COMPLETION_INDEX" not in [e["name"] for e in env]:  # the Job controller's
            container["env"] = env + [{"name": "JOB_COMPLETION_INDEX", "valueFrom": {
                "fieldRef": {"fieldPath": COMPLETION_INDEX_FIELD}}}]
        pod = Pod(name, index, NODE, self.restart_policy, self.pod_template, container,
                  self.workspace / "logs" / f"{name}.log", env_overrides=dict(self._overrides),
                  hostname=f"{self.job_name}-{index}",
                  dns_names=[f"{self.job_name}-{index}.{self.name}"],  # via the JobSet's Service
                  labels=labels, annotations=annotations,
                  gpus=list(self._gpus[index]))
        self.pods[name] = pod
        return pod

    def _pod(self, ref) -> Pod:
        """Node ``ref``'s current pod (an int), or the pod named ``ref``."""
        return self.nodes[ref] if isinstance(ref, int) else self.pods[ref]

    def pod_name(self, index: int) -> str:
        """The name of node ``index``'s current pod."""
        return self.nodes[index].name

    def node_logs(self, index: int) -> str:
        """Everything node ``index``'s pods printed, replaced pods and restarts included (a
        cluster loses a deleted pod's logs; tests read them here)."""
        return "".join(self.all_logs(pod.name) for pod in self.pods.values()
                       if pod.index == index)

    # -- running --------------------------------------------------------------------------------

    @property
    def phase(self) -> str:
        """``Complete`` or ``Failed`` (the TrainJob's condition), else ``Created`` before
        :meth:`start` and ``Running`` after."""
        if self.conditions:
            return self.conditions[-1].type
        return "Created" if self.started_at is None else "Running"

    @property
    def jobs_status(self) -> list[dict]:
        """The TrainJob's ``status.jobsStatus``: the node Job counted as active, ready,
        succeeded or failed (each 0 or 1)."""
        status = {"name": self.replicated_job, "active": 0, "ready": 0, "succeeded": 0, "failed": 0,
                  "suspended": 0}
        if self.job_condition is not None:
            status["succeeded" if self.job_condition.type == "Complete" else "failed"] = 1
        elif self.started_at is not None:
            live = [p for p in self.pods.values()
                    if p.phase in ("Pending", "Running") and not p.deleting]
            ready = sum(p.running for p in live)
            done = sum(p.phase == "Succeeded" for p in self.nodes)
            status["active"] = int(bool(live))
            status["ready"] = int(ready + done >= self.num_nodes)
        return [status]

    def start(self) -> None:
        """Create the node Job's pods and start their containers."""
        self._begin()
        for pod in self.nodes:
            self._start_container(self.prepare(pod.name))

    def poll(self) -> str:
        """Look at every pod once, act as the kubelet, the Job and JobSet controllers and the
        trainer would; the TrainJob's phase."""
        if self.started_at is None or self.finished:
            return self.phase
        now = time.monotonic()
        for pod in list(self.pods.values()):
            code = self._exited(pod)
            if code is not None:
                self._on_exit(pod, code, now)
            elif pod.restart_at is not None and now >= pod.restart_at:
                self._start_container(pod)  # same pod, emptyDirs kept; a fresh writable layer
        for index, due in sorted(self._replace_at.items()):
            if now >= due and not self.nodes[index].running:
                del self._replace_at[index]
                self.nodes[index] = self._new_pod(index)
                self._start_container(self.prepare(self.nodes[index].name))
        if self._past_backoff_limit():
            self._fail_job()
        elif all(pod.phase == "Succeeded" for pod in self.nodes):
            self.job_condition = Condition("Complete", "CompletionsReached",
                                           "Reached expected number of succeeded pods")
            self.conditions.append(Condition("Complete", *ALL_JOBS_COMPLETED))
        return self.phase

    def _on_exit(self, pod: Pod, code: int, now: float) -> None:
        if pod.deleting:  # counted as failed when it was deleted
            pod.phase = "Failed"
        elif code == 0:
            pod.phase = "Succeeded"
            self._failures_since_success = 0
        elif pod.restart_policy == "Never":
            pod.phase = "Failed"
            self._count_failure(pod, now)
        else:  # OnFailure: the kubelet restarts the container in the same pod
            pod.restarts += 1
            pod.restart_at = now + self._crash_loop_delay(pod)

    def _count_failure(self, pod: Pod, now: float) -> None:
        """A failed (or deleted) pod: the Job counts it and replaces it after its backoff."""
        self.failed += 1
        self._failures_since_success += 1
        delay = self.restart_delay * 2 ** (self._failures_since_success - 1)
        self._replace_at[pod.index] = now + min(delay, 60 * self.restart_delay)

    def _past_backoff_limit(self) -> bool:
        """The Job controller's test (``pastBackoffLimitOnFailure`` and failed pods)."""
        if self.failed > self.backoff_limit:
            return True
        if self.restart_policy != "OnFailure":
            return False
        restarts = sum(p.restarts for p in self.pods.values() if p.phase in ("Pending", "Running"))
        return restarts > 0 if self.backoff_limit == 0 else restarts >= self.backoff_limit

    def _fail_job(self) -> None:
        """The Job fails and deletes its pods; the JobSet fails; the TrainJob gets ``Failed``."""
        self.job_condition = Condition("Failed", "BackoffLimitExceeded",
                                       "Job has reached the specified backoff limit")
        self._replace_at.clear()
        live = [p for p in self.pods.values() if p.phase in ("Pending", "Running")]
        for pod in live:  # every active pod, a crash-looping one waiting to restart too
            pod.restart_at = None
            if pod.running and not pod.deleting:
                pod.process.terminate()
            pod.deleting = True
        deadline = time.monotonic() + self.grace_period + 5  # a paused pod ignores SIGTERM
        for pod in live:
            while pod.running and time.monotonic() < deadline:
                time.sleep(0.1)
            if pod.started:
                pod.process.kill()
                pod.exit_codes.append(pod.process.wait())
                pod.process = None
            pod.phase = "Succeeded" if pod.exit_codes and pod.exit_codes[-1] == 0 else "Failed"
        reason, message = FAILED_JOBS
        self.conditions.append(Condition("Failed", reason,
                                         f"{message} (first failed job: {self.job_name})"))

    def delete_pod(self, ref) -> None:
        """``kubectl delete pod``: SIGTERM, SIGKILL after the grace period. The Job counts the pod
        as failed and creates a new one for its index (new name, new emptyDirs) after its
        backoff."""
        pod = self._pod(ref)
        if not pod.running:
            raise EmulatorError(f"{pod.name} is not running")
        pod.deleting = True
        pod.process.terminate()
        self._count_failure(pod, time.monotonic())

    def _status_lines(self) -> list[str]:
        lines = [f"  jobsStatus: {self.jobs_status}"]
        if self.job_condition is not None:
            lines.append(f"  Job {self.job_name}: {self.job_condition.type}: "
                         f"{self.job_condition.reason}")
        return lines
