"""``kctl logs``: every replica's log, each line prefixed ``[master-0]`` (``[node-1]``, ...).

A container that restarted has its previous container's log shown first, each line prefixed
``[master-0 previous]`` (the kubelet keeps one previous container per pod). With ``follow`` the
log is streamed and the replica stays watched: when its container restarts or the operator
re-creates its pod, the new container is followed from its first line, until the job finishes,
the replica's pod succeeds, or the job is deleted. Notes about that go to stderr. A replica's pod
is found by the labels its operator puts on it (the job's backend knows them), so a pod that was
replaced under a new name is followed too.
"""

from __future__ import annotations

import sys
import threading
import time

from kctl.errors import UsageError
from kctl.k8s import POD_LOGS
from kctl.k8s import pods as kpods
from kctl.k8s.cluster import Cluster
from kctl.k8s.errors import ApiError, Op, unreachable

#: Seconds between looks at a pod that has no new container to follow yet.
POLL_SECONDS = 1.0

#: Extra seconds of log asked for when a dropped stream is resumed; repeats are skipped.
RESUME_MARGIN_SECONDS = 60


class Printer:
    """Writes whole lines to stdout (log lines) and stderr (notes), from several threads."""

    def __init__(self):
        self._lock = threading.Lock()

    def line(self, replica: str, text: str, previous: bool = False) -> None:
        tag = f"[{replica} previous]" if previous else f"[{replica}]"
        with self._lock:
            sys.stdout.write(f"{tag} {text}\n")
            sys.stdout.flush()

    def note(self, replica: str, text: str) -> None:
        with self._lock:
            sys.stdout.flush()
            sys.stderr.write(f"kctl: [{replica}] {text}\n")
            sys.stderr.flush()


def select_replicas(kind, job: dict, replica: str) -> list[str]:
    """The replicas to show: all of the job's, or the one named (``master-0``, ``node-1``)."""
    known = kind.replicas(job)
    if replica == "all":
        return known
    if replica not in known:
        raise UsageError(f"--replica {replica}: job {job['metadata']['name']} has "
                         f"{', '.join(known)} (or all)")
    return [replica]


def print_logs(cluster: Cluster, kind, job: dict, replicas: list[str]) -> None:
    """Print the logs the replicas' pods (of ``kind``, a backend) have now, previous
    containers' first."""
    name, namespace = job["metadata"]["name"], job["metadata"]["namespace"]
    printer = Printer()
    pods = {}
    found = kpods.list_pods(cluster, namespace, kind.pod_selector(name))
    for pod in sorted(found, key=lambda p: p["metadata"].get("creationTimestamp") or ""):
        pods.setdefault(kind.replica_of(pod), []).append(pod)
    for replica in replicas:
        if replica not in pods:
            printer.note(replica, f"no pod yet (see: kctl status {name} -n {namespace})")
        for pod in pods.get(replica, []):
            _Replica(cluster, kind, namespace, replica, printer).print_once(pod, name)


def follow_logs(cluster: Cluster, kind, job: dict, replicas: list[str]) -> None:
    """Stream the replicas' logs until the job finishes or is deleted (or Ctrl-C)."""
    printer, stop, errors = Printer(), threading.Event(), []

    def run(replica):
        try:
            _Replica(cluster, kind, job["metadata"]["namespace"], replica, printer).follow(
                job, stop)
        except Exception as err:  # reported by the main thread
            errors.append(err)
            stop.set()

    threads = [threading.Thread(target=run, args=(r,), name=f"logs-{r}", daemon=True)
               for r in replicas]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads) and not errors:
        for thread in threads:
            thread.join(0.2)
    if errors:
        raise errors[0]


