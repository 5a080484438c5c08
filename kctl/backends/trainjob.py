"""Kubeflow Trainer v2 TrainJob (``trainer.kubeflow.org/v1alpha1``, Trainer v2.3): ``kctl train
--kind TrainJob``.

One job becomes, in ``kctl/templates/trainjob.yaml.j2``, the ConfigMap with the config tree and
a TrainJob against a runtime (``--runtime``, default the ClusterTrainingRuntime
``torch-distributed``; ``--runtime-kind TrainingRuntime`` for one in the job's namespace). The
runtime's one replicated job ``node`` runs ``numNodes`` identical pods (rank 0 at completion index
0); its container ``node`` gets the image, the same ``torchrun -m trainer ... --launcher pytorch
--resume`` command as a PyTorchJob, ``numProcPerNode`` processes, ``resourcesPerNode`` and the
environment through ``spec.trainer``, and kctl's pod (volumes, mounts, labels, security contexts:
:mod:`kctl.backends.kubernetes`) through one ``runtimePatches`` entry whose ``manager`` is
:data:`MANAGER`. The Trainer's torch plugin sets ``PET_NNODES``, ``PET_NPROC_PER_NODE``,
``PET_NODE_RANK``, ``PET_MASTER_ADDR`` (``<name>-node-0-0.<name>``) and ``PET_MASTER_PORT`` (29500),
which ``torchrun`` reads.

What differs from a PyTorchJob (see ``docs/kubernetes.md``, "From PyTorchJob to TrainJob"):

- Names: the JobSet names pods ``<name>-node-0-<index>-<5 chars>`` and refuses a pod name over 63
  characters only after the TrainJob was accepted, silently; so kctl refuses a job name over 48
  characters (47 for 11-100 nodes: :meth:`TrainJobBackend.name_limit`).
- Every node mounts the same pod template, so several nodes need one ReadWriteMany work-dir claim.
- Restarts: pods restart ``OnFailure`` (the JobSet's default) within the runtime's Job
  ``backoffLimit`` (the Kubernetes default, 6, in ``torch-distributed``), counted over all nodes;
  when it is used up the whole job fails and its other pods are stopped. There is no
  ``--max-restarts``, ``--gang`` or ``--priority-class``: those belong to the runtime.
- The job succeeds when every node's pod exits 0; there is no TTL (pods stay until ``kctl delete``)
  and no Running condition: ``kctl status`` reads the state from the conditions and ``jobsStatus``.
"""

from __future__ import annotations

import re

from kctl.backends.kubernetes import KubernetesBackend
from kctl.job import Job
from kctl.options import Settings

#: The API group of TrainJobs and their runtimes.
GROUP = "trainer.kubeflow.org"

#: The runtime's replicated job and container that run the trainer (torch-distributed's names).
REPLICATED_JOB = "node"
CONTAINER_NAME = "node"

#: ``runtimePatches[].manager``: who wrote the patch (a domain-prefixed path).
MANAGER = "kctl.dev/kctl"

#: Kubeflow Trainer's version probe (Trainer >= v2.2; readable by every authenticated user):
#: namespace, ConfigMap and key. Without it the Trainer is v2.1 or older.
TRAINER_VERSION = ("kubeflow-system", "kubeflow-trainer-public", "kubeflow_trainer_version")
#: The oldest Trainer whose TrainJobs kctl renders (v2.3: ``runtimePatches``, per-key resources).
TRAINER_MIN = (2, 3)

#: Labels the JobSet and the Job controller put on the pods.
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
REPLICATED_JOB_LABEL = "jobset.sigs.k8s.io/replicatedjob-name"
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"


def name_limit(nodes: int) -> int:
    """The longest TrainJob name whose pods the JobSet can create: a pod is named
    ``<name>-node-0-<nodes-1>-<5 chars>``, at most 63 characters."""
    return 63 - len(f"-{REPLICATED_JOB}-0-{nodes - 1}-abcde")


