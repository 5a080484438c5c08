"""A FAKE Kubernetes API server, for kctl's tests only. It is not Kubernetes and ships nowhere.

:class:`FakeKubeAPIServer` serves, over plain HTTP on 127.0.0.1 (an ephemeral port, in a thread),
the subset of the Kubernetes REST API that kctl's cluster commands use, so that the REAL
``kubernetes`` client can be pointed at it through an ordinary kubeconfig:

- discovery: ``/version`` (:attr:`~FakeKubeAPIServer.version`), ``/api``, ``/api/v1``,
  ``/apis`` and ``/apis/GROUP[/VERSION]``. Which CRDs the cluster has is the knob
  :attr:`~FakeKubeAPIServer.served` (``"PyTorchJob"``: ``kubeflow.org/v1``; ``"TrainJob"``: the
  Trainer v2 group ``trainer.kubeflow.org/v1alpha1`` with JobSet's ``jobset.x-k8s.io``;
  ``"LocalQueue"``: Kueue's ``kueue.x-k8s.io/v1beta1``); ``crd_installed`` is the PyTorchJob
  part of it. A group that is not served is missing from ``/apis`` and every path in it is a 404
  "the server could not find the requested resource", as on a cluster without the CRD. Storing
  an object of a CRD (:meth:`~FakeKubeAPIServer.add_job`, ``add_trainjob``, ``add_runtime``,
  ``add_local_queue``) installs that CRD;
- create / get / list / delete of ``pytorchjobs``, ``trainjobs``, ``trainingruntimes``,
  ``jobsets``, ``jobs``, ``localqueues``, ``configmaps``, ``secrets``,
  ``persistentvolumeclaims``, ``pods`` and ``events`` in a namespace; of the cluster-scoped
  ``clustertrainingruntimes``, ``nodes``, ``storageclasses`` and ``namespaces`` (get and list:
  :attr:`namespaces` and :meth:`add_namespace`); lists across namespaces
  (``/apis/kubeflow.org/v1/pytorchjobs``, ``/api/v1/pods``, ...), with ``labelSelector``
  (``=``, ``==``, ``!=``, ``in``, ``notin``, existence) and ``fieldSelector`` (equality);
- watches (``?watch=true``, with ``resourceVersion``, ``timeoutSeconds`` and the selectors):
  ``ADDED`` for what exists when no ``resourceVersion`` is given, then every change (a helper
  that changes an object's status, e.g. :meth:`set_trainjob_status`, is a ``MODIFIED``) as JSON
  lines;
- ``SelfSubjectAccessReview`` (POST ``/apis/authorization.k8s.io/v1/selfsubjectaccessreviews``),
  answered from :meth:`forbid`;
- pod logs (``/api/v1/namespaces/{ns}/pods/{name}/log``) with ``container``, ``follow``,
  ``previous``, ``timestamps`` and ``sinceSeconds``; a followed log is a chunked stream that ends
  when the container ends (:meth:`finish_pod`, :meth:`restart_container`, :meth:`replace_pod`)
  or the connection drops (:meth:`drop_log_streams`);
- delete with ``propagationPolicy`` and ``preconditions.uid``; dependents (objects whose
  ``ownerReferences`` name the deleted uid, e.g. TrainJob -> JobSet -> Job -> Pod) are
  garbage-collected at once, where the real collector does it shortly after;
- errors as ``Status`` objects: 400 BadRequest, 401 Unauthorized, 403 Forbidden, 404 NotFound,
  405 MethodNotAllowed, 409 AlreadyExists / Conflict, 422 Invalid;
- faults on demand (:meth:`inject`): the next requests matching a method and path answer 429
  with ``Retry-After``, 500 or 503, or have their connection reset before anything is done
  (``"reset"``) or after the request took effect, mid-answer (``"reset-mid"``: a followed log
  sends what it has, a watch what existed, then the connection is reset).

Created objects are checked with :mod:`kctl.validate` and refused as a cluster would:
PyTorchJobs, ConfigMaps and claims with 422 for everything kctl checks (the training operator's
webhook answers 422 too); TrainJobs with 422 for what the API server checks (schema, CEL rules,
list-map keys, metadata), then as the Trainer's validating webhook: 403 "admission webhook
... denied the request: ..." when the referenced (Cluster)TrainingRuntime does not exist (in the
Trainer's words), or for the webhook's other rules, checked against the stored runtime (in kctl's
words, :func:`kctl.validate.trainjob.webhook_problems`). What nothing on a real server
checks (a TrainJob name too long for its pods' names, ``numNodes: 0``) is accepted, as there.
CRD defaults are applied to created TrainJobs, and the defaulting webhook stamps
``runtimePatches[].time``. One difference: unknown fields are refused, where a real server prunes
them. A claim whose StorageClass exists is bound when the class offers its access modes
(:meth:`add_storage_class`), else stays Pending with a ProvisioningFailed event.

Nothing runs the objects: tests play the controllers and the kubelet with :meth:`add_job`,
:meth:`add_trainjob`, :meth:`add_runtime`, :meth:`create` (any object, admitted as a POST is),
:meth:`add_pod`, :meth:`add_event`, :meth:`set_conditions`, :meth:`set_trainjob_status`,
:meth:`append_log`, :meth:`drop_log_streams`, :meth:`restart_container`, :meth:`replace_pod`,
:meth:`delete_pod` and :meth:`finish_pod` (or :mod:`tests.support.emulator_bridge` plays them
from a job an operator emulator really runs),
and describe the cluster with :meth:`add_node`, :meth:`add_storage_class`,
:meth:`add_local_queue`, :meth:`add_namespace`, :meth:`add_secret`,
:meth:`set_trainer_version` and :meth:`install_trainer`. :meth:`forbid` makes RBAC refuse a verb
on a resource; :attr:`requests` records what was asked and how it was answered.

The pytest fixture :func:`fake_kube` starts one server per test and points ``KUBECONFIG`` at a
kubeconfig for it. The fixture :func:`run_kctl` runs ``kctl`` in this process;
:func:`kctl_subprocess` and :class:`KctlProcess` run it in a new one.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import os
import random
import re
import socket
import struct
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
TRAINER_GROUP = "trainer.kubeflow.org"
JOBSET_GROUP = "jobset.x-k8s.io"
KUEUE_GROUP = "kueue.x-k8s.io"

#: Labels the JobSet controller and the Job controller put on a TrainJob's pods.
JOBSET_LABEL = "jobset.sigs.k8s.io/jobset-name"
REPLICATED_JOB_LABEL = "jobset.sigs.k8s.io/replicatedjob-name"
COMPLETION_INDEX_LABEL = "batch.kubernetes.io/job-completion-index"

#: The Trainer's validating webhook, as the API server names it in a denial.
TRAINJOB_WEBHOOK = "validator.trainjob.trainer.kubeflow.org"

#: (group, version, plural) -> kind, for every resource the fake serves.
TYPES = {
    ("", "v1", "pods"): "Pod",
    ("", "v1", "configmaps"): "ConfigMap",
    ("", "v1", "persistentvolumeclaims"): "PersistentVolumeClaim",
    ("", "v1", "events"): "Event",
    ("", "v1", "secrets"): "Secret",
    ("", "v1", "nodes"): "Node",
    ("", "v1", "namespaces"): "Namespace",
    ("batch", "v1", "jobs"): "Job",
    ("storage.k8s.io", "v1", "storageclasses"): "StorageClass",
    ("authorization.k8s.io", "v1", "selfsubjectaccessreviews"): "SelfSubjectAccessReview",
    (GROUP, "v1", "pytorchjobs"): "PyTorchJob",
    (TRAINER_GROUP, "v1alpha1", "trainjobs"): "TrainJob",
    (TRAINER_GROUP, "v1alpha1", "trainingruntimes"): "TrainingRuntime",
    (TRAINER_GROUP, "v1alpha1", "clustertrainingruntimes"): "ClusterTrainingRuntime",
    (JOBSET_GROUP, "v1alpha2", "jobsets"): "JobSet",
    (KUEUE_GROUP, "v1beta1", "localqueues"): "LocalQueue",
}
PLURALS = {kind: plural for (_, _, plural), kind in TYPES.items()}
GROUPS = {plural: group for (group, _, plural) in TYPES}

#: Resources outside any namespace.
CLUSTER_SCOPED = {"nodes", "namespaces", "storageclasses", "selfsubjectaccessreviews",
                  "clustertrainingruntimes"}

#: The CRDs a cluster may lack: a name in :attr:`FakeKubeAPIServer.served` -> its API groups.
CRDS = {"PyTorchJob": (GROUP,), "TrainJob": (TRAINER_GROUP, JOBSET_GROUP),
        "LocalQueue": (KUEUE_GROUP,)}

#: What a TrainJob condition says by default: (type, status) -> (reason, message).
TRAINJOB_CONDITIONS = {
    ("Complete", "True"): ("AllJobsCompleted", "jobset completed successfully"),
    ("Failed", "True"): ("FailedJobs", "jobset failed due to one or more job failures "
                                       "(first failed job: {job}-node-0)"),
    ("Suspended", "True"): ("Suspended", "TrainJob is suspended"),
    ("Suspended", "False"): ("Resumed", "TrainJob is resumed"),
}

_PATH = re.compile(r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
                   r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)"
                   r"(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$")

#: The image every fake container runs, as the kubelet reports it once pulled.
_IMAGE_ID = "registry.example.com/t@sha256:" + "0" * 64

#: The characters Kubernetes draws generated name suffixes from.
_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"

REPO_ROOT = Path(__file__).resolve().parents[2]


def rfc3339(when: datetime | None = None) -> str:
    """``2024-05-01T12:00:00Z``: how the API writes times."""
    return (when or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")


def exit_reason(code: int) -> str:
    """The kubelet's ``reason`` for a container that exited with ``code`` (an OOM kill aside)."""
    return "Completed" if code == 0 else "Error"


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


