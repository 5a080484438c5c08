"""A FAKE Kubernetes API server, for kctl's tests only. It is not Kubernetes and ships nowhere.

:class:`FakeKubeAPIServer` serves, over plain HTTP on 127.0.0.1 (an ephemeral port, in a thread),
the subset of the Kubernetes REST API that kctl's cluster commands use, so that the REAL
``kubernetes`` client can be pointed at it through an ordinary kubeconfig:

- discovery: ``/version``, ``/api``, ``/api/v1``, ``/apis``; ``/apis/kubeflow.org`` and
  ``/apis/kubeflow.org/v1`` only while ``crd_installed`` (otherwise every ``kubeflow.org`` path is
  a 404 "the server could not find the requested resource", as on a cluster without the CRD);
- create / get / list / delete of ``pytorchjobs`` (kubeflow.org/v1), ``configmaps``,
  ``persistentvolumeclaims``, ``pods`` and ``events`` in a namespace, and lists across namespaces
  (``/apis/kubeflow.org/v1/pytorchjobs``, ``/api/v1/pods``, ...), with ``labelSelector`` and
  ``fieldSelector`` (equality terms only);
- pod logs (``/api/v1/namespaces/{ns}/pods/{name}/log``) with ``container``, ``follow``,
  ``previous``, ``timestamps`` and ``sinceSeconds``; a followed log is a chunked stream that ends
  when the container ends (:meth:`finish_pod`, :meth:`restart_container`, :meth:`replace_pod`)
  or the connection drops (:meth:`drop_log_streams`);
- delete with ``propagationPolicy`` and ``preconditions.uid``; dependents (objects whose
  ``ownerReferences`` name the deleted uid) are garbage-collected at once, where the real
  collector does it shortly after;
- errors as ``Status`` objects: 400 BadRequest, 401 Unauthorized, 403 Forbidden, 404 NotFound,
  405 MethodNotAllowed, 409 AlreadyExists / Conflict, 422 Invalid.

Created objects are checked with :mod:`kctl.validate` (the vendored CRD schema, the training
operator's webhook rules, kctl's core schemas) and refused with 422 as the API server and the
webhook would. One difference: unknown fields are refused, where a real server prunes them.

Nothing runs the objects: tests play the operator and the kubelet with :meth:`add_job`,
:meth:`add_pod`, :meth:`add_event`, :meth:`set_conditions`, :meth:`append_log`,
:meth:`drop_log_streams`, :meth:`restart_container`, :meth:`replace_pod` and
:meth:`finish_pod`. :meth:`forbid` makes RBAC refuse a verb on a resource; :attr:`requests`
records what was asked.

The pytest fixture :func:`fake_kube` starts one server per test and points ``KUBECONFIG`` at a
kubeconfig for it. The fixture :func:`run_kctl` runs ``kctl`` in this process;
:func:`kctl_subprocess` and :class:`KctlProcess` run it in a new one.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

JOB_LABEL = "training.kubeflow.org/job-name"
GROUP = "kubeflow.org"

#: (group, version, plural) -> kind, for every resource the fake serves.
TYPES = {
    ("", "v1", "pods"): "Pod",
    ("", "v1", "configmaps"): "ConfigMap",
    ("", "v1", "persistentvolumeclaims"): "PersistentVolumeClaim",
    ("", "v1", "events"): "Event",
    (GROUP, "v1", "pytorchjobs"): "PyTorchJob",
}

_PATH = re.compile(r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
                   r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)"
                   r"(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$")

REPO_ROOT = Path(__file__).resolve().parents[2]


def rfc3339(when: datetime | None = None) -> str:
    """``2024-05-01T12:00:00Z``: how the API writes times."""
    return (when or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pytorchjob(name: str, namespace: str = "default", workers: int = 1, gpus: int = 8,
               claim: str | None = None) -> dict:
    """A valid PyTorchJob like the facts' §11 example: 1 Master + ``workers`` Workers.

    Args:
        name: The job's name.
        namespace: Its namespace.
        workers: Worker replicas; 0 leaves the Worker out.
        gpus: ``nvidia.com/gpu`` per pod; 0 for none.
        claim: A PersistentVolumeClaim to mount at /work-dir.
    """
    def replica(count):
        container = {"name": "pytorch", "image": "registry.example.com/team/train:1.0",
                     "command": ["torchrun", "-m", "trainer", "/config/job.py"],
                     "ports": [{"name": "pytorchjob-port", "containerPort": 23456}]}
        if gpus:
            container["resources"] = {"limits": {"nvidia.com/gpu": gpus}}
        spec = {"containers": [container]}
        if claim:
            container["volumeMounts"] = [{"name": "work-dir", "mountPath": "/work-dir"}]
            spec["volumes"] = [{"name": "work-dir", "persistentVolumeClaim": {"claimName": claim}}]
        return {"replicas": count, "restartPolicy": "OnFailure", "template": {"spec": spec}}

    specs = {"Master": replica(1)}
    if workers:
        specs["Worker"] = replica(workers)
    return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"nprocPerNode": str(gpus or 1),
                     "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 3},
                     "pytorchReplicaSpecs": specs}}


class _Log:
    """One container's log: timestamped lines, and whether the container has ended."""

    _last_ns = 0  # stamps are strictly increasing, as the tests' ordering needs

    def __init__(self, text: str = "", closed: bool = False):
        self.lines: list[tuple[float, str, str]] = []  # (unix time, RFC 3339 nano stamp, text)
        self.closed = closed
        self.drops = 0  # how often the streams open on this log were cut (see drop())
        self.cond = threading.Condition()
        self.append(text)

    def append(self, text: str) -> None:
        with self.cond:
            for line in text.splitlines():
                ns = _Log._last_ns = max(time.time_ns(), _Log._last_ns + 1)
                # Fixed-width nanoseconds, as the kubelet writes them.
                stamp = datetime.fromtimestamp(ns // 10**9, timezone.utc).strftime(
                    "%Y-%m-%dT%H:%M:%S") + f".{ns % 10**9:09d}Z"
                self.lines.append((ns / 1e9, stamp, line))
            self.cond.notify_all()

    def close(self) -> None:
        """The container ended: streams end once they have sent every line."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def drop(self) -> None:
        """The streams open now end, as if their connections dropped; the container runs on."""
        with self.cond:
            self.drops += 1
            self.cond.notify_all()


class _ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": message, "reason": reason, "details": details or {},
                       "code": code}
        self.code = code


def _not_found_type() -> _ApiError:
    return _ApiError(404, "NotFound", "the server could not find the requested resource")


@dataclass
class Request:
    """One request the fake served: method, path and parsed query."""

    method: str
    path: str
    query: dict


class FakeKubeAPIServer:
    """A FAKE Kubernetes API server for tests (see the module docstring for what it speaks).

    Args:
        crd_installed: Whether the PyTorchJob CRD (kubeflow.org/v1) is served.
        token: The bearer token clients must send (else 401).
        user: The user name in "forbidden" messages.
    """

    def __init__(self, crd_installed: bool = True, token: str = "fake-token",
                 user: str = "kctl-test"):
        self.crd_installed = crd_installed
        self.token = token
        self.user = user
        self.forbidden: set[tuple[str, str]] = set()
        self.requests: list[Request] = []
        self.namespaces = {"default", "kube-system"}
        self._objects: dict[str, dict[tuple[str, str], dict]] = {p: {} for (_, _, p) in TYPES}
        self._logs: dict[str, _Log] = {}  # container ID -> log
        self._lock = threading.RLock()
        self._version = itertools.count(1)
        self._stopping = False
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> "FakeKubeAPIServer":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        name="fake-apiserver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        for log in list(self._logs.values()):
            log.close()
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self) -> "FakeKubeAPIServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def write_kubeconfig(self, path: Path, context: str = "fake", namespace: str | None = None,
                         token: str | None = None) -> Path:
        """A kubeconfig whose current context ``context`` points at this server."""
        ctx = {"cluster": "fake-cluster", "user": "fake-user"}
        if namespace:
            ctx["namespace"] = namespace
        config = {"apiVersion": "v1", "kind": "Config", "preferences": {},
                  "clusters": [{"name": "fake-cluster", "cluster": {"server": self.url}}],
                  "users": [{"name": "fake-user", "user": {"token": token or self.token}}],
                  "contexts": [{"name": context, "context": ctx}],
                  "current-context": context}
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    # -- knobs: what tests seed and inspect -------------------------------------------------

    def forbid(self, verb: str, resource: str) -> None:
        """Make RBAC refuse ``verb`` (``*`` for every verb) on ``resource`` (``pods/log``)."""
        self.forbidden.add((verb, resource))

    def get(self, plural: str, name: str, namespace: str = "default") -> dict | None:
        with self._lock:
            return self._objects[plural].get((namespace, name))

    def list(self, plural: str, namespace: str | None = None) -> list[dict]:
        with self._lock:
            return [o for (ns, _), o in sorted(self._objects[plural].items())
                    if namespace is None or ns == namespace]

    def add_job(self, name: str, namespace: str = "default", conditions=(("Created", "True"),),
                created: datetime | None = None, **manifest) -> dict:
        """Store a valid PyTorchJob (see :func:`pytorchjob`) as if it had been created."""
        job = self._store("pytorchjobs", pytorchjob(name, namespace, **manifest), created)
        self.set_conditions(name, conditions, namespace)
        return job

    def set_conditions(self, job: str, conditions, namespace: str = "default") -> None:
        """Set a job's ``status.conditions``: ``(type, status[, reason[, message]])`` each."""
        now = rfc3339()
        status = [{"type": c[0], "status": c[1],
                   "reason": c[2] if len(c) > 2 else f"PyTorchJob{c[0]}",
                   "message": c[3] if len(c) > 3 else f"PyTorchJob {job} is {c[0].lower()}.",
                   "lastTransitionTime": now, "lastUpdateTime": now} for c in conditions]
        with self._lock:
            self._objects["pytorchjobs"][(namespace, job)]["status"] = {"conditions": status}

    def add_pod(self, job: str, replica: str, namespace: str = "default", phase: str = "Running",
                restarts: int = 0, logs: str = "", previous_logs: str | None = None,
                waiting: str | None = None, exit_code: int | None = None,
                last_exit: tuple[int, str] = (1, "Error"), node: str | None = "node-1",
                created: datetime | None = None) -> dict:
        """Store the pod the operator would make for ``replica`` (``master-0``, ``worker-1``).

        Args:
            phase: Pending (not scheduled, unless ``waiting`` says why its container waits),
                Running, Succeeded or Failed.
            restarts: The ``pytorch`` container's restartCount; above 0 there is a previous
                container, which logged ``previous_logs`` and ended with ``last_exit``
                (exit code, reason).
            logs: What the current container logged so far. Its log stays open (a follower
                waits for more) while the container runs.
            waiting: A waiting reason (ContainerCreating, CrashLoopBackOff, ImagePullBackOff):
                no current container.
            exit_code: For Succeeded/Failed, the container's exit code (0 / 1 by default).
        """
        rtype, index = replica.rsplit("-", 1)
        name = f"{job}-{replica}"
        labels = {JOB_LABEL: job, "training.kubeflow.org/operator-name": "pytorchjob-controller",
                  "training.kubeflow.org/replica-type": rtype,
                  "training.kubeflow.org/replica-index": index}
        if rtype == "master":
            labels["training.kubeflow.org/job-role"] = "master"
        meta = {"name": name, "namespace": namespace, "labels": labels}
        owner = self.get("pytorchjobs", job, namespace)
        if owner:
            meta["ownerReferences"] = [{"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
                                        "name": job, "uid": owner["metadata"]["uid"],
                                        "controller": True, "blockOwnerDeletion": True}]
        status = {"phase": phase, "conditions": []}
        if phase == "Pending" and not waiting:
            status["conditions"] = [{"type": "PodScheduled", "status": "False",
                                     "reason": "Unschedulable",
                                     "message": "0/3 nodes are available: 3 Insufficient "
                                                "nvidia.com/gpu."}]
            node = None
        else:
            status["containerStatuses"] = [self._container_status(
                phase, restarts, logs, previous_logs, waiting, exit_code, last_exit)]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
               "spec": {"containers": [{"name": "pytorch", "image": "registry.example.com/t:1"}],
                        "nodeName": node},
               "status": status}
        return self._store("pods", pod, created)

    def _container_status(self, phase, restarts, logs, previous_logs, waiting, exit_code,
                          last_exit) -> dict:
        status = {"name": "pytorch", "restartCount": restarts, "ready": phase == "Running",
                  "image": "registry.example.com/t:1", "lastState": {}}
        if restarts:
            previous = self._new_container(previous_logs or "", closed=True)
            status["lastState"] = {"terminated": {"exitCode": last_exit[0], "reason": last_exit[1],
                                                  "containerID": previous,
                                                  "finishedAt": rfc3339()}}
        if waiting:
            status["state"] = {"waiting": {"reason": waiting, "message": f"fake {waiting}"}}
        elif phase in ("Succeeded", "Failed"):
            code = exit_code if exit_code is not None else (0 if phase == "Succeeded" else 1)
            status["state"] = {"terminated": {
                "exitCode": code, "reason": "Completed" if code == 0 else "Error",
                "containerID": self._new_container(logs, closed=True), "finishedAt": rfc3339()}}
        else:
            status["state"] = {"running": {"startedAt": rfc3339(),
                                           "containerID": self._new_container(logs)}}
        return status

    def _new_container(self, logs: str, closed: bool = False) -> str:
        container_id = f"containerd://{uuid.uuid4().hex}"
        self._logs[container_id] = _Log(logs, closed=closed)
        return container_id

    def add_event(self, involved: str, reason: str, message: str, namespace: str = "default",
                  type: str = "Warning", kind: str = "Pod", count: int = 1) -> dict:
        """Store an Event about object ``involved`` (its uid is filled in when it exists)."""
        plural = {"Pod": "pods", "PyTorchJob": "pytorchjobs"}[kind]
        target = self.get(plural, involved, namespace)
        now = rfc3339()
        event = {"apiVersion": "v1", "kind": "Event",
                 "metadata": {"name": f"{involved}.{uuid.uuid4().hex[:16]}",
                              "namespace": namespace},
                 "involvedObject": {"kind": kind, "name": involved, "namespace": namespace,
                                    "uid": target["metadata"]["uid"] if target else ""},
                 "reason": reason, "message": message, "type": type, "count": count,
                 "firstTimestamp": now, "lastTimestamp": now,
                 "source": {"component": "default-scheduler"}}
        return self._store("events", event)

    def append_log(self, pod: str, text: str, namespace: str = "default") -> None:
        """The pod's running container writes ``text``."""
        self._logs[self._current_id(pod, namespace)].append(text)

    def drop_log_streams(self, pod: str, namespace: str = "default") -> None:
        """Followed logs of the pod's container end, as when a connection drops."""
        self._logs[self._current_id(pod, namespace)].drop()

    def restart_container(self, pod: str, logs: str = "", namespace: str = "default",
                          last_exit: tuple[int, str] = (1, "Error")) -> None:
        """The kubelet restarts the pod's container in place: a new container logs ``logs``."""
        with self._lock:
            obj = self.get("pods", pod, namespace)
            status = obj["status"]["containerStatuses"][0]
            old = self._current_id(pod, namespace)
            self._logs[old].close()
            status["lastState"] = {"terminated": {"exitCode": last_exit[0],
                                                  "reason": last_exit[1], "containerID": old,
                                                  "finishedAt": rfc3339()}}
            status["restartCount"] += 1
            status["state"] = {"running": {"startedAt": rfc3339(),
                                           "containerID": self._new_container(logs)}}

    def replace_pod(self, job: str, replica: str, namespace: str = "default", **pod) -> dict:
        """The operator re-creates a replica's pod: the old one (and its log stream) ends."""
        old = self.get("pods", f"{job}-{replica}", namespace)
        if old:
            self._delete("pods", namespace, old["metadata"]["name"], "Background")
        return self.add_pod(job, replica, namespace, **pod)

    def finish_pod(self, pod: str, phase: str = "Succeeded", exit_code: int = 0,
                   namespace: str = "default") -> None:
        """The pod's container exits with ``exit_code`` and the pod ends in ``phase``."""
        with self._lock:
            obj = self.get("pods", pod, namespace)
            container_id = self._current_id(pod, namespace)
            obj["status"]["phase"] = phase
            obj["status"]["containerStatuses"][0]["state"] = {"terminated": {
                "exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                "containerID": container_id, "finishedAt": rfc3339()}}
            self._logs[container_id].close()

    def _current_id(self, pod: str, namespace: str) -> str:
        state = self.get("pods", pod, namespace)["status"]["containerStatuses"][0]["state"]
        return (state.get("running") or state.get("terminated"))["containerID"]

    # -- the store --------------------------------------------------------------------------

    def _store(self, plural: str, obj: dict, created: datetime | None = None) -> dict:
        obj = json.loads(json.dumps(obj))
        meta = obj.setdefault("metadata", {})
        with self._lock:
            self.namespaces.add(meta["namespace"])
            meta.update(uid=str(uuid.uuid4()), resourceVersion=str(next(self._version)),
                        creationTimestamp=rfc3339(created), generation=1)
            self._objects[plural][(meta["namespace"], meta["name"])] = obj
        return obj

    def _delete(self, plural: str, namespace: str, name: str, propagation: str) -> dict:
        with self._lock:
            obj = self._objects[plural].pop((namespace, name))
            if plural == "pods":
                for status in obj.get("status", {}).get("containerStatuses", []):
                    for state in (status.get("state", {}), status.get("lastState", {})):
                        for detail in state.values():
                            if detail.get("containerID") in self._logs:
                                self._logs[detail["containerID"]].close()
            if propagation != "Orphan":
                uid = obj["metadata"]["uid"]
                for dep_plural, objects in self._objects.items():
                    for (ns, dep), dependent in list(objects.items()):
                        owners = dependent["metadata"].get("ownerReferences") or []
                        if any(o.get("uid") == uid for o in owners):
                            self._delete(dep_plural, ns, dep, propagation)
        return obj

    # -- HTTP -------------------------------------------------------------------------------

    def handle(self, req: "_Handler", method: str) -> None:
        url = urlsplit(req.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.requests.append(Request(method, url.path, query))
        try:
            if req.headers.get("Authorization") != f"Bearer {self.token}":
                raise _ApiError(401, "Unauthorized", "Unauthorized")
            length = int(req.headers.get("Content-Length") or 0)
            body = json.loads(req.rfile.read(length) or b"null") if length else None
            reply = self._discovery(method, url.path)
            if reply is None:
                reply = self._resource(req, method, url.path, query, body)
            if reply is not None:
                req.send_json(*reply)
        except _ApiError as err:
            req.send_json(err.code, err.status)

    def _discovery(self, method: str, path: str):
        if method != "GET":
            return None
        kubeflow = {"name": GROUP, "versions": [{"groupVersion": f"{GROUP}/v1", "version": "v1"}],
                    "preferredVersion": {"groupVersion": f"{GROUP}/v1", "version": "v1"}}
        if path == "/version":
            return 200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0-fake"}
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": self.url[len("http://"):]}]}
        if path == "/apis":
            groups = [dict(kubeflow)] if self.crd_installed else []
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        if path in ("/api/v1", f"/apis/{GROUP}", f"/apis/{GROUP}/v1"):
            group = "" if path == "/api/v1" else GROUP
            if group and not self.crd_installed:
                raise _not_found_type()
            if path == f"/apis/{GROUP}":
                return 200, dict(kubeflow, kind="APIGroup", apiVersion="v1")
            resources = [{"name": p, "singularName": k.lower(), "namespaced": True, "kind": k,
                          "verbs": ["create", "delete", "get", "list", "patch", "update",
                                    "watch"]}
                         for (g, _, p), k in TYPES.items() if g == group]
            return 200, {"kind": "APIResourceList", "apiVersion": "v1",
                         "groupVersion": f"{group}/v1" if group else "v1",
                         "resources": resources}
        return None

    def _resource(self, req, method: str, path: str, query: dict, body):
        match = _PATH.match(path)
        if not match:
            raise _not_found_type()
        group = "" if match["core"] else match["group"]
        version = match["core"] or match["version"]
        ns, plural, name, sub = match["ns"], match["plural"], match["name"], match["sub"]
        kind = TYPES.get((group, version, plural))
        if kind is None or (group == GROUP and not self.crd_installed) or (
                sub and (plural, sub) != ("pods", "log")):
            raise _not_found_type()
        verb = {"GET": "get" if name else ("watch" if query.get("watch") == "true" else "list"),
                "POST": "create", "DELETE": "delete" if name else "deletecollection",
                "PUT": "update", "PATCH": "patch"}[method]
        resource = f"{plural}/{sub}" if sub else plural
        self._authorize(verb, resource, group, ns, name)
        if verb == "get" and sub:
            self._pod_log(req, ns, name, query)
            return None
        if verb == "get":
            return 200, self._existing(group, plural, ns, name)
        if verb == "list":
            return 200, self._list(group, version, kind, plural, ns, query)
        if verb == "create" and ns and not name:
            return 201, self._create(group, kind, plural, ns, body)
        if verb == "delete" and ns:
            return 200, self._delete_request(group, plural, ns, name, body or {}, query)
        raise _ApiError(405, "MethodNotAllowed",
                        f"the fake API server does not support {verb} on {resource}")

    def _authorize(self, verb, resource, group, ns, name) -> None:
        if (verb, resource) not in self.forbidden and ("*", resource) not in self.forbidden:
            return
        plural = resource.split("/")[0]
        what = f"{plural}.{group}" if group else plural
        subject = f'{what} "{name}"' if name else what
        scope = f'in the namespace "{ns}"' if ns else "at the cluster scope"
        raise _ApiError(403, "Forbidden", f'{subject} is forbidden: User "{self.user}" cannot '
                                          f'{verb} resource "{resource}" in API group "{group}" '
                                          f"{scope}",
                        {"name": name or "", "group": group, "kind": plural})

    def _existing(self, group: str, plural: str, ns: str, name: str) -> dict:
        obj = self.get(plural, name, ns)
        if obj is None:
            what = f"{plural}.{group}" if group else plural
            raise _ApiError(404, "NotFound", f'{what} "{name}" not found',
                            {"name": name, "group": group, "kind": plural})
        return obj

    def _list(self, group, version, kind, plural, ns, query) -> dict:
        labels = _selector(query.get("labelSelector", ""))
        fields = _selector(query.get("fieldSelector", ""))
        items = [o for o in self.list(plural, ns)
                 if all(_matches((o["metadata"].get("labels") or {}).get(k), op, v)
                        for k, op, v in labels)
                 and all(_matches(_field(o, k), op, v) for k, op, v in fields)]
        return {"apiVersion": f"{group}/{version}" if group else version, "kind": f"{kind}List",
                "metadata": {"resourceVersion": str(next(self._version))}, "items": items}

    def _create(self, group, kind, plural, ns, body) -> dict:
        from kctl.validate.manifest import validate_object

        if not isinstance(body, dict) or body.get("kind") != kind:
            raise _ApiError(400, "BadRequest", f"expected a {kind} in the request body")
        meta = body.setdefault("metadata", {})
        if meta.get("namespace", ns) != ns:
            raise _ApiError(400, "BadRequest", "the namespace of the provided object does not "
                                               "match the namespace sent on the request")
        meta["namespace"] = ns
        if ns not in self.namespaces:
            raise _ApiError(404, "NotFound", f'namespaces "{ns}" not found',
                            {"name": ns, "kind": "namespaces"})
        name = meta.get("name")
        what = f"{kind}.{group}" if group else kind
        problems = validate_object(body) if kind != "Event" else []
        if problems:
            causes = [{"reason": "FieldValueInvalid", "message": p.message, "field": p.path}
                      for p in problems]
            raise _ApiError(422, "Invalid", f'{what} "{name}" is invalid: '
                                            + ", ".join(str(p) for p in problems),
                            {"name": name, "group": group, "kind": plural, "causes": causes})
        with self._lock:
            if self.get(plural, name, ns) is not None:
                raise _ApiError(409, "AlreadyExists",
                                f'{plural}.{group} "{name}" already exists' if group
                                else f'{plural} "{name}" already exists',
                                {"name": name, "group": group, "kind": plural})
            return self._store(plural, body)

    def _delete_request(self, group, plural, ns, name, options: dict, query: dict) -> dict:
        obj = self._existing(group, plural, ns, name)
        wanted = (options.get("preconditions") or {}).get("uid")
        if wanted and wanted != obj["metadata"]["uid"]:
            raise _ApiError(409, "Conflict", f'Operation cannot be fulfilled on {plural} "{name}": '
                                             f"Precondition failed: UID in precondition: {wanted}, "
                                             f"UID in object meta: {obj['metadata']['uid']}")
        policy = options.get("propagationPolicy") or query.get("propagationPolicy") or "Background"
        self._delete(plural, ns, name, policy)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": group, "kind": plural,
                            "uid": obj["metadata"]["uid"]}}

    def _pod_log(self, req, ns: str, name: str, query: dict) -> None:
        pod = self._existing("", "pods", ns, name)
        containers = [c["name"] for c in pod["spec"]["containers"]]
        container = query.get("container")
        if container is None and len(containers) > 1:
            raise _ApiError(400, "BadRequest", f"a container name must be specified for pod "
                                               f"{name}, choose one of: {containers}")
        container = container or containers[0]
        if container not in containers:
            raise _ApiError(400, "BadRequest",
                            f"container {container} is not valid for pod {name}")
        if not pod["spec"].get("nodeName"):
            raise _ApiError(400, "BadRequest", f'container "{container}" in pod "{name}" is '
                                               "waiting to start: ContainerCreating")
        status = next(s for s in pod["status"].get("containerStatuses", [])
                      if s["name"] == container)
        if query.get("previous") == "true":
            container_id = (status.get("lastState", {}).get("terminated") or {}).get(
                "containerID")
            if not container_id:
                raise _ApiError(400, "BadRequest", f'previous terminated container "{container}" '
                                                   f'in pod "{name}" not found')
        else:
            state = status.get("state", {})
            started = state.get("running") or state.get("terminated")
            if not started:
                reason = state.get("waiting", {}).get("reason", "ContainerCreating")
                raise _ApiError(400, "BadRequest", f'container "{container}" in pod "{name}" is '
                                                   f"waiting to start: {reason}")
            container_id = started["containerID"]
        since = float(query["sinceSeconds"]) if "sinceSeconds" in query else None
        req.send_log(self._logs[container_id], follow=query.get("follow") == "true",
                     stamps=query.get("timestamps") == "true", since=since,
                     stopping=lambda: self._stopping)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeKubeAPIServer

    def do_GET(self):
        self.fake.handle(self, "GET")

    def do_POST(self):
        self.fake.handle(self, "POST")

    def do_DELETE(self):
        self.fake.handle(self, "DELETE")

    def do_PUT(self):
        self.fake.handle(self, "PUT")

    def do_PATCH(self):
        self.fake.handle(self, "PATCH")

    def log_message(self, *args):
        pass

    def send_json(self, code: int, obj) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_log(self, log: _Log, follow: bool, stamps: bool, since: float | None,
                 stopping) -> None:
        def render(lines):
            cutoff = time.time() - since if since is not None else None
            return "".join(f"{stamp} {text}\n" if stamps else f"{text}\n"
                           for when, stamp, text in lines if cutoff is None or when >= cutoff)

        if not follow:
            with log.cond:
                data = render(log.lines).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent, drops = 0, log.drops
        try:
            while True:
                with log.cond:
                    while (sent == len(log.lines) and not log.closed and log.drops == drops
                           and not stopping()):
                        log.cond.wait(0.2)
                    new, sent = log.lines[sent:], len(log.lines)
                    done = log.closed or log.drops != drops or stopping()
                data = render(new).encode()
                if data:
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()
                if done:
                    break
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _selector(text: str) -> list[tuple[str, str, str]]:
    """``a=b,c!=d,e`` as ``(key, op, value)`` terms; set-based terms are not supported."""
    terms = []
    for term in filter(None, (t.strip() for t in text.split(","))):
        if "(" in term:
            raise _ApiError(400, "BadRequest", f"the fake API server cannot parse {term!r}")
        match = re.fullmatch(r"(!?)([^=!]+?)\s*(?:(==|=|!=)\s*(.*))?", term)
        neg, key, op, value = match.groups()
        terms.append((key, "!exists" if neg else (op or "exists"), value or ""))
    return terms


def _matches(actual, op: str, value: str) -> bool:
    if op in ("=", "=="):
        return actual == value
    if op == "!=":
        return actual != value
    return (actual is not None) == (op == "exists")


def _field(obj: dict, dotted: str):
    for part in dotted.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


# -- pytest fixtures --------------------------------------------------------------------------


@pytest.fixture
def fake_kube(tmp_path, monkeypatch):
    """A running :class:`FakeKubeAPIServer`; ``KUBECONFIG`` names a kubeconfig for it (context
    ``fake``, namespace ``default``), and no in-cluster configuration is visible."""
    with FakeKubeAPIServer() as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        monkeypatch.setenv("HOME", str(tmp_path))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        yield server


@dataclass
class Result:
    """What a ``kctl`` run did: exit code, stdout, stderr."""

    code: int
    out: str
    err: str


@pytest.fixture
def run_kctl(capsys):
    """Run ``kctl ARGS...`` in this process (``kctl.cli.main``) and return a :class:`Result`."""
    from kctl.cli import main

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:  # argparse usage errors
            code = exit_.code
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def _environ(env: dict | None) -> dict:
    environ = dict(os.environ if env is None else env)
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                          environ.get("PYTHONPATH")]))
    return environ