class _Replica:
    """One replica's log: which of its containers were printed, and how to print the next."""

    def __init__(self, cluster: Cluster, kind, namespace: str, replica: str, printer: Printer):
        self.cluster = cluster
        self.kind = kind
        self.namespace = namespace
        self.replica = replica
        self.printer = printer
        self.printed: set[str] = set()  # container IDs whose log was printed
        self.last_stamp = ""  # timestamp of the last line of the followed container
        self.last_line_at = time.time()  # when that line came, by this machine's clock

    def print_once(self, pod: dict, job_name: str) -> None:
        previous, current = self._containers(pod)
        if previous:
            self._print_previous(pod, previous)
        if current:
            self._stream(pod, follow=False)
        elif not previous:
            reason = _waiting_reason(pod, self.kind.container)
            self.printer.note(self.replica, f"pod {pod['metadata']['name']} is "
                              f"{pod.get('status', {}).get('phase', 'Pending')}{reason}: no logs "
                              f"yet (see: kctl status {job_name} -n {self.namespace})")

    def follow(self, job: dict, stop: threading.Event) -> None:
        selector = self.kind.replica_selector(job["metadata"]["name"], self.replica)
        last = None  # (pod uid, container ID) of the last container streamed
        waiting = None  # the last note about waiting for a container, not to repeat it
        while not stop.is_set():
            pod = kpods.newest(kpods.list_pods(self.cluster, self.namespace, selector))
            previous, current = self._containers(pod) if pod else (None, None)
            if previous and previous not in self.printed:
                self._print_previous(pod, previous)
            if current and current not in self.printed:
                self._announce(pod, last)
                last = (pod["metadata"]["uid"], current)
                self._stream(pod, follow=True, container_id=current)
                continue
            if current and self._running(pod):  # the same container still runs: dropped stream
                stop.wait(POLL_SECONDS)
                self._stream(pod, follow=True, container_id=current, resume=True)
                continue
            if pod and pod.get("status", {}).get("phase") == "Succeeded":
                return
            if self._job_over(job):
                return
            note = None if current else self._waiting_note(pod)
            if note and note != waiting:
                self.printer.note(self.replica, note)
            waiting = note
            stop.wait(POLL_SECONDS)

    def _containers(self, pod: dict) -> tuple[str | None, str | None]:
        """IDs of the trainer container's previous (terminated) and current (started) container."""
        status = kpods.container_status(pod, self.kind.container) or {}
        state, last = status.get("state") or {}, status.get("lastState") or {}
        # Without a container ID (never the case with a real kubelet), number the containers.
        uid, restarts = pod["metadata"].get("uid"), int(status.get("restartCount") or 0)
        ended, started = last.get("terminated"), state.get("running") or state.get("terminated")
        previous = (ended.get("containerID") or f"{uid}/{restarts - 1}") if ended else None
        current = (started.get("containerID") or f"{uid}/{restarts}") if started else None
        return previous, current

    def _running(self, pod: dict) -> bool:
        return "running" in ((kpods.container_status(pod, self.kind.container) or {})
                             .get("state") or {})

    def _waiting_note(self, pod: dict | None) -> str:
        if pod is None:
            return "waiting for its pod to be created"
        phase = pod.get("status", {}).get("phase", "Pending")
        return (f"waiting: pod {pod['metadata']['name']} is {phase}"
                f"{_waiting_reason(pod, self.kind.container)}")

    def _announce(self, pod: dict, last: tuple[str, str] | None) -> None:
        if last is None:
            return
        if last[0] != pod["metadata"]["uid"]:
            self.printer.note(self.replica, f"pod {pod['metadata']['name']} was re-created; "
                                            "following the new pod")
        else:
            self.printer.note(self.replica, f"container restarted (restart "
                                            f"{kpods.restarts(pod, self.kind.container)}); "
                                            "following the new one")

    def _job_over(self, job: dict) -> bool:
        meta = job["metadata"]
        now = self.kind.get(self.cluster, meta["name"], meta["namespace"], missing_ok=True)
        if now is None or now["metadata"].get("uid") != meta.get("uid"):
            self.printer.note(self.replica, f"job {meta['name']} was deleted")
            return True
        return self.kind.outcome(now) is not None

    def _print_previous(self, pod: dict, container_id: str) -> None:
        status = kpods.container_status(pod, self.kind.container) or {}
        last = status.get("lastState", {}).get("terminated") or {}
        self.printer.note(self.replica, f"restarted {kpods.restarts(pod, self.kind.container)} "
                                        "time(s), last exit code "
                                        f"{last.get('exitCode', '?')} "
                                        f"({last.get('reason') or 'Error'}): the previous "
                                        f"container's log comes first, as [{self.replica} "
                                        "previous]")
        self.printed.add(container_id)
        self._stream(pod, follow=False, previous=True)

    def _stream(self, pod: dict, follow: bool, previous: bool = False,
                container_id: str | None = None, resume: bool = False) -> None:
        """Print one container's log; with ``follow``, until that container ends."""
        import urllib3

        if container_id:
            self.printed.add(container_id)
        since = None
        if resume:
            since = int(time.time() - self.last_line_at) + RESUME_MARGIN_SECONDS
        elif not previous:  # a new container: every line is new
            self.last_stamp, self.last_line_at = "", time.time()
        name = pod["metadata"]["name"]
        container = (kpods.main_container(pod.get("spec") or {}, self.kind.container)
                     or {}).get("name")
        kwargs = {"previous": True} if previous else {}
        if since:
            kwargs.update(since_seconds=since)
        try:
            reply = self.cluster.open_stream(
                self.cluster.core.read_namespaced_pod_log, name, self.namespace,
                container=container, timestamps=True, follow=follow,
                op=Op("get", POD_LOGS, self.namespace, name), **kwargs)
        except ApiError as err:
            if err.status in (400, 404) and follow:
                return  # the container or pod went away meanwhile: look again
            raise
        try:
            for stamp, text in _lines(reply):
                if not previous and stamp and stamp <= self.last_stamp:
                    continue  # already printed before the stream dropped
                if not previous:
                    self.last_stamp, self.last_line_at = stamp, time.time()
                self.printer.line(self.replica, text, previous=previous)
        except (urllib3.exceptions.HTTPError, OSError) as err:
            if not follow:  # a log printed only in part must not pass for the whole log
                raise unreachable(err, self.cluster) from None
            # A followed stream that broke off is resumed by follow().


def _waiting_reason(pod: dict, container: str) -> str:
    reason = kpods.pod_status(pod, container)
    return "" if reason == pod.get("status", {}).get("phase", "Pending") else f" ({reason})"


def _lines(reply):
    """``(timestamp, text)`` for each line of a streamed log reply, as the lines arrive.

    The kubelet writes timestamps as ``2024-05-01T12:00:00.123456789Z`` (fixed width), so they
    compare as strings. A connection that breaks raises urllib3's (or the socket's) error.
    """
    buffer = b""
    try:
        for chunk in reply.stream(64 * 1024):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                yield _split_stamp(raw)
        if buffer:
            yield _split_stamp(buffer)
    finally:
        reply.release_conn()


def _split_stamp(raw: bytes) -> tuple[str, str]:
    line = raw.decode("utf-8", errors="replace").rstrip("\r")
    stamp, sep, text = line.partition(" ")
    if sep and stamp[:4].isdigit() and stamp.endswith("Z"):
        return stamp, text
    return "", line
