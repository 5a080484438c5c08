"""PyTorchJobs and their pods: read, list, delete; a job's state, replicas and size."""

from __future__ import annotations

import re

from kctl.k8s import (CONTAINER, EVENTS, GROUP, JOB_NAME_LABEL, PLURAL, PODS, PYTORCHJOBS,
                      REPLICA_INDEX_LABEL, REPLICA_TYPE_LABEL, VERSION)
from kctl.k8s.cluster import Cluster
from kctl.k8s.errors import Op

#: Replica types in the order kctl shows them.
REPLICA_TYPES = ("Master", "Worker")

#: Conditions after which a job's pods will not start again.
FINISHED = ("Succeeded", "Failed")

GPU_RESOURCE = "nvidia.com/gpu"


def get_job(cluster: Cluster, name: str, namespace: str, missing_ok: bool = False) -> dict | None:
    """The PyTorchJob ``name``; a one-line error (or ``None`` with ``missing_ok``) if absent."""
    return cluster.call(cluster.custom.get_namespaced_custom_object, GROUP, VERSION, namespace,
                        PLURAL, name, op=Op("get", PYTORCHJOBS, namespace, name),
                        missing_ok=missing_ok)


def list_jobs(cluster: Cluster, namespace: str | None) -> list[dict]:
    """The PyTorchJobs in ``namespace``, or in every namespace when it is ``None``."""
    op = Op("list", PYTORCHJOBS, namespace)
    if namespace is None:
        reply = cluster.call(cluster.custom.list_cluster_custom_object, GROUP, VERSION, PLURAL,
                             op=op)
    else:
        reply = cluster.call(cluster.custom.list_namespaced_custom_object, GROUP, VERSION,
                             namespace, PLURAL, op=op)
    return reply.get("items") or []


def delete_job(cluster: Cluster, job: dict) -> None:
    """Delete ``job`` the way ``kubectl delete`` does (background propagation).

    Its pods, Services and the ConfigMap kctl created go with it (they name the job as their
    owner). The uid precondition makes sure a job re-created meanwhile under the same name is
    left alone.
    """
    meta = job["metadata"]
    body = {"propagationPolicy": "Background", "preconditions": {"uid": meta["uid"]}}
    cluster.call(cluster.custom.delete_namespaced_custom_object, GROUP, VERSION,
                 meta["namespace"], PLURAL, meta["name"], body=body,
                 op=Op("delete", PYTORCHJOBS, meta["namespace"], meta["name"]))


def job_pods(cluster: Cluster, name: str, namespace: str) -> list[dict]:
    """The job's pods (the operator labels them with the job's name), master first."""
    reply = cluster.call(cluster.core.list_namespaced_pod, namespace,
                         label_selector=f"{JOB_NAME_LABEL}={name}", op=Op("list", PODS, namespace))
    return sorted(reply.get("items") or [], key=lambda pod: replica_sort_key(replica_of(pod)))


def get_pod(cluster: Cluster, name: str, namespace: str) -> dict | None:
    """The pod ``name``, or ``None`` if it does not exist (yet, or any more)."""
    return cluster.call(cluster.core.read_namespaced_pod, name, namespace,
                        op=Op("get", PODS, namespace, name), missing_ok=True)


def events_for(cluster: Cluster, kind: str, name: str, namespace: str,
               uid: str | None = None) -> list[dict]:
    """Events about one object, oldest first."""
    selector = f"involvedObject.kind={kind},involvedObject.name={name}"
    if uid:
        selector += f",involvedObject.uid={uid}"
    reply = cluster.call(cluster.core.list_namespaced_event, namespace, field_selector=selector,
                         op=Op("list", EVENTS, namespace))
    return sorted(reply.get("items") or [], key=event_time)


def event_time(event: dict) -> str:
    """When an event last happened (RFC 3339), whichever of its time fields is set."""
    return (event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
            or event.get("metadata", {}).get("creationTimestamp") or "")


def state(job: dict) -> str | None:
    """The job's state: its latest condition that holds (``Running``, ``Succeeded``, ...).

    The operator appends each new condition and sets the ones it replaces to False, so this is
    the column ``kubectl get pytorchjobs`` shows as STATE. ``None`` before the operator has
    seen the job.
    """
    conditions = (job.get("status") or {}).get("conditions") or []
    holding = [c for c in conditions if c.get("status") == "True"]
    last = (holding or conditions or [None])[-1]
    return last.get("type") if last else None


def finished(job: dict) -> bool:
    """Whether the job Succeeded or Failed."""
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") in FINISHED and c.get("status") == "True" for c in conditions)


