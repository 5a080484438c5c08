"""Pods as kubectl shows them: the trainer container's status, restarts, why a pod waits, events.

``container`` is always the name of the container that runs the trainer (the job's backend
knows it: ``pytorch`` in a PyTorchJob, ``node`` in a TrainJob); a pod without it falls back to its
first container.
"""

from __future__ import annotations

from kctl.k8s import EVENTS, PODS
from kctl.k8s.cluster import Cluster
from kctl.k8s.errors import Op


def list_pods(cluster: Cluster, namespace: str, selector: str) -> list[dict]:
    """The pods matching the label ``selector``."""
    reply = cluster.call(cluster.core.list_namespaced_pod, namespace, label_selector=selector,
                         op=Op("list", PODS, namespace))
    return reply.get("items") or []


def newest(pods: list[dict]) -> dict | None:
    """The pod created last (a replaced pod's successor), preferring one not being deleted."""
    alive = [p for p in pods if not p["metadata"].get("deletionTimestamp")] or pods
    return max(alive, key=lambda p: p["metadata"].get("creationTimestamp") or "", default=None)


def events_for(cluster: Cluster, kind: str, name: str | None, namespace: str,
               uid: str | None = None) -> list[dict]:
    """Events about one object (every object of ``kind`` where ``name`` is None), oldest first."""
    selector = f"involvedObject.kind={kind}"
    if name is not None:
        selector += f",involvedObject.name={name}"
    if uid:
        selector += f",involvedObject.uid={uid}"
    reply = cluster.call(cluster.core.list_namespaced_event, namespace, field_selector=selector,
                         op=Op("list", EVENTS, namespace))
    return sorted(reply.get("items") or [], key=event_time)


def event_time(event: dict) -> str:
    """When an event last happened (RFC 3339), whichever of its time fields is set."""
    return (event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
            or event.get("metadata", {}).get("creationTimestamp") or "")


def main_container(pod_spec: dict, container: str) -> dict | None:
    """The trainer container of a pod (spec), else its first container."""
    containers = pod_spec.get("containers") or []
    named = [c for c in containers if c.get("name") == container]
    return (named or containers or [None])[0]


def container_status(pod: dict, container: str) -> dict | None:
    """The status of the pod's trainer container (else its first); ``None`` before it exists."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    named = [s for s in statuses if s.get("name") == container]
    return (named or statuses or [None])[0]


def pod_status(pod: dict, container: str) -> str:
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
    main = container_status(pod, container) or {}
    state = main.get("state") or {}
    for key in ("waiting", "terminated"):
        if state.get(key, {}).get("reason"):
            return state[key]["reason"]
    if status.get("phase", "Pending") == "Pending":
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                return cond.get("reason") or "Unschedulable"
    return status.get("reason") or status.get("phase", "Pending")


def restarts(pod: dict, container: str) -> int:
    """How often the trainer container restarted in this pod."""
    return int((container_status(pod, container) or {}).get("restartCount") or 0)


def last_termination(pod: dict, container: str) -> dict:
    """The trainer container's last ended run (``exitCode``, ``reason``, ``finishedAt``): the
    current container's if it has ended, else the previous one's; ``{}`` if none ended."""
    status = container_status(pod, container) or {}
    return ((status.get("state") or {}).get("terminated")
            or (status.get("lastState") or {}).get("terminated") or {})