def kctl_subprocess(*args: str, env: dict | None = None, timeout: float = 60) -> Result:
    """Run ``python -m kctl ARGS...`` in a new process from the repository root."""
    done = subprocess.run([sys.executable, "-m", "kctl", *map(str, args)], cwd=REPO_ROOT,
                          env=_environ(env), capture_output=True, text=True, timeout=timeout)
    return Result(done.returncode, done.stdout, done.stderr)


class KctlProcess:
    """``python -m kctl ARGS...`` running in the background (``kctl logs -f``), its output
    collected line by line as it comes."""

    def __init__(self, *args: str, env: dict | None = None):
        self.proc = subprocess.Popen([sys.executable, "-m", "kctl", *map(str, args)],
                                     cwd=REPO_ROOT, env=_environ(env), text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                         for stream, lines in ((self.proc.stdout, self.out),
                                               (self.proc.stderr, self.err))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_for_line(self, line: str, timeout: float = 30) -> None:
        """Wait until stdout has printed ``line``; fail the test after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while line not in self.out:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                time.sleep(0.2)  # let the readers catch up before reporting
                self.proc.kill()
                pytest.fail(f"kctl never printed {line!r}; stdout={self.out} stderr={self.err}")
            time.sleep(0.05)

    def wait(self, timeout: float = 30) -> Result:
        """Wait for the process to end and return what it printed."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"kctl did not end; stdout={self.out} stderr={self.err}")
        for reader in self._readers:
            reader.join(5)
        return Result(code, "".join(f"{line}\n" for line in self.out),
                      "".join(f"{line}\n" for line in self.err))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def ago(**delta) -> datetime:
    """A time in the past, e.g. ``ago(minutes=5)``, for ``created=``."""
    return datetime.now(timezone.utc) - timedelta(**delta)
