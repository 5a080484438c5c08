"""``kctl status``: a job's conditions, its replicas' pods, and why pods are not running.

The sections are the same for every kind; the job's backend says what its replicas are, which pod
is which replica, its state and size, and adds rows or a failure note of its own.
"""

from __future__ import annotations

from datetime import datetime, timezone

from kctl.k8s import pods as kpods
from kctl.k8s.cluster import Cluster
from kctl.k8s.display import age, table
from kctl.k8s.errors import one_line


def describe(cluster: Cluster, kind, name: str, namespace: str,
             now: datetime | None = None) -> str:
    """The text ``kctl status`` prints for the job ``name`` of ``kind`` (its backend)."""
    now = now or datetime.now(timezone.utc)
    job = kind.get(cluster, name, namespace)
    pods = kpods.list_pods(cluster, namespace, kind.pod_selector(name))
    order = {replica: i for i, replica in enumerate(kind.replicas(job))}
    pods.sort(key=lambda p: (order.get(kind.replica_of(p), len(order)), kind.replica_of(p),
                             p["metadata"].get("creationTimestamp") or ""))
    pending = [p for p in pods if (p.get("status") or {}).get("phase", "Pending") == "Pending"]
    pod_events = {p["metadata"]["name"]: kpods.events_for(cluster, "Pod", p["metadata"]["name"],
                                                          namespace, p["metadata"].get("uid"))
                  for p in pending}
    job_warnings = [e for e in kpods.events_for(cluster, kind.kind, name, namespace,
                                                job["metadata"].get("uid"))
                    if e.get("type") == "Warning"]

    sections = [_summary(kind, job, now), kind.failure(cluster, job, pods), _conditions(job),
                _replicas(kind, job, pods, order, now), _terminations(kind, pods, now),
                _not_running(kind, pending, pod_events, now), _job_warnings(job_warnings, now)]
    return "\n\n".join(s for s in sections if s) + "\n"


def _summary(kind, job: dict, now: datetime) -> str:
    meta = job["metadata"]
    created = meta.get("creationTimestamp")
    gpus = kind.gpus_per_node(job)
    nodes = kind.nodes(job)
    size = f"{nodes} node(s) x {gpus} GPU(s)" if gpus else f"{nodes} node(s), CPU"
    state = kind.state(job) or (f"<none> (no conditions yet: the {kind.kind} operator has not "
                                "seen this job; is it running?)")
    rows = [("Name:", meta["name"]), ("Namespace:", meta.get("namespace", "")),
            ("Kind:", kind.kind), ("State:", state),
            ("Created:", f"{created} ({age(created, now)} ago)"), ("Size:", size),
            *kind.summary(job)]
    return "\n".join(f"{k:<11}{v}" for k, v in rows)


def _conditions(job: dict) -> str:
    conditions = (job.get("status") or {}).get("conditions") or []
    if not conditions:
        return "Conditions: <none>"
    rows = [[c.get("type", ""), c.get("status", ""), c.get("reason") or "-",
             c.get("lastTransitionTime") or c.get("lastUpdateTime") or "-",
             one_line(c.get("message") or "")] for c in conditions]
    return "Conditions:\n" + table(["TYPE", "STATUS", "REASON", "TIME", "MESSAGE"], rows, "  ")


def _replicas(kind, job: dict, pods: list[dict], order: dict, now: datetime) -> str:
    rows = []
    found = {kind.replica_of(p) for p in pods}
    for pod in pods:
        meta, status = pod["metadata"], pod.get("status") or {}
        rows.append([kind.replica_of(pod), meta["name"], status.get("phase", "Pending"),
                     kpods.pod_status(pod, kind.container),
                     str(kpods.restarts(pod, kind.container)),
                     (pod.get("spec") or {}).get("nodeName") or "<none>",
                     age(meta.get("creationTimestamp"), now)])
    missing = "deleted" if kind.outcome(job) else "not created"  # a job that ended had them
    for replica in kind.replicas(job):
        if replica not in found:
            rows.append([replica, kind.expected_pod_name(job["metadata"]["name"], replica), "-",
                         missing, "-", "-", "-"])
    rows.sort(key=lambda row: order.get(row[0], len(order)))
    return "Replicas:\n" + table(["REPLICA", "POD", "PHASE", "STATUS", "RESTARTS", "NODE", "AGE"],
                                 rows, "  ")


def _terminations(kind, pods: list[dict], now: datetime) -> str:
    lines = []
    for pod in pods:
        main = kpods.container_status(pod, kind.container) or {}
        last = (main.get("lastState") or {}).get("terminated")
        count = kpods.restarts(pod, kind.container)
        if count and last:
            finished = last.get("finishedAt")
            when = f", {age(finished, now)} ago" if finished else ""
            reason = last.get("reason") or "Error"
            lines.append(f"  {kind.replica_of(pod)}: restarted {count} time(s); last "
                         f"exit code {last.get('exitCode')} ({reason}{when})")
    return "Restarts:\n" + "\n".join(lines) if lines else ""


def _not_running(kind, pending: list[dict], events: dict[str, list[dict]], now: datetime) -> str:
    if not pending:
        return ""
    lines = []
    for pod in pending:
        name = pod["metadata"]["name"]
        lines.append(f"  {kind.replica_of(pod)} ({name}) is Pending:")
        if events[name]:
            lines += [f"    {_event_line(e, now)}" for e in events[name]]
            continue
        scheduled = [c for c in (pod.get("status") or {}).get("conditions") or []
                     if c.get("type") == "PodScheduled" and c.get("status") == "False"]
        lines += [f"    {c.get('reason')}: {one_line(c.get('message') or '')}" for c in scheduled]
        if not scheduled:
            lines.append("    no events (events expire after an hour)")
    return "Why pods are not running:\n" + "\n".join(lines)


def _job_warnings(events: list[dict], now: datetime) -> str:
    if not events:
        return ""
    return "Job warnings:\n" + "\n".join(f"  {_event_line(e, now)}" for e in events)


def _event_line(event: dict, now: datetime) -> str:
    count = event.get("count") or (event.get("series") or {}).get("count") or 1
    times = f" (x{count})" if count > 1 else ""
    return (f"{event.get('type', 'Normal')} {event.get('reason', '')} "
            f"{age(kpods.event_time(event), now)} ago{times}: "
            f"{one_line(event.get('message', ''))}")