class TrainJobBackend(KubernetesBackend):
    """Kubeflow Trainer v2 TrainJob: ConfigMap + TrainJob."""

    kind = "TrainJob"
    group = GROUP
    version = "v1alpha1"
    plural = "trainjobs"
    container = CONTAINER_NAME
    template = "trainjob.yaml.j2"
    name_limit_why = ("the JobSet names pods <name>-node-0-<index>-<5 chars>, at most 63 "
                      "characters, and fails later without a word on a longer one")
    install = ("the TrainJob CRD (trainer.kubeflow.org/v1alpha1) is not installed: install "
               "Kubeflow Trainer v2.3 (kubectl apply --server-side -k "
               "\"github.com/kubeflow/trainer.git/manifests/overlays/manager?ref=v2.3.0\", then "
               "its runtimes: .../manifests/overlays/runtimes?ref=v2.3.0)")

    def name_limit(self, nodes: int) -> int:
        return name_limit(nodes)

    def claim_access(self, job: Job) -> str:
        """Every node runs the same pod template, so every node mounts the claim."""
        return "ReadWriteMany" if job.topology.nodes > 1 else "ReadWriteOnce"

    def kind_context(self, job: Job, settings: Settings, warnings: list[str]) -> dict:
        return dict(
            runtime_group=GROUP,
            runtime_kind=settings.runtime_kind,
            runtime=settings.runtime,
            num_nodes=job.topology.nodes,
            num_proc_per_node=job.topology.procs_per_node,
            manager=MANAGER,
            replicated_job=REPLICATED_JOB,
        )

    # -- reading TrainJobs and their pods ---------------------------------------------------

    def pod_selector(self, name: str) -> str:
        return f"{JOBSET_NAME_LABEL}={name},{REPLICATED_JOB_LABEL}={REPLICATED_JOB}"

    def replica_selector(self, name: str, replica: str) -> str:
        return f"{self.pod_selector(name)},{INDEX_LABEL}={replica.rpartition('-')[2]}"

    def replicas(self, job: dict) -> list[str]:
        """``node-0``, ``node-1``, ...: one per node, by completion index (rank order)."""
        return [f"{REPLICATED_JOB}-{i}" for i in range(self.nodes(job))]

    def replica_of(self, pod: dict) -> str:
        meta = pod.get("metadata", {})
        index = ((meta.get("labels") or {}).get(INDEX_LABEL)
                 or (meta.get("annotations") or {}).get(INDEX_LABEL))
        return f"{REPLICATED_JOB}-{index}" if index is not None else meta.get("name", "?")

    def _condition(self, job: dict, type_: str) -> dict | None:
        for condition in (job.get("status") or {}).get("conditions") or []:
            if condition.get("type") == type_ and condition.get("status") == "True":
                return condition
        return None

    def state(self, job: dict) -> str | None:
        """``Failed``, ``Succeeded`` (condition ``Complete``), ``Suspended``, ``Running`` (a node
        Job is active) or ``Pending``; ``None`` while the job has no status at all.

        A TrainJob has no Running condition, and its printer column (the last condition) still
        shows ``Suspended`` after a resume, so the state is worked out as in the facts.
        """
        status = job.get("status")
        if not status:
            return None
        outcome = self.outcome(job)
        if outcome:
            return outcome
        if self._condition(job, "Suspended"):
            return "Suspended"
        for jobs_status in status.get("jobsStatus") or []:
            if jobs_status.get("name") == REPLICATED_JOB and (
                    jobs_status.get("active") or jobs_status.get("ready")):
                return "Running"
        return "Pending"

    def outcome(self, job: dict) -> str | None:
        if self._condition(job, "Failed"):
            return "Failed"
        if self._condition(job, "Complete"):
            return "Succeeded"
        return None

    def _node_spec(self, job: dict) -> dict:
        """The pod spec kctl patched into the runtime's ``node`` job (volumes, containers)."""
        for patch in (job.get("spec") or {}).get("runtimePatches") or []:
            template = ((patch.get("trainingRuntimeSpec") or {}).get("template") or {})
            for rjob in (template.get("spec") or {}).get("replicatedJobs") or []:
                if rjob.get("name") == REPLICATED_JOB:
                    pod = ((rjob.get("template") or {}).get("spec") or {}).get("template") or {}
                    return pod.get("spec") or {}
        return {}

    def pod_specs(self, job: dict) -> list[dict]:
        return [self._node_spec(job)]

    def nodes(self, job: dict) -> int:
        return int(((job.get("spec") or {}).get("trainer") or {}).get("numNodes") or 1)

    def node_resources(self, job: dict) -> dict:
        """``trainer.resourcesPerNode``."""
        return ((job.get("spec") or {}).get("trainer") or {}).get("resourcesPerNode") or {}

    def references(self, job: dict, namespace: str) -> list:
        """The runtime: the Trainer's webhook refuses a TrainJob whose runtime does not exist."""
        from kctl.k8s import Resource
        from kctl.k8s.apply import Reference

        ref = (job.get("spec") or {}).get("runtimeRef") or {}
        runtime_kind = ref.get("kind", "ClusterTrainingRuntime")
        resource = Resource(runtime_kind.lower() + "s", GROUP, runtime_kind)
        return [Reference(resource, ref.get("name"), "--runtime",
                          None if runtime_kind == "ClusterTrainingRuntime" else namespace,
                          self.version)]

    def installation(self, cluster) -> tuple[str, str]:
        """Kubeflow Trainer: its version (the probe ConfigMap; none: v2.1 or older) must be at
        least :data:`TRAINER_MIN`, and kctl's default runtime (a ClusterTrainingRuntime) must exist
        (``kctl doctor``'s marks: ``WARN`` where RBAC hides a fact)."""
        from kctl.k8s import CONFIGMAPS, Resource
        from kctl.k8s.doctor import FAIL, OK, WARN, cannot_tell, forbidden, listed
        from kctl.k8s.errors import ApiError, Op
        from kctl.options import DEFAULT_RUNTIME, RUNTIME_KINDS

        namespace, name, key = TRAINER_VERSION
        where = f"ConfigMap {namespace}/{name}"
        try:
            probe = cluster.call(cluster.core.read_namespaced_config_map, name, namespace,
                                 op=Op("get", CONFIGMAPS, namespace, name), missing_ok=True)
        except ApiError as err:
            if not forbidden(err):
                raise
            mark, release = WARN, f"Trainer version unknown (you may not read {where})"
        else:
            version = ((probe or {}).get("data") or {}).get(key)  # none: v2.1 or older
            mark = OK
            release = f"Trainer {version}" if version else f"Trainer v2.1 or older (no {where})"
            if tuple(int(n) for n in re.findall(r"\d+", version or "2.1")[:2]) < TRAINER_MIN:
                # The install hint reads "<what is missing>: install ...": the fix is its 2nd part.
                upgrade = self.install.partition(": ")[2] or self.install
                return FAIL, (f"{self.api_version} served, {release}: kctl renders TrainJobs for "
                              f"Trainer v{TRAINER_MIN[0]}.{TRAINER_MIN[1]}; {upgrade}")
        text = f"{self.api_version} served, {release}"
        runtime_kind = RUNTIME_KINDS[0]  # ClusterTrainingRuntime
        runtimes = Resource(runtime_kind.lower() + "s", self.group, runtime_kind)
        try:
            reply = cluster.call(cluster.custom.list_cluster_custom_object, self.group,
                                 self.version, runtimes.plural, op=Op("list", runtimes, None))
        except ApiError as err:
            if not forbidden(err):
                raise
            return WARN, f"{text}; runtimes: {cannot_tell('list', runtimes)}"
        found = sorted(r["metadata"]["name"] for r in reply.get("items") or [])
        if DEFAULT_RUNTIME not in found:
            return FAIL, (f'{text}, no {runtime_kind} "{DEFAULT_RUNTIME}" (kctl\'s default): '
                          "install the Trainer's runtimes (manifests/overlays/runtimes, same "
                          f"version), or pass --runtime NAME (here: {listed(found) or 'none'})")
        return mark, f"{text}, runtimes: {listed(found)}"

    def summary(self, job: dict) -> list[tuple[str, str]]:
        ref = (job.get("spec") or {}).get("runtimeRef") or {}
        return [("Runtime:", f"{ref.get('kind', 'ClusterTrainingRuntime')}/{ref.get('name')}")]

    def failure(self, cluster, job: dict, pods: list[dict]) -> str:
        """Which node failed and why, then the condition. Where its pods are still there, the
        one whose container failed last (the failure that used up the node Job's backoffLimit),
        with its exit code and restarts. When the Job has failed, Kubernetes deletes its pods
        (``restartPolicy: OnFailure``), so then the pods' events tell: the node of the last
        warning about one of the job's pods (events are kept for an hour)."""
        from kctl.k8s import pods as kpods
        from kctl.k8s.display import age
        from kctl.k8s.errors import one_line

        condition = self._condition(job, "Failed")
        if condition is None:
            return ""
        lines = [f"Failed:    {condition.get('reason') or 'Failed'}: "
                 f"{one_line(condition.get('message') or '')}"]
        ended = [(kpods.last_termination(p, self.container), p) for p in pods]
        ended = [(t, p) for t, p in ended if t.get("exitCode")]
        if ended:
            last, pod = max(ended, key=lambda item: item[0].get("finishedAt") or "")
            lines.append(f"           {self.replica_of(pod)} failed last: pod "
                         f"{pod['metadata']['name']} exited with code {last.get('exitCode')} "
                         f"({last.get('reason') or 'Error'}) after "
                         f"{kpods.restarts(pod, self.container)} restart(s)")
            return "\n".join(lines)
        meta = job["metadata"]
        pod_name = re.compile(rf"^{re.escape(meta['name'])}-{REPLICATED_JOB}-0-(\d+)-[a-z0-9]+$")
        warnings = [e for e in kpods.events_for(cluster, "Pod", None, meta["namespace"])
                    if e.get("type") == "Warning"
                    and pod_name.match((e.get("involvedObject") or {}).get("name", ""))]
        if warnings:
            event = warnings[-1]
            pod = event["involvedObject"]["name"]
            lines.append(f"           {REPLICATED_JOB}-{pod_name.match(pod).group(1)} failed last: "
                         f"pod {pod} (deleted with the Job), {event.get('reason')} "
                         f"{age(kpods.event_time(event))} ago: "
                         f"{one_line(event.get('message') or '')}")
        return "\n".join(lines)

BACKEND = TrainJobBackend()