def replica_specs(job: dict) -> list[tuple[str, dict]]:
    """``(type, spec)`` for each replica type, Master first."""
    specs = (job.get("spec") or {}).get("pytorchReplicaSpecs") or {}
    known = [(t, specs[t]) for t in REPLICA_TYPES if t in specs]
    return known + sorted((t, s) for t, s in specs.items() if t not in REPLICA_TYPES)


def replicas(job: dict) -> list[str]:
    """The job's replicas as kctl names them: ``master-0``, ``worker-0``, ``worker-1``, ..."""
    return [f"{rtype.lower()}-{i}" for rtype, spec in replica_specs(job)
            for i in range(int(spec.get("replicas", 1)))]


def pod_name(job_name: str, replica: str) -> str:
    """The operator's name for a replica's pod: ``<job>-master-0``."""
    return f"{job_name}-{replica}"


def replica_of(pod: dict) -> str:
    """A pod's replica (``worker-1``), from the operator's labels or else its name."""
    labels = pod.get("metadata", {}).get("labels") or {}
    rtype, index = labels.get(REPLICA_TYPE_LABEL), labels.get(REPLICA_INDEX_LABEL)
    if rtype and index is not None:
        return f"{rtype.lower()}-{index}"
    match = re.search(r"(master|worker)-\d+$", pod.get("metadata", {}).get("name", ""))
    return match.group(0) if match else pod.get("metadata", {}).get("name", "?")


def replica_sort_key(replica: str) -> tuple:
    """Master before workers, workers by index (``worker-2`` before ``worker-10``)."""
    rtype, _, index = replica.rpartition("-")
    order = [t.lower() for t in REPLICA_TYPES]
    return (order.index(rtype) if rtype in order else len(order), rtype,
            int(index) if index.isdigit() else 0)


def nodes(job: dict) -> int:
    """Pods in the job: the sum of ``replicas`` over Master and Worker."""
    return sum(int(spec.get("replicas", 1)) for _, spec in replica_specs(job))


def gpus_per_node(job: dict) -> int:
    """``nvidia.com/gpu`` of the first replica's ``pytorch`` container (0 when CPU-only)."""
    for _, spec in replica_specs(job):
        container = main_container(spec.get("template", {}).get("spec", {}))
        resources = (container or {}).get("resources") or {}
        for part in ("limits", "requests"):
            value = (resources.get(part) or {}).get(GPU_RESOURCE)
            if value is not None:
                try:
                    return int(value)
                except (TypeError, ValueError):
                    return 0
        return 0
    return 0


def size(job: dict) -> str:
    """``NODESxGPUS``, e.g. ``2x8``; GPUs are per node."""
    return f"{nodes(job)}x{gpus_per_node(job)}"


def main_container(pod_spec: dict) -> dict | None:
    """The ``pytorch`` container of a pod (spec), else its first container."""
    containers = pod_spec.get("containers") or []
    named = [c for c in containers if c.get("name") == CONTAINER]
    return (named or containers or [None])[0]


def container_status(pod: dict) -> dict | None:
    """The status of the pod's ``pytorch`` container (else its first); ``None`` before it exists."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    named = [s for s in statuses if s.get("name") == CONTAINER]
    return (named or statuses or [None])[0]


def pod_status(pod: dict) -> str:
    """kubectl's STATUS column: the most telling reason (CrashLoopBackOff, OOMKilled, ...)."""
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    for init in status.get("initContainerStatuses") or []:
        state = init.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason") not in (None, "PodInitializing"):
            return f"Init:{state['waiting']['reason']}"
        if "running" in state:
            return "Init:Running"
    main = container_status(pod) or {}
    state = main.get("state") or {}
    for key in ("waiting", "terminated"):
        if state.get(key, {}).get("reason"):
            return state[key]["reason"]
    if status.get("phase", "Pending") == "Pending":
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                return cond.get("reason") or "Unschedulable"
    return status.get("reason") or status.get("phase", "Pending")


def restarts(pod: dict) -> int:
    """How often the ``pytorch`` container restarted in this pod."""
    return int((container_status(pod) or {}).get("restartCount") or 0)


def claims(job: dict) -> list[str]:
    """Names of the PersistentVolumeClaims the job's pods mount, in order of appearance."""
    names = []
    for _, spec in replica_specs(job):
        for volume in (spec.get("template", {}).get("spec", {}).get("volumes") or []):
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim and claim not in names:
                names.append(claim)
    return names