def trainjob(name: str, namespace: str = "default", nodes: int = 2, gpus: int = 8,
             claim: str | None = None, queue: str | None = None,
             runtime: str = "torch-distributed",
             runtime_kind: str = "ClusterTrainingRuntime") -> dict:
    """A valid TrainJob shaped like the one ``kctl train --kind TrainJob`` renders: the config,
    work-dir and /dev/shm volumes and the security context through one runtime patch.

    Args:
        name: The job's name.
        namespace: Its namespace.
        nodes: ``numNodes``.
        gpus: ``nvidia.com/gpu`` per node (and processes per node); 0 for a CPU job of one
            process per node.
        claim: A PersistentVolumeClaim for /work_dirs; an emptyDir without one.
        queue: A Kueue LocalQueue: the job gets its label and starts suspended.
        runtime: The runtime's name.
        runtime_kind: ``ClusterTrainingRuntime`` or ``TrainingRuntime``.
    """
    labels = {"app.kubernetes.io/name": "kctl-trainer", "app.kubernetes.io/instance": name,
              "app.kubernetes.io/managed-by": "kctl", "kctl.dev/config": "job"}
    limits = {"cpu": "8", "memory": "32Gi"}
    env = [{"name": "TORCH_ELASTIC_WORKER_IDENTICAL", "value": "1"}]
    if gpus:
        limits["nvidia.com/gpu"] = gpus
    else:
        env.append({"name": "CUDA_VISIBLE_DEVICES", "value": ""})
    work_dir = ({"persistentVolumeClaim": {"claimName": claim}} if claim else {"emptyDir": {}})
    pod = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                            "fsGroup": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        "volumes": [
            {"name": "config", "configMap": {"name": f"{name}-config",
                                             "items": [{"key": "job.py", "path": "job.py"}]}},
            dict(name="work-dir", **work_dir),
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}],
        "containers": [{
            "name": "node",
            "securityContext": {"allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "config", "mountPath": "/config", "readOnly": True},
                             {"name": "work-dir", "mountPath": "/work_dirs"},
                             {"name": "dshm", "mountPath": "/dev/shm"}]}]}
    meta_labels = dict(labels, **({"kueue.x-k8s.io/queue-name": queue} if queue else {}))
    spec = {
        "runtimeRef": {"apiGroup": TRAINER_GROUP, "kind": runtime_kind, "name": runtime},
        "trainer": {
            "image": "registry.example.com/team/kctl-trainer:0.1.0",
            "command": ["torchrun", "-m", "trainer", "/config/job.py", "--launcher", "pytorch",
                        "--work-dir", f"/work_dirs/{name}", "--resume"],
            "numNodes": nodes, "numProcPerNode": gpus or 1,
            "resourcesPerNode": {"limits": limits,
                                 "requests": {"cpu": limits["cpu"], "memory": limits["memory"]}},
            "env": env},
        "runtimePatches": [{"manager": "kctl.dev/kctl", "trainingRuntimeSpec": {"template": {
            "spec": {"replicatedJobs": [{"name": "node", "template": {"spec": {"template": {
                "metadata": {"labels": labels}, "spec": pod}}}}]}}}}]}
    if queue:
        spec = {"suspend": True, **spec}
    return {"apiVersion": f"{TRAINER_GROUP}/v1alpha1", "kind": "TrainJob",
            "metadata": {"name": name, "namespace": namespace, "labels": meta_labels},
            "spec": spec}


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


def _invalid(what: str, name, group: str, plural: str, problems) -> _ApiError:
    """422 Invalid listing ``problems`` (kctl :class:`~kctl.validate.problems.Problem` s)."""
    causes = [{"reason": "FieldValueInvalid", "message": p.message, "field": p.path}
              for p in problems]
    return _ApiError(422, "Invalid", f'{what} "{name}" is invalid: '
                                     + ", ".join(str(p) for p in problems),
                     {"name": name, "group": group, "kind": plural, "causes": causes})


def _denied(webhook: str, messages: list[str]) -> _ApiError:
    """A validating webhook's denial as the API server relays it (controller-runtime answers a
    plain error with 403 Forbidden; several errors are joined as Go's ``Aggregate`` does)."""
    text = messages[0] if len(messages) == 1 else f"[{', '.join(messages)}]"
    return _ApiError(403, "Forbidden", f'admission webhook "{webhook}" denied the request: {text}')


#: Faults :meth:`FakeKubeAPIServer.inject` knows: HTTP errors, and two kinds of dropped connection.
_ERRORS = {429: ("TooManyRequests", "Too many requests, please try again later."),
           500: ("InternalError", "Internal error occurred: injected fault"),
           503: ("ServiceUnavailable", "the server is currently unable to handle the request")}
_RESETS = ("reset", "reset-mid")


@dataclass
class Fault:
    """Requests to answer wrongly (see :meth:`FakeKubeAPIServer.inject`)."""

    answer: int | str
    method: str
    path: re.Pattern
    times: int
    retry_after: int

    def matches(self, method: str, target: str) -> bool:
        return self.times > 0 and self.method in ("*", method) and bool(self.path.search(target))


@dataclass
class Request:
    """One request the fake served: method, path, parsed query, and how it was answered.

    ``status`` is the HTTP code sent (``"reset"`` where the connection was reset instead, or
    cut mid-answer); ``injected`` says whether a fault from :meth:`FakeKubeAPIServer.inject`
    answered it.
    """

    method: str
    path: str
    query: dict
    status: int | str | None = None
    injected: bool = False


class FakeKubeAPIServer:
    """A FAKE Kubernetes API server for tests (see the module docstring for what it speaks).

    Args:
        crd_installed: Whether the PyTorchJob CRD (kubeflow.org/v1) is served.
        token: The bearer token clients must send (else 401).
        user: The user name in "forbidden" messages.
        served: The CRDs the cluster has (keys of :data:`CRDS`); overrides ``crd_installed``.
    """

    def __init__(self, crd_installed: bool = True, token: str = "fake-token",
                 user: str = "kctl-test", served=None):
        self.served: set[str] = set(served if served is not None else
                                    ({"PyTorchJob"} if crd_installed else ()))
        unknown = self.served - set(CRDS)
        if unknown:
            raise ValueError(f"unknown CRDs {sorted(unknown)}; the fake knows {sorted(CRDS)}")
        self.token = token
        self.user = user
        #: ``/version``'s gitVersion.
        self.version = "v1.30.0"
        self.forbidden: set[tuple[str, str]] = set()
        self.requests: list[Request] = []
        self.namespaces = {"default", "kube-system"}
        self.faults: list[Fault] = []
        self._namespace_labels: dict[str, dict] = {}
        self._access_modes: dict[str, tuple[str, ...]] = {}  # StorageClass -> what it offers
        self._objects: dict[str, dict[tuple[str, str], dict]] = {p: {} for (_, _, p) in TYPES}
        self._logs: dict[str, _Log] = {}  # container ID -> log
        self._lock = threading.RLock()
        self._version = itertools.count(1)
        #: Every change, for watches: (resourceVersion, ADDED|MODIFIED|DELETED, plural, copy).
        self._changes: list[tuple[int, str, str, dict]] = []
        self._changed = threading.Condition(self._lock)
        self._random = random.Random(0)
        self._stopping = False
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def crd_installed(self) -> bool:
        """Whether the PyTorchJob CRD is served (the ``"PyTorchJob"`` part of :attr:`served`)."""
        return "PyTorchJob" in self.served

    @crd_installed.setter
    def crd_installed(self, installed: bool) -> None:
        (self.served.add if installed else self.served.discard)("PyTorchJob")

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

    def inject(self, answer: int | str, path: str = "", method: str = "*", times: int = 1,
               retry_after: int = 1) -> Fault:
        """Answer the next ``times`` requests whose method and target match with a fault.

        Args:
            answer: 429 (TooManyRequests, with a ``Retry-After`` header), 500, 503, ``"reset"``
                (the connection is reset before the request does anything) or ``"reset-mid"``
                (the request takes effect, then its answer is cut: headers and part of the body,
                or, for a followed log, the lines it has so far, then a reset).
            path: A regular expression searched in the request target (path and query), e.g.
                ``r"/pods/[^/]+/log\\?.*follow=true"``; ``""`` matches every request.
            method: ``GET``, ``POST``, ``DELETE``, ... or ``*``.
            times: How many matching requests it answers.
            retry_after: Seconds in the ``Retry-After`` header of a 429 (and 503).
        """
        if answer not in _ERRORS and answer not in _RESETS:
            raise ValueError(f"cannot inject {answer!r}: use {sorted(_ERRORS)} or {_RESETS}")
        fault = Fault(answer, method.upper(), re.compile(path), times, retry_after)
        with self._lock:
            self.faults.append(fault)
        return fault

    def get(self, plural: str, name: str, namespace: str = "default") -> dict | None:
        with self._lock:
            return self._objects[plural].get((_scope(plural, namespace), name))

    def list(self, plural: str, namespace: str | None = None) -> list[dict]:
        with self._lock:
            return [o for (ns, _), o in sorted(self._objects[plural].items())
                    if namespace is None or ns == _scope(plural, namespace)]

    def create(self, obj: dict) -> dict:
        """Create ``obj`` as a client's POST does (validation, a TrainJob's admission against
        its stored runtime, defaults); the stored object."""
        group, _, version = obj["apiVersion"].rpartition("/")
        kind = obj["kind"]
        plural = PLURALS[kind]
        namespace = "" if plural in CLUSTER_SCOPED else (
            obj.get("metadata") or {}).get("namespace", "default")
        return self._create(group, version, kind, plural, namespace, copy.deepcopy(obj))

    def add_job(self, name: str, namespace: str = "default", conditions=(("Created", "True"),),
                created: datetime | None = None, **manifest) -> dict:
        """Store a valid PyTorchJob (see :func:`pytorchjob`) as if it had been created."""
        job = self._store("pytorchjobs", pytorchjob(name, namespace, **manifest), created)
        self.set_conditions(name, conditions, namespace)
        return job

    def set_conditions(self, job: str, conditions, namespace: str = "default") -> None:
        """Set a PyTorchJob's ``status.conditions``: ``(type, status[, reason[, message]])``
        each."""
        status = _conditions(conditions, lambda kind, state: (
            f"PyTorchJob{kind}", f"PyTorchJob {job} is {kind.lower()}."), update_time=True)
        with self._lock:
            obj = self._objects["pytorchjobs"][(namespace, job)]
            obj["status"] = {"conditions": status}
            self._modified("pytorchjobs", obj)

    def add_trainjob(self, name: str, namespace: str = "default", conditions=(),
                     jobs_status: dict | None = None, created: datetime | None = None,
                     **manifest) -> dict:
        """Store a valid TrainJob (see :func:`trainjob`) as if it had been created, with
        ``status`` as :meth:`set_trainjob_status` sets it (none by default: just created)."""
        job = self._store("trainjobs", trainjob(name, namespace, **manifest), created)
        if conditions or jobs_status:
            self.set_trainjob_status(name, conditions, jobs_status, namespace)
        return job

    def set_trainjob_status(self, name: str, conditions=(), jobs_status: dict | None = None,
                            namespace: str = "default") -> dict:
        """Set a TrainJob's ``status`` as the Trainer controller would.

        Args:
            conditions: ``(type, status[, reason[, message]])`` each: ``Complete``, ``Failed``,
                ``Suspended`` (reasons and messages default to the controller's, see
                :data:`TRAINJOB_CONDITIONS`).
            jobs_status: Replicated job -> its Job counts, e.g. ``{"node": {"active": 1,
                "ready": 1}}`` (counts not given are 0); ``jobsStatus`` counts Jobs, not pods.
        """
        status = {}
        if conditions:
            status["conditions"] = _conditions(conditions, lambda kind, state: tuple(
                text.format(job=name) for text in TRAINJOB_CONDITIONS.get(
                    (kind, state), (kind, f"TrainJob {name} is {kind.lower()}"))))
        if jobs_status:
            status["jobsStatus"] = [
                dict({"name": rjob, "ready": 0, "succeeded": 0, "failed": 0, "active": 0,
                      "suspended": 0}, **counts) for rjob, counts in jobs_status.items()]
        with self._lock:
            job = self._objects["trainjobs"][(namespace, name)]
            job["status"] = status
            self._modified("trainjobs", job)
            return job

    def add_runtime(self, name: str = "torch-distributed", kind: str = "ClusterTrainingRuntime",
                    namespace: str = "default", spec: dict | None = None,
                    deprecated: bool = False) -> dict:
        """Store a (Cluster)TrainingRuntime: Trainer v2.3.0's ``torch-distributed`` (one
        replicated job ``node`` with one container ``node``) unless ``spec`` is given.

        Args:
            kind: ``ClusterTrainingRuntime`` (cluster-scoped) or ``TrainingRuntime`` (in
                ``namespace``).
            deprecated: Label it ``trainer.kubeflow.org/support: deprecated``.
        """
        from kctl.validate.trainjob import default_runtime_object

        runtime = copy.deepcopy(default_runtime_object())
        runtime["kind"] = kind
        runtime["metadata"]["name"] = name
        if kind != "ClusterTrainingRuntime":
            runtime["metadata"]["namespace"] = namespace
        if deprecated:
            runtime["metadata"]["labels"]["trainer.kubeflow.org/support"] = "deprecated"
        if spec is not None:
            runtime["spec"] = spec
        return self._store(PLURALS[kind], runtime)

    def install_trainer(self, version: str | None = "v2.3.0",
                        runtimes=("torch-distributed",)) -> None:
        """Kubeflow Trainer as its manifests install it: the CRDs, the version ConfigMap
        (:meth:`set_trainer_version`) and these ClusterTrainingRuntimes."""
        self.served.add("TrainJob")
        if version:
            self.set_trainer_version(version)
        for name in runtimes:
            self.add_runtime(name)

    def set_trainer_version(self, version: str) -> dict:
        """The ConfigMap ``kubeflow-system/kubeflow-trainer-public`` (Trainer >= v2.2) that says
        which Trainer is installed (key ``kubeflow_trainer_version``)."""
        return self._store("configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "kubeflow-trainer-public", "namespace": "kubeflow-system"},
            "data": {"kubeflow_trainer_version": version}})

    def add_node(self, name: str, gpus: int = 0, cpu: str = "32", memory: str = "256Gi",
                 labels: dict | None = None, ready: bool = True) -> dict:
        """Store a Node with ``status.allocatable`` (``nvidia.com/gpu`` when ``gpus``)."""
        allocatable = {"cpu": cpu, "memory": memory, "pods": "110"}
        if gpus:
            allocatable["nvidia.com/gpu"] = str(gpus)
        return self._store("nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": dict({"kubernetes.io/hostname": name},
                                                      **(labels or {}))},
            "status": {"allocatable": allocatable, "capacity": dict(allocatable),
                       "conditions": [{"type": "Ready", "status": str(ready),
                                       "reason": "KubeletReady" if ready else "KubeletNotReady"}]}})

    def add_storage_class(self, name: str, provisioner: str = "rancher.io/local-path",
                          default: bool = False,
                          access_modes=("ReadWriteOnce",)) -> dict:
        """Store a StorageClass; claims of this class are bound when it offers their access
        modes, else stay Pending with a ProvisioningFailed event.

        Kubernetes' StorageClass has no field that says which access modes its provisioner
        offers, so ``access_modes`` shows only in how claims fare.
        """
        annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
        self._access_modes[name] = tuple(access_modes)
        return self._store("storageclasses", {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name, "annotations": annotations},
            "provisioner": provisioner, "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate"})

    def add_local_queue(self, name: str, namespace: str = "default",
                        cluster_queue: str = "cluster-queue") -> dict:
        """Store a Kueue LocalQueue (``kueue.x-k8s.io/v1beta1``) pointing at ``cluster_queue``."""
        return self._store("localqueues", {
            "apiVersion": f"{KUEUE_GROUP}/v1beta1", "kind": "LocalQueue",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"clusterQueue": cluster_queue},
            "status": {"pendingWorkloads": 0, "reservingWorkloads": 0, "admittedWorkloads": 0,
                       "conditions": [{"type": "Active", "status": "True", "reason": "Ready",
                                       "message": "Can submit new workloads to localQueue",
                                       "lastTransitionTime": rfc3339()}]}})

    def add_namespace(self, name: str, pod_security: str | None = None,
                      labels: dict | None = None) -> None:
        """A namespace, with Pod Security ``enforce`` level ``pod_security`` (``privileged``,
        ``baseline`` or ``restricted``) if given."""
        labels = dict(labels or {})
        if pod_security:
            labels["pod-security.kubernetes.io/enforce"] = pod_security
        with self._lock:
            self.namespaces.add(name)
            self._namespace_labels[name] = labels

    def add_secret(self, name: str, namespace: str = "default",
                   type: str = "kubernetes.io/dockerconfigjson",
                   data: dict | None = None) -> dict:
        """Store a Secret (by default an image pull secret with no registries)."""
        if data is None and type == "kubernetes.io/dockerconfigjson":
            data = {".dockerconfigjson": '{"auths": {}}'}
        return self._store("secrets", {
            "apiVersion": "v1", "kind": "Secret", "type": type,
            "metadata": {"name": name, "namespace": namespace},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in (data or {}).items()}})

    def add_pod(self, job: str, replica: str, namespace: str = "default", phase: str = "Running",
                restarts: int = 0, logs: str = "", previous_logs: str | None = None,
                waiting: str | None = None, exit_code: int | None = None,
                last_exit: tuple[int, str] = (1, "Error"), node: str | None = "node-1",
                created: datetime | None = None, name: str | None = None,
                labels: dict | None = None) -> dict:
        """Store the pod the operator would make for ``replica``: ``master-0`` or ``worker-1``
        of a PyTorchJob (pod ``<job>-<replica>``, container ``pytorch``), or ``node-1`` of a
        TrainJob (pod ``<job>-node-0-1-<5 random characters>`` of Job ``<job>-node-0``, with the
        JobSet labels; container ``node``). The TrainJob's JobSet and Job are stored with the
        first pod.

        Args:
            phase: Pending (not scheduled, unless ``waiting`` says why its container waits),
                Running, Succeeded or Failed.
            restarts: The container's restartCount; above 0 there is a previous container,
                which logged ``previous_logs`` and ended with ``last_exit`` (exit code, reason).
            logs: What the current container logged so far. Its log stays open (a follower
                waits for more) while the container runs.
            waiting: A waiting reason (ContainerCreating, CrashLoopBackOff, ImagePullBackOff):
                no current container.
            exit_code: For Succeeded/Failed, the container's exit code (0 / 1 by default).
            name: A TrainJob pod's name as its Job chose it (default: 5 random characters).
            labels: More labels (the pod template's), besides the controllers'.
        """
        rtype, index = replica.rsplit("-", 1)
        if rtype == "node":
            meta, spec = self._trainjob_pod(job, int(index), namespace)
            meta["name"] = name or meta["name"]
        else:
            meta, spec = self._pytorchjob_pod(job, rtype, index, namespace)
        meta["labels"] = dict(labels or {}, **meta["labels"])
        container = spec["containers"][0]["name"]
        status = {"phase": phase, "conditions": []}
        if phase == "Pending" and not waiting:
            status["conditions"] = [{"type": "PodScheduled", "status": "False",
                                     "reason": "Unschedulable",
                                     "message": "0/3 nodes are available: 3 Insufficient "
                                                "nvidia.com/gpu."}]
            node = None
        else:
            status["containerStatuses"] = [self._container_status(
                container, phase, restarts, logs, previous_logs, waiting, exit_code, last_exit)]
        spec["nodeName"] = node
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
               "status": status}
        return self._store("pods", pod, created)

    def _pytorchjob_pod(self, job: str, rtype: str, index: str, namespace: str):
        labels = {JOB_LABEL: job, "training.kubeflow.org/operator-name": "pytorchjob-controller",
                  "training.kubeflow.org/replica-type": rtype,
                  "training.kubeflow.org/replica-index": index}
        if rtype == "master":
            labels["training.kubeflow.org/job-role"] = "master"
        meta = {"name": f"{job}-{rtype}-{index}", "namespace": namespace, "labels": labels}
        owner = self.get("pytorchjobs", job, namespace)
        if owner:
            meta["ownerReferences"] = [_owner(owner)]
        return meta, {"containers": [{"name": "pytorch", "image": "registry.example.com/t:1"}]}

    def _trainjob_pod(self, job: str, index: int, namespace: str):
        child = f"{job}-node-0"
        jobset_labels = {JOBSET_LABEL: job, REPLICATED_JOB_LABEL: "node",
                         "jobset.sigs.k8s.io/replicatedjob-replicas": "1",
                         "jobset.sigs.k8s.io/job-index": "0",
                         "jobset.sigs.k8s.io/job-global-index": "0",
                         "jobset.sigs.k8s.io/restart-attempt": "0"}
        with self._lock:
            batch_job = self.get("jobs", child, namespace) or self._trainjob_children(
                job, child, namespace, jobset_labels)
        labels = dict(jobset_labels, **{COMPLETION_INDEX_LABEL: str(index),
                                        "batch.kubernetes.io/job-name": child,
                                        "job-name": child})
        suffix = "".join(self._random.choice(_SUFFIX) for _ in range(5))
        meta = {"name": f"{child}-{index}-{suffix}", "namespace": namespace, "labels": labels,
                "annotations": {COMPLETION_INDEX_LABEL: str(index)},
                "ownerReferences": [_owner(batch_job)]}
        spec = {"hostname": f"{child}-{index}", "subdomain": job, "restartPolicy": "OnFailure",
                "containers": [{"name": "node", "image": "registry.example.com/t:1",
                                "ports": [{"containerPort": 29500}]}]}
        return meta, spec

    def _trainjob_children(self, job: str, child: str, namespace: str, labels: dict) -> dict:
        """The JobSet ``<job>`` (owned by the TrainJob) and its Job ``<job>-node-0``, as the
        Trainer and JobSet controllers create them."""
        owner = self.get("trainjobs", job, namespace)
        nodes = ((owner or {}).get("spec", {}).get("trainer") or {}).get("numNodes", 1)
        jobset = {"apiVersion": f"{JOBSET_GROUP}/v1alpha2", "kind": "JobSet",
                  "metadata": {"name": job, "namespace": namespace,
                               "ownerReferences": [_owner(owner)] if owner else []},
                  "spec": {"replicatedJobs": [{"name": "node", "replicas": 1}]}}
        jobset = self._store("jobsets", jobset)
        return self._store("jobs", {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": child, "namespace": namespace, "labels": labels,
                         "ownerReferences": [_owner(jobset)]},
            "spec": {"completions": nodes, "parallelism": nodes, "completionMode": "Indexed",
                     "backoffLimit": 6, "template": {"metadata": {"labels": labels}, "spec": {
                         "restartPolicy": "OnFailure",
                         "containers": [{"name": "node", "image": "registry.example.com/t:1"}]}}}})

    def _container_status(self, name, phase, restarts, logs, previous_logs, waiting, exit_code,
                          last_exit) -> dict:
        status = {"name": name, "restartCount": restarts, "ready": phase == "Running",
                  "image": "registry.example.com/t:1", "lastState": {},
                  "imageID": "" if waiting else _IMAGE_ID}
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
                "exitCode": code, "reason": exit_reason(code),
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
                  type: str = "Warning", kind: str = "Pod", count: int = 1,
                  source: str = "default-scheduler") -> dict:
        """Store an Event about object ``involved`` of ``kind`` (its uid is filled in when it
        exists)."""
        target = self.get(PLURALS[kind], involved, namespace)
        now = rfc3339()
        event = {"apiVersion": "v1", "kind": "Event",
                 "metadata": {"name": f"{involved}.{uuid.uuid4().hex[:16]}",
                              "namespace": namespace},
                 "involvedObject": {"kind": kind, "name": involved, "namespace": namespace,
                                    "uid": target["metadata"]["uid"] if target else ""},
                 "reason": reason, "message": message, "type": type, "count": count,
                 "firstTimestamp": now, "lastTimestamp": now,
                 "source": {"component": source}}
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
            self._modified("pods", obj)

    def replace_pod(self, job: str, replica: str, namespace: str = "default", **pod) -> dict:
        """The operator re-creates a replica's pod (``master-0``, ``node-1``: as
        :meth:`add_pod`): the old one (and its log stream) ends; a TrainJob's new pod gets a new
        name."""
        old = self.replica_pod(job, replica, namespace)
        if old:
            self._delete("pods", namespace, old["metadata"]["name"], "Background")
        return self.add_pod(job, replica, namespace, **pod)

    def delete_pod(self, pod: str, namespace: str = "default", stopping: bool = False) -> None:
        """The pod is deleted (``kubectl delete pod``, or by its Job): with ``stopping`` it only
        gets its ``deletionTimestamp`` (listed as Terminating while the kubelet stops its
        container; its log streams go on); without, it is gone and its log streams end."""
        with self._lock:
            if not stopping:
                self._delete("pods", namespace, pod, "Background")
                return
            obj = self.get("pods", pod, namespace)
            obj["metadata"].update(deletionTimestamp=rfc3339(), deletionGracePeriodSeconds=30)
            self._modified("pods", obj)

    def replica_pod(self, job: str, replica: str, namespace: str = "default") -> dict | None:
        """The current pod of a job's replica (``master-0``, ``worker-1``, ``node-1``)."""
        rtype, index = replica.rsplit("-", 1)
        if rtype != "node":
            return self.get("pods", f"{job}-{replica}", namespace)
        pods = [p for p in self.list("pods", namespace)
                if p["metadata"]["labels"].get(JOBSET_LABEL) == job
                and p["metadata"]["labels"].get(COMPLETION_INDEX_LABEL) == index]
        return max(pods, key=lambda p: int(p["metadata"]["resourceVersion"]), default=None)

    def finish_pod(self, pod: str, phase: str = "Succeeded", exit_code: int = 0,
                   namespace: str = "default") -> None:
        """The pod's container exits with ``exit_code`` and the pod ends in ``phase``."""
        with self._lock:
            obj = self.get("pods", pod, namespace)
            container_id = self._current_id(pod, namespace)
            obj["status"]["phase"] = phase
            obj["status"]["containerStatuses"][0]["state"] = {"terminated": {
                "exitCode": exit_code, "reason": exit_reason(exit_code),
                "containerID": container_id, "finishedAt": rfc3339()}}
            self._logs[container_id].close()
            self._modified("pods", obj)

    def _current_id(self, pod: str, namespace: str) -> str:
        state = self.get("pods", pod, namespace)["status"]["containerStatuses"][0]["state"]
        return (state.get("running") or state.get("terminated"))["containerID"]

    # -- the store --------------------------------------------------------------------------

    def _store(self, plural: str, obj: dict, created: datetime | None = None) -> dict:
        obj = json.loads(json.dumps(obj))
        meta = obj.setdefault("metadata", {})
        with self._lock:
            if plural in CLUSTER_SCOPED:
                meta.pop("namespace", None)
            else:
                self.namespaces.add(meta["namespace"])
            self.served.update(crd for crd, groups in CRDS.items() if GROUPS[plural] in groups)
            meta.update(uid=str(uuid.uuid4()), resourceVersion=str(next(self._version)),
                        creationTimestamp=rfc3339(created), generation=1)
            key = (meta.get("namespace", ""), meta["name"])
            change = "MODIFIED" if key in self._objects[plural] else "ADDED"
            self._objects[plural][key] = obj
            self._record(change, plural, obj)
        return obj

    def _modified(self, plural: str, obj: dict) -> None:
        """``obj`` (stored) changed in place: a new resourceVersion, and watchers hear of it."""
        with self._lock:
            obj["metadata"]["resourceVersion"] = str(next(self._version))
            self._record("MODIFIED", plural, obj)

    def _record(self, change: str, plural: str, obj: dict) -> None:
        with self._lock:
            self._changes.append((int(obj["metadata"]["resourceVersion"]), change, plural,
                                  json.loads(json.dumps(obj))))
            self._changed.notify_all()

    def _delete(self, plural: str, namespace: str, name: str, propagation: str) -> dict:
        with self._lock:
            obj = self._objects[plural].pop((_scope(plural, namespace), name))
            obj["metadata"]["resourceVersion"] = str(next(self._version))
            self._record("DELETED", plural, obj)
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
        req.record = record = Request(method, url.path, query)
        self.requests.append(record)
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length) if length else b""  # read even when a fault answers
        fault = self._take_fault(method, req.path)
        if fault is not None:
            record.injected = True
            if fault.answer == "reset":
                req.reset()
                return
            if fault.answer in _ERRORS:
                reason, message = _ERRORS[fault.answer]
                headers = {"Retry-After": str(fault.retry_after)} if fault.answer != 500 else {}
                details = {"retryAfterSeconds": fault.retry_after} if headers else {}
                req.send_json(fault.answer, _ApiError(fault.answer, reason, message,
                                                      details).status, headers)
                return
            req.cut = True  # "reset-mid": the request takes effect, its answer is cut
        try:
            if req.headers.get("Authorization") != f"Bearer {self.token}":
                raise _ApiError(401, "Unauthorized", "Unauthorized")
            body = json.loads(raw) if raw else None
            path = url.path.rstrip("/") or "/"  # /apis/ is /apis
            reply = self._discovery(method, path)
            if reply is None:
                reply = self._resource(req, method, path, query, body)
            if reply is not None:
                req.send_json(*reply)
        except _ApiError as err:
            req.send_json(err.code, err.status)

    def _take_fault(self, method: str, target: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, target):
                    fault.times -= 1
                    return fault
        return None

    def _served_group(self, group: str) -> bool:
        crds = [crd for crd, groups in CRDS.items() if group in groups]
        return not crds or any(crd in self.served for crd in crds)

    def _discovery(self, method: str, path: str):
        if method != "GET":
            return None
        if path == "/version":
            major, minor = self.version.lstrip("v").split(".")[:2]
            return 200, {"major": major, "minor": minor, "gitVersion": self.version,
                         "gitCommit": "0" * 40, "gitTreeState": "clean",
                         "buildDate": "2024-01-01T00:00:00Z", "goVersion": "go1.22.0",
                         "compiler": "gc", "platform": "linux/amd64"}
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": self.url[len("http://"):]}]}
        versions = {g: v for (g, v, _) in TYPES if g and self._served_group(g)}
        if path == "/apis":
            return 200, {"kind": "APIGroupList", "apiVersion": "v1",
                         "groups": [_api_group(g, v) for g, v in sorted(versions.items())]}
        match = re.fullmatch(r"/api/v1|/apis/(?P<group>[^/]+)(?:/(?P<version>[^/]+))?", path)
        if not match:
            return None
        group, version = match["group"] or "", match["version"] or (
            "v1" if not match["group"] else None)
        if group and versions.get(group) is None:
            raise _not_found_type()
        if version is None:
            return 200, dict(_api_group(group, versions[group]), kind="APIGroup",
                             apiVersion="v1")
        if group and version != versions[group]:
            raise _not_found_type()
        resources = [{"name": p, "singularName": k.lower(), "kind": k,
                      "namespaced": p not in CLUSTER_SCOPED,
                      "verbs": ["create"] if k == "SelfSubjectAccessReview" else
                      ["create", "delete", "get", "list", "patch", "update", "watch"]}
                     for (g, _, p), k in TYPES.items() if g == group]
        return 200, {"kind": "APIResourceList", "apiVersion": "v1",
                     "groupVersion": f"{group}/{version}" if group else version,
                     "resources": resources}

    def _resource(self, req, method: str, path: str, query: dict, body):
        match = _PATH.match(path)
        if not match:
            raise _not_found_type()
        group = "" if match["core"] else match["group"]
        version = match["core"] or match["version"]
        ns, plural, name, sub = match["ns"], match["plural"], match["name"], match["sub"]
        kind = TYPES.get((group, version, plural))
        cluster = plural in CLUSTER_SCOPED
        if kind is None or not self._served_group(group) or (cluster and ns) or (
                sub and (plural, sub) != ("pods", "log")):
            raise _not_found_type()
        verb = {"GET": "get" if name else ("watch" if query.get("watch") == "true" else "list"),
                "POST": "create", "DELETE": "delete" if name else "deletecollection",
                "PUT": "update", "PATCH": "patch"}[method]
        resource = f"{plural}/{sub}" if sub else plural
        if kind == "SelfSubjectAccessReview" and verb == "create":
            return 201, self._access_review(body)
        self._authorize(verb, resource, group, ns, name)
        if verb == "get" and sub:
            self._pod_log(req, ns, name, query)
            return None
        if kind == "Namespace" and verb in ("get", "list"):
            return 200, self._namespace_reply(name)
        if verb == "get":
            return 200, self._existing(group, plural, ns, name)
        if verb == "list":
            return 200, self._list(group, version, kind, plural, ns, query)
        if verb == "watch":
            self._watch(req, plural, ns, query)
            return None
        if verb == "create" and (ns or cluster) and not name:
            return 201, self._create(group, version, kind, plural, ns or "", body)
        if verb == "delete" and (ns or cluster):
            return 200, self._delete_request(group, plural, ns or "", name, body or {}, query)
        raise _ApiError(405, "MethodNotAllowed",
                        f"the fake API server does not support {verb} on {resource}")

    def _authorize(self, verb, resource, group, ns, name) -> None:
        if not self._forbids(verb, resource):
            return
        plural = resource.split("/")[0]
        what = f"{plural}.{group}" if group else plural
        subject = f'{what} "{name}"' if name else what
        scope = f'in the namespace "{ns}"' if ns else "at the cluster scope"
        raise _ApiError(403, "Forbidden", f'{subject} is forbidden: User "{self.user}" cannot '
                                          f'{verb} resource "{resource}" in API group "{group}" '
                                          f"{scope}",
                        {"name": name or "", "group": group, "kind": plural})

    def _forbids(self, verb: str, resource: str) -> bool:
        return (verb, resource) in self.forbidden or ("*", resource) in self.forbidden

    def _access_review(self, body) -> dict:
        """A SelfSubjectAccessReview answered from :meth:`forbid` (everything else is allowed)."""
        attributes = ((body or {}).get("spec") or {}).get("resourceAttributes") or {}
        resource = attributes.get("resource", "")
        if attributes.get("subresource"):
            resource += f"/{attributes['subresource']}"
        allowed = not self._forbids(attributes.get("verb", ""), resource)
        review = copy.deepcopy(body)
        review.setdefault("metadata", {})["creationTimestamp"] = None
        review["status"] = {"allowed": allowed, "reason": (
            'RBAC: allowed by ClusterRoleBinding "fake" of ClusterRole "fake"' if allowed else "")}
        return review

    def _namespace_reply(self, name: str | None) -> dict:
        def namespace(ns):
            labels = dict({"kubernetes.io/metadata.name": ns}, **self._namespace_labels.get(ns, {}))
            return {"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "labels": labels}, "status": {"phase": "Active"}}

        with self._lock:
            names = sorted(self.namespaces)
        if name is None:
            return {"apiVersion": "v1", "kind": "NamespaceList",
                    "metadata": {"resourceVersion": str(next(self._version))},
                    "items": [namespace(ns) for ns in names]}
        if name not in names:
            raise _ApiError(404, "NotFound", f'namespaces "{name}" not found',
                            {"name": name, "kind": "namespaces"})
        return namespace(name)

    def _existing(self, group: str, plural: str, ns: str, name: str) -> dict:
        obj = self.get(plural, name, ns)
        if obj is None:
            what = f"{plural}.{group}" if group else plural
            raise _ApiError(404, "NotFound", f'{what} "{name}" not found',
                            {"name": name, "group": group, "kind": plural})
        return obj

    def _list(self, group, version, kind, plural, ns, query) -> dict:
        selected = _selected(query)
        items = [o for o in self.list(plural, ns) if selected(o)]
        return {"apiVersion": f"{group}/{version}" if group else version, "kind": f"{kind}List",
                "metadata": {"resourceVersion": str(next(self._version))}, "items": items}

    def _watch(self, req, plural: str, ns: str | None, query: dict) -> None:
        """A watch: ``ADDED`` for what exists (without ``resourceVersion``, or with ``0``), then
        every change after it, as JSON lines, until ``timeoutSeconds`` or the server stops."""
        selected = _selected(query)
        deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
        since = int(query.get("resourceVersion") or 0)
        with self._lock:
            start = next(self._version) if since == 0 else since
            backlog = [("ADDED", o) for o in self.list(plural, ns) if selected(o)] \
                if since == 0 else []
            position = next((i for i, c in enumerate(self._changes) if c[0] > start),
                            len(self._changes))

        def wanted(change) -> bool:
            rv, _, kind, obj = change
            return (rv > start and kind == plural and selected(obj)
                    and (ns is None or obj["metadata"].get("namespace") == ns))

        def events(sent: int):
            """The next events after change number ``sent``: (events, new position, done)."""
            with self._lock:
                while sent == len(self._changes) and not self._stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return [], sent, True
                    self._changed.wait(min(left, 0.2))
                new = [(c[1], c[3]) for c in self._changes[sent:] if wanted(c)]
                return new, len(self._changes), self._stopping or time.monotonic() > deadline

        req.send_events(backlog, events, position)

    def _create(self, group, version, kind, plural, ns, body) -> dict:
        from kctl.validate.manifest import validate_object

        api_version = f"{group}/{version}" if group else version
        if not isinstance(body, dict) or body.get("kind") != kind:
            raise _ApiError(400, "BadRequest", f"expected a {kind} in the request body")
        if body.get("apiVersion") != api_version:
            raise _ApiError(400, "BadRequest", f"the API version in the data "
                                               f"({body.get('apiVersion')}) does not match the "
                                               f"expected API version ({api_version})")
        meta = body.setdefault("metadata", {})
        if plural not in CLUSTER_SCOPED:
            if meta.get("namespace", ns) != ns:
                raise _ApiError(400, "BadRequest", "the namespace of the provided object does "
                                                   "not match the namespace sent on the request")
            meta["namespace"] = ns
            if ns not in self.namespaces:
                raise _ApiError(404, "NotFound", f'namespaces "{ns}" not found',
                                {"name": ns, "kind": "namespaces"})
        name = meta.get("name")
        what = f"{kind}.{group}" if group else kind
        if kind == "TrainJob":
            body = self._admit_trainjob(body, what, name, plural)
        else:
            problems = validate_object(body) if kind != "Event" else []
            if problems:
                raise _invalid(what, name, group, plural, problems)
        with self._lock:
            if self.get(plural, name, ns) is not None:
                raise _ApiError(409, "AlreadyExists",
                                f'{plural}.{group} "{name}" already exists' if group
                                else f'{plural} "{name}" already exists',
                                {"name": name, "group": group, "kind": plural})
            stored = self._store(plural, body)
            if kind == "PersistentVolumeClaim":
                self._provision(stored)
            return stored

    def _admit_trainjob(self, body: dict, what: str, name, plural: str) -> dict:
        """A TrainJob through the API server (422) and the Trainer's webhooks (403): defaulted,
        validated against the stored runtime, its runtime patches stamped."""
        from kctl.validate.trainjob import (GROUP as RUNTIME_GROUP, RUNTIME_KINDS, api_problems,
                                            runtime_ref, webhook_problems)

        problems = api_problems(body)
        if problems:
            raise _invalid(what, name, TRAINER_GROUP, plural, problems)
        body = _defaulted(body)
        kind, group, runtime_name = runtime_ref(body)
        if kind not in RUNTIME_KINDS or group != RUNTIME_GROUP:
            raise _denied(TRAINJOB_WEBHOOK, [f"unsupported runtime: {kind}.{group}"])
        runtime = self.get(PLURALS[kind], runtime_name, body["metadata"]["namespace"])
        if runtime is None:
            lower = kind[0].lower() + kind[1:]
            # (sic: the Trainer names the path with a capital R for a ClusterTrainingRuntime)
            where = "spec.RuntimeRef" if kind == "ClusterTrainingRuntime" else "spec.runtimeRef"
            raise _denied(TRAINJOB_WEBHOOK, [
                f"{where}: Invalid value: {_go_json(body['spec']['runtimeRef'])}: "
                f'{kind}.{group} "{runtime_name}" not found: specified {lower} must be created '
                "before the TrainJob is created"])
        problems = webhook_problems(body, runtime)
        if problems:
            raise _denied(TRAINJOB_WEBHOOK, [str(p) for p in problems])
        for patch in body["spec"].get("runtimePatches") or []:
            patch.setdefault("time", rfc3339())
        return body

    def _provision(self, claim: dict) -> None:
        """Bind a claim whose StorageClass (named, or the default) offers its access modes; a
        claim of a class that cannot serve it stays Pending with a ProvisioningFailed event."""
        classes = {c["metadata"]["name"]: c for c in self.list("storageclasses")}
        spec = claim["spec"]
        name = spec.get("storageClassName")
        if name is None:
            name = next((n for n, c in classes.items() if c["metadata"].get("annotations", {}).get(
                "storageclass.kubernetes.io/is-default-class") == "true"), None)
            if name is None:
                return  # no class and no default: the claim waits for a matching volume
            spec["storageClassName"] = name
        wanted = spec.get("accessModes") or []
        if name not in classes:
            reason = f'storageclass.storage.k8s.io "{name}" not found'
        elif not set(wanted) <= set(self._access_modes[name]):
            missing = sorted(set(wanted) - set(self._access_modes[name]))
            reason = (f'failed to provision volume with StorageClass "{name}": '
                      f"{classes[name]['provisioner']} does not support access mode "
                      f"{', '.join(missing)}")
        else:
            claim["status"] = {"phase": "Bound", "accessModes": wanted,
                               "capacity": dict(spec.get("resources", {}).get("requests", {}))}
            return
        claim["status"] = {"phase": "Pending"}
        self.add_event(claim["metadata"]["name"], "ProvisioningFailed", reason,
                       claim["metadata"]["namespace"], kind="PersistentVolumeClaim",
                       source="persistentvolume-controller")

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
    record: Request | None = None  # what handle() records about this request
    cut = False  # an injected "reset-mid": answer partly, then reset the connection

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

    def reset(self) -> None:
        """Reset the TCP connection (RST, not FIN), as a dropped connection looks."""
        self.record.status = "reset"
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def send_json(self, code: int, obj, headers: dict | None = None) -> None:
        data = json.dumps(obj).encode()
        self.record.status = code
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.cut:
            self.wfile.write(data[:len(data) // 2])
            self.reset()
            return
        self.wfile.write(data)

    def send_log(self, log: _Log, follow: bool, stamps: bool, since: float | None,
                 stopping) -> None:
        def render(lines):
            cutoff = time.time() - since if since is not None else None
            return "".join(f"{stamp} {text}\n" if stamps else f"{text}\n"
                           for when, stamp, text in lines if cutoff is None or when >= cutoff)

        self.record.status = 200
        if not follow:
            with log.cond:
                data = render(log.lines).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.cut:
                self.wfile.write(data[:len(data) // 2])
                self.reset()
                return
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
                           and not stopping() and not self.cut):
                        log.cond.wait(0.2)
                    new, sent = log.lines[sent:], len(log.lines)
                    done = log.closed or log.drops != drops or stopping()
                data = render(new).encode()
                if data:
                    self.wfile.write(_chunk(data))
                    self.wfile.flush()
                if self.cut:
                    self.reset()  # mid-stream: what the log had so far, then no final chunk
                    return
                if done:
                    break
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def send_events(self, backlog: list, events, position: int) -> None:
        """A watch stream: the ``backlog`` events, then what ``events(position)`` yields, one
        JSON line each, chunked; an injected "reset-mid" cuts it after the backlog."""
        self.record.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            batch, done = backlog, False
            while True:
                data = "".join(json.dumps({"type": kind, "object": obj}) + "\n"
                               for kind, obj in batch).encode()
                if data:
                    self.wfile.write(_chunk(data))
                    self.wfile.flush()
                if self.cut:
                    self.reset()
                    return
                if done:
                    break
                batch, position, done = events(position)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _scope(plural: str, namespace: str | None) -> str:
    """The store's namespace key: ``""`` for cluster-scoped resources."""
    return "" if plural in CLUSTER_SCOPED else namespace


def _owner(obj: dict) -> dict:
    """A controller ownerReference to ``obj``."""
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
            "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def _conditions(entries, default, update_time: bool = False) -> list[dict]:
    """Conditions from ``(type, status[, reason[, message]])`` entries; ``default(type,
    status)`` gives the reason and message an entry leaves out."""
    now = rfc3339()
    conditions = []
    for entry in entries:
        reason, message = default(entry[0], entry[1])
        condition = {"type": entry[0], "status": entry[1],
                     "reason": entry[2] if len(entry) > 2 else reason,
                     "message": entry[3] if len(entry) > 3 else message,
                     "lastTransitionTime": now}
        if update_time:
            condition["lastUpdateTime"] = now
        conditions.append(condition)
    return conditions


def _go_json(ref: dict) -> str:
    """A runtimeRef as Go's ``json.Marshal`` writes it in a field error (struct field order)."""
    return json.dumps({k: ref[k] for k in ("name", "apiGroup", "kind") if k in ref},
                      separators=(",", ":"))


def _api_group(group: str, version: str) -> dict:
    gv = {"groupVersion": f"{group}/{version}", "version": version}
    return {"name": group, "versions": [gv], "preferredVersion": gv}


def _defaulted(obj: dict) -> dict:
    """``obj`` with its CRD schema's defaults filled in where a parent is present, as the API
    server stores it (runtimeRef kind and apiGroup, suspend, managedBy, ...)."""
    from kctl.validate.schema import along, crd_schema

    obj = copy.deepcopy(obj)
    for schema, value, _ in along(crd_schema(obj["kind"]), obj):
        if isinstance(value, dict):
            for key, child in schema.get("properties", {}).items():
                if key not in value and "default" in child:
                    value[key] = copy.deepcopy(child["default"])
    return obj


def _selected(query: dict):
    """A test: does an object match the query's ``labelSelector`` and ``fieldSelector``?"""
    labels = _selector(query.get("labelSelector", ""))
    fields = _selector(query.get("fieldSelector", ""))
    return lambda obj: (all(_matches((obj["metadata"].get("labels") or {}).get(k), op, v)
                            for k, op, v in labels)
                        and all(_matches(_field(obj, k), op, v) for k, op, v in fields))


def _selector(text: str) -> list[tuple[str, str, object]]:
    """``a=b,c!=d,e,!f,g in (h,i),j notin (k)`` as ``(key, op, value)`` terms."""
    terms = []
    for term in filter(None, (t.strip() for t in re.split(r",(?![^(]*\))", text))):
        match = re.fullmatch(r"(\S+)\s+(in|notin)\s+\(([^)]*)\)", term)
        if match:
            terms.append((match[1], match[2], {v.strip() for v in match[3].split(",")}))
            continue
        match = re.fullmatch(r"(!?)([^=!\s(]+)\s*(?:(==|=|!=)\s*([^=!(]*))?", term)
        if not match:
            raise _ApiError(400, "BadRequest", f"the fake API server cannot parse {term!r}")
        neg, key, op, value = match.groups()
        terms.append((key, "!exists" if neg else (op or "exists"), value or ""))
    return terms


def _matches(actual, op: str, value) -> bool:
    if op in ("=", "=="):
        return actual == value
    if op == "!=":
        return actual != value
    if op == "in":
        return actual in value
    if op == "notin":
        return actual not in value
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
