"""Pods on this machine: the kubelet's part of the operator emulators and what they share.

:class:`PodRunner` is the base of :class:`~tests.support.operator_emulator.OperatorEmulator`
(PyTorchJobs) and :class:`~tests.support.trainjob_emulator.TrainJobEmulator` (TrainJobs). The
operator subclass decides which :class:`Pod` objects exist, with which container spec and
restart policy, and what their exits mean for the job; this class does for each pod what the
kubelet and the API server do:

- volumes: a ConfigMap volume is materialised with its ``items`` (``key`` -> ``path``) layout
  (keys and paths checked as the API server does), a PersistentVolumeClaim is one folder shared by
  every pod (``pvc_root/<claimName>``), an ``emptyDir`` is a folder that lives as long as the pod
  (it survives container restarts, not pod re-creation) made writable by all (mode 0777, as the
  kubelet makes it);
- the container's environment: its ``env`` in order (``valueFrom`` resolved: ``fieldRef`` to the
  pod's name, namespace, IP, labels and annotations, ``configMapKeyRef``), ``$(VAR)`` references in
  ``env``, ``command`` and ``args`` expanded as Kubernetes does (each entry sees those before it; a
  later entry of the same name wins), with the values the operator subclass has to replace for
  the local network (:attr:`Pod.env_overrides`) unless the runtime gives each pod a network of
  its own (:attr:`ContainerRuntime.pod_network <tests.support.containers.ContainerRuntime>`);
- the ``securityContext`` (the container's over the pod's) and the CPU and memory limits, in the
  spec the runtime gets (the process runtime does not apply them; the podman runtime does);
- GPUs: the device plugin gives each pod its own ``nvidia.com/gpu`` devices; here each pod gets
  its share of this machine's GPUs (the runtime passes them on), and a job needing more is
  refused;
- the kubelet's CrashLoopBackOff between container restarts, and stopping, killing, pausing a
  container, its logs (current and previous container).

How a container runs is :mod:`tests.support.containers`' business: a :class:`ContainerSpec` goes
to a :class:`~tests.support.containers.ContainerRuntime`, by default the local-process one.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.support.containers import (Container, ContainerRuntime, ContainerSpec, Mount,
                                      ProcessRuntime, Security)

GPU_RESOURCE = "nvidia.com/gpu"
#: What a local process is told instead of a Service or pod DNS name: every pod runs here.
LOCAL_ADDR = "127.0.0.1"
#: Kubernetes' rule for ConfigMap keys (``IsConfigMapKey``) and the ConfigMap size limit.
_CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
CONFIGMAP_MAX_BYTES = 1024 * 1024
_ENV_REF = re.compile(r"\$\$|\$\(([-._a-zA-Z0-9]+)\)")
#: ``metadata.labels['key']`` / ``metadata.annotations['key']`` in a fieldRef.
_META_FIELD = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")
#: A Kubernetes quantity: a number, then a binary or decimal suffix or an exponent.
_QUANTITY = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[mkMGTPE]|[eE][+-]?\d+)?")
_SUFFIXES = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
             **{s: 1024 ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))}}


class EmulatorError(Exception):
    """The manifest cannot run here (or would not start on a cluster either); the message says
    why."""


class EmulatorTimeout(EmulatorError):
    """A wait ran out of time; every process of the job has been killed."""


def load_manifest(text: str) -> list[dict]:
    """The objects of a multi-document YAML manifest, empty documents skipped."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def expand_refs(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined names are replaced, ``$$`` is ``$``, the rest
    stays as it is."""
    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))
    return _ENV_REF.sub(replace, text)


def quantity(value) -> float:
    """A Kubernetes quantity (``2``, ``"500m"``, ``"8Gi"``, ``"1e3"``) as a number: cores for
    CPU, bytes for memory."""
    match = _QUANTITY.fullmatch(str(value).strip())
    if not match:
        raise EmulatorError(f"quantity {value!r} is not a Kubernetes quantity")
    number, suffix = float(match[1]), match[2] or ""
    if suffix[:1] in ("e", "E"):
        return number * 10 ** int(suffix[1:])
    return number * _SUFFIXES[suffix]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def host_gpu_count() -> int:
    """GPUs on this machine according to ``nvidia-smi -L`` (0 without it)."""
    if not shutil.which("nvidia-smi"):
        return 0
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


def gpu_count(container: dict) -> int:
    """``nvidia.com/gpu`` of a container spec: its limit, else its request, else 0."""
    resources = container.get("resources") or {}
    return int((resources.get("limits") or {}).get(
        GPU_RESOURCE, (resources.get("requests") or {}).get(GPU_RESOURCE, 0)))


@dataclass
class Pod:
    """One pod and its container's history.

    Attributes:
        name: The pod's name.
        index: Its index within its replica type (PyTorchJob) or its completion index (TrainJob).
        role: ``Master``/``Worker`` (PyTorchJob) or ``node`` (TrainJob).
        restart_policy: The pod's ``restartPolicy`` (or the PyTorchJob replica's ``ExitCode``).
        template: The pod template (``metadata``, ``spec``) it was made from.
        container: The container spec it runs, with the variables its operator adds.
        env_overrides: Positions in ``container["env"]`` whose value the local network needs
            replaced (a master's address and port), and the replacement (not applied when the
            runtime gives each pod its own network).
        hostname: The pod's hostname (``HOSTNAME``); its name when empty.
        dns_names: The names other pods reach this one by on a cluster (a Service, a
            ``<hostname>.<subdomain>``).
        labels, annotations: The pod's metadata (``fieldRef`` reads them).
        phase: ``Pending`` (not started yet), ``Running`` (also while waiting to restart or
            being deleted), ``Succeeded`` or ``Failed``.
        restarts: The kubelet's ``restartCount``, summed over the pod's incarnations.
        recreations: Times the operator deleted and created the pod again under the same name
            (PyTorchJob).
        exit_codes: Every container exit in order, as Kubernetes reports it (128+N for signal N).
        deleting: Deleted (``kubectl delete pod``, or by a TrainJob's failed Job): stopping,
            then gone from the API once stopped (a PyTorchJob's is created again).
        process: The current container (see :mod:`tests.support.containers`); ``None`` before it
            is created and once its exit has been seen.
        starts: The log file's size at each container start (where each container's output
            begins).
    """

    name: str
    index: int
    role: str
    restart_policy: str
    template: dict
    container: dict
    log_path: Path
    env_overrides: dict[int, str] = field(default_factory=dict)
    hostname: str = ""
    dns_names: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    phase: str = "Pending"
    restarts: int = 0
    recreations: int = 0
    exit_codes: list[int] = field(default_factory=list)
    gpus: list[int] = field(default_factory=list)
    process: Container | None = None
    restart_at: float | None = None
    starts: list[int] = field(default_factory=list)
    pod_dir: Path | None = None  # this incarnation's folder (emptyDirs, ConfigMaps)
    mounts: list[Mount] = field(default_factory=list)
    deleting: bool = False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    @property
    def started(self) -> bool:
        """Whether the current container was started (not only created by ``prepare``)."""
        return self.process is not None and self.process.started


@dataclass
class Condition:
    """A job condition: ``type``, ``reason``, ``message``."""

    type: str
    reason: str
    message: str


class PodRunner:
    """The kubelet for an operator emulator's pods, and what every emulator offers tests.

    Subclasses set :attr:`kind` (the job's kind) and :attr:`SUCCEEDED` (its success condition),
    fill :attr:`pods` and implement :meth:`start`, :meth:`poll`, :meth:`delete_pod` and
    :attr:`phase`.

    Args:
        objects: The manifest's objects: exactly one job of :attr:`kind` (:attr:`job`), the
            ConfigMaps of its namespace, PVCs, ...
        workspace: A folder of the emulator's own: logs (``logs/<pod>.log``), pod folders.
        pvc_root: Where PersistentVolumeClaims live, one folder each. Defaults to
            ``workspace/pvc``. A claim the manifest does not create must already exist there (a pod
            using a missing claim would stay Pending on a cluster).
        runtime: How containers run. Defaults to local processes of the trainer image's layout.
        restart_delay: The kubelet's CrashLoopBackOff: a container's first restart is immediate,
            the next wait this many seconds, doubling up to 30 times it. Defaults to 10 (the
            kubelet's 10 s to 300 s).
        grace_period: Seconds between SIGTERM and SIGKILL when a pod is stopped. Defaults to 5.
    """

    kind = ""
    SUCCEEDED = ""

    def __init__(self, objects: list[dict], workspace: str | os.PathLike, *,
                 pvc_root: str | os.PathLike | None = None,
                 runtime: ContainerRuntime | None = None, restart_delay: float = 10.0,
                 grace_period: int = 5):
        jobs = [o for o in objects if o.get("kind") == self.kind]
        if len(jobs) != 1:
            raise EmulatorError(f"the manifest holds {len(jobs)} {self.kind}s; the emulator runs "
                                "exactly one")
        self.job = jobs[0]
        self.name = self.job["metadata"]["name"]
        namespace = self.namespace = self.job["metadata"].get("namespace", "default")
        self.config_maps = {o["metadata"]["name"]: o for o in objects
                            if o.get("kind") == "ConfigMap"
                            and o["metadata"].get("namespace", "default") == namespace}
        self.claims = [o["metadata"]["name"] for o in objects
                       if o.get("kind") == "PersistentVolumeClaim"]
        self.workspace = Path(workspace).resolve()
        self.pvc_root = Path(pvc_root).resolve() if pvc_root else self.workspace / "pvc"
        self.runtime = runtime or ProcessRuntime()
        self.restart_delay = restart_delay
        self.grace_period = max(1, int(grace_period))
        self.pods: dict[str, Pod] = {}
        self.conditions: list[Condition] = []
        self.started_at: float | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    # -- what the operator subclass provides -----------------------------------------------------

    @property
    def phase(self) -> str:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def poll(self) -> str:
        raise NotImplementedError

    def delete_pod(self, ref) -> None:
        raise NotImplementedError

    def _pod(self, ref) -> Pod:
        """The pod ``ref`` names (a pod name here; subclasses may take more)."""
        return self.pods[ref]

    @property
    def finished(self) -> bool:
        return self.phase in (self.SUCCEEDED, "Failed")

    @property
    def succeeded(self) -> bool:
        return self.phase == self.SUCCEEDED

    # -- set-up ---------------------------------------------------------------------------------

    def choose_port(self, master_port: int | str | None, manifest_port: int) -> int:
        """The master port local processes get: a free one for ``None``, ``manifest_port`` for
        ``"manifest"`` or when each pod has its own network, else ``master_port``."""
        if master_port == "manifest" or self.runtime.pod_network:
            return manifest_port
        return int(master_port) if master_port else free_port()

    @staticmethod
    def assign_gpus(wanted: list[int], available: int) -> list[list[int]]:
        """Each pod's share of this machine's GPUs, in order, for pods wanting ``wanted`` each."""
        if sum(wanted) > available:
            raise EmulatorError(f"the job requests {sum(wanted)} GPUs ({GPU_RESOURCE}); this "
                                f"machine has {available}")
        starts = [sum(wanted[:i]) for i in range(len(wanted))]
        return [list(range(start, start + count)) for start, count in zip(starts, wanted)]

    def check_volumes(self, name: str, template: dict, container: dict) -> None:
        """Fail now for what would keep pod ``name`` Pending on a cluster (or is not emulated)."""
        volumes = {v["name"]: v for v in template["spec"].get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"])
            if volume is None:
                raise EmulatorError(f"{name}: volumeMount {mount['name']!r} names no volume")
            if "configMap" in volume:
                self._config_map_files(volume["configMap"])
            elif "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                if claim not in self.claims and not (self.pvc_root / claim).is_dir():
                    raise EmulatorError(
                        f"{name}: PersistentVolumeClaim {claim!r} is neither in the manifest "
                        f"nor present under {self.pvc_root} (the pod would stay Pending)")
            elif "emptyDir" not in volume:
                kinds = sorted(set(volume) - {"name"})
                raise EmulatorError(f"{name}: volume {volume['name']!r} of type {kinds} is "
                                    "not emulated")

    def _config_map_files(self, source: dict) -> dict[str, bytes]:
        """The files of a ConfigMap volume: relative path -> content, after ``items``."""
        name = source["name"]
        config_map = self.config_maps.get(name)
        if config_map is None:
            if source.get("optional"):
                return {}
            raise EmulatorError(f"ConfigMap {name!r} is not in the manifest (namespace "
                                f"{self.namespace}); the pod would stay ContainerCreating")
        data = {k: str(v).encode() for k, v in (config_map.get("data") or {}).items()}
        binary = config_map.get("binaryData") or {}
        data.update({k: base64.b64decode(v) for k, v in binary.items()})
        for key in data:
            if not _CONFIGMAP_KEY.match(key):
                raise EmulatorError(f"ConfigMap {name!r}: key {key!r} is not a valid ConfigMap key "
                                    "(letters, digits, '-', '_', '.'); the API server rejects it")
        size = sum(len(k) + len(v) for k, v in data.items())
        if size > CONFIGMAP_MAX_BYTES:
            raise EmulatorError(f"ConfigMap {name!r} is {size} bytes; the limit is 1 MiB")
        items = source.get("items")
        if items is None:
            return dict(data)
        files = {}
        for item in items:
            path = item["path"]
            if path.startswith("/") or ".." in path.split("/"):
                raise EmulatorError(f"ConfigMap volume {name!r}: item path {path!r} must be "
                                    "relative without '..'")
            if item["key"] not in data:
                if source.get("optional"):
                    continue
                raise EmulatorError(f"ConfigMap {name!r} has no key {item['key']!r} (named by an "
                                    "item); the pod would stay ContainerCreating")
            files[path] = data[item["key"]]
        return files

    def _make_pod_dir(self, pod: Pod) -> None:
        """A new pod incarnation: fresh emptyDirs and ConfigMap volumes, mounts resolved."""
        base = self.workspace / "pods" / pod.name
        base.mkdir(parents=True, exist_ok=True)
        pod.pod_dir = Path(tempfile.mkdtemp(prefix="pod-", dir=base))
        volumes = {v["name"]: v for v in pod.template["spec"].get("volumes") or []}
        pod.mounts = []
        for mount in pod.container.get("volumeMounts") or []:
            volume = volumes[mount["name"]]
            if "persistentVolumeClaim" in volume:
                root = self.pvc_root / volume["persistentVolumeClaim"]["claimName"]
            else:
                root = pod.pod_dir / "volumes" / volume["name"]
                if not root.exists():
                    root.mkdir(parents=True)
                    if "emptyDir" in volume:
                        root.chmod(0o777)  # the kubelet's mode for an emptyDir
                    if "configMap" in volume:
                        for rel, content in self._config_map_files(volume["configMap"]).items():
                            (root / rel).parent.mkdir(parents=True, exist_ok=True)
                            (root / rel).write_bytes(content)
            host = root / mount["subPath"] if mount.get("subPath") else root
            if mount.get("subPath") and not host.exists():  # the kubelet creates a missing subPath
                host.mkdir(parents=True)
            memory = (volume.get("emptyDir") or {}).get("medium") == "Memory"
            size = (volume.get("emptyDir") or {}).get("sizeLimit")
            pod.mounts.append(Mount(
                mount["mountPath"].rstrip("/") or "/", host,
                read_only=bool(mount.get("readOnly")) or "configMap" in volume,
                memory_limit=(int(quantity(size)) if size else 0) if memory else None,
                volume_root=root))
        pod.mounts.sort(key=lambda m: len(m.container_path), reverse=True)

    def _begin(self) -> None:
        """What a start does first (once only): the logs folder, the claims' folders."""
        if self.started_at is not None:
            raise EmulatorError("the job was started already")
        (self.workspace / "logs").mkdir(parents=True, exist_ok=True)
        for claim in self.claims:
            (self.pvc_root / claim).mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()

    # -- the container's view -------------------------------------------------------------------

    def container_env(self, pod: Pod) -> list[tuple[str, str]]:
        """The container's ``env`` in order, ``valueFrom`` resolved, before ``$(VAR)``
        expansion and before the local replacements."""
        if pod.container.get("envFrom"):
            raise EmulatorError(f"{pod.name}: envFrom is not emulated")
        env = []
        for entry in pod.container.get("env") or []:
            if "value" in entry or "valueFrom" not in entry:
                env.append((entry["name"], str(entry.get("value", ""))))
            else:
                env.append((entry["name"], self._value_from(pod, entry)))
        return env

    def _value_from(self, pod: Pod, entry: dict) -> str:
        source = entry["valueFrom"]
        if "fieldRef" in source:
            fields = {"metadata.name": pod.name, "metadata.namespace": self.namespace,
                      "status.podIP": LOCAL_ADDR}
            path = source["fieldRef"]["fieldPath"]
            if path in fields:
                return fields[path]
            meta = _META_FIELD.match(path)
            if meta:
                return (pod.labels if meta[1] == "labels" else pod.annotations).get(meta[2], "")
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            data = (self.config_maps.get(ref["name"]) or {}).get("data") or {}
            if ref["key"] in data:
                return str(data[ref["key"]])
            if ref.get("optional"):
                return ""
            raise EmulatorError(f"{pod.name}: env {entry['name']}: ConfigMap {ref['name']!r} "
                                f"has no key {ref['key']!r}")
        raise EmulatorError(f"{pod.name}: env {entry['name']}: valueFrom {source} is not emulated")

    def defined_env(self, pod: Pod) -> dict[str, str]:
        """The container's variables as the container gets them: :meth:`container_env` with
        :attr:`Pod.env_overrides` applied (unless each pod has its own network) and ``$(VAR)``
        expanded."""
        overrides = {} if self.runtime.pod_network else pod.env_overrides
        defined: dict[str, str] = {}
        for position, (name, value) in enumerate(self.container_env(pod)):
            defined[name] = expand_refs(overrides.get(position, value), defined)
        return defined

    def container_spec(self, pod: Pod) -> ContainerSpec:
        """What the kubelet hands the runtime for the next start of ``pod``'s container."""
        defined = self.defined_env(pod)
        command, args = pod.container.get("command"), pod.container.get("args")
        memory = self._limit(pod, "memory")
        return ContainerSpec(
            pod=pod.name, hostname=pod.hostname or pod.name, image=str(pod.container["image"]),
            command=None if not command else tuple(expand_refs(str(w), defined) for w in command),
            args=None if args is None else tuple(expand_refs(str(w), defined) for w in args),
            env=defined, working_dir=pod.container.get("workingDir"), mounts=tuple(pod.mounts),
            gpus=tuple(pod.gpus), scratch=pod.pod_dir, log_path=pod.log_path,
            grace_period=self.grace_period, security=self.security(pod),
            cpu_limit=self._limit(pod, "cpu"), memory_limit=None if memory is None else int(memory),
            dns_names=tuple(pod.dns_names))

    @staticmethod
    def security(pod: Pod) -> Security:
        """The container's ``securityContext`` merged over the pod's (the user, group and
        non-root settings may be given in either; the container's win)."""
        pod_ctx = pod.template["spec"].get("securityContext") or {}
        ctx = pod.container.get("securityContext") or {}

        def either(key: str):
            return ctx.get(key, pod_ctx.get(key))

        capabilities = ctx.get("capabilities") or {}
        return Security(
            run_as_user=either("runAsUser"), run_as_group=either("runAsGroup"),
            run_as_non_root=bool(either("runAsNonRoot")), fs_group=pod_ctx.get("fsGroup"),
            supplemental_groups=tuple(pod_ctx.get("supplementalGroups") or ()),
            allow_privilege_escalation=ctx.get("allowPrivilegeEscalation", True),
            drop=tuple(capabilities.get("drop") or ()), add=tuple(capabilities.get("add") or ()),
            read_only_root=bool(ctx.get("readOnlyRootFilesystem")))

    @staticmethod
    def _limit(pod: Pod, resource: str) -> float | None:
        """``resources.limits[resource]`` of ``pod``'s container as a number, or ``None``."""
        limits = (pod.container.get("resources") or {}).get("limits") or {}
        return quantity(limits[resource]) if resource in limits else None

    # -- running containers ---------------------------------------------------------------------

    def prepare(self, ref) -> Pod:
        """Create pod ``ref`` (its volumes) and its container (environment, command line)
        without starting it, as :meth:`start` does first; tests look at the result (the local
        process's view is ``pod.process``)."""
        pod = self._pod(ref)
        self._make_pod_dir(pod)
        pod.process = self.runtime.create(self.container_spec(pod))
        return pod

    def _start_container(self, pod: Pod) -> None:
        """Start ``pod``'s container (created by :meth:`prepare`, or anew for a restart in the
        same pod)."""
        if pod.process is None:
            pod.process = self.runtime.create(self.container_spec(pod))
        pod.log_path.parent.mkdir(parents=True, exist_ok=True)
        pod.starts.append(pod.log_path.stat().st_size if pod.log_path.exists() else 0)
        pod.process.start()
        pod.phase = "Running"
        pod.restart_at = None

    def _exited(self, pod: Pod) -> int | None:
        """The exit code of ``pod``'s container if it has ended since last seen (recorded in
        :attr:`Pod.exit_codes`); ``None`` otherwise."""
        if not pod.started:
            return None
        code = pod.process.poll()
        if code is not None:
            pod.exit_codes.append(code)
            pod.process = None
        return code

    def _crash_loop_delay(self, pod: Pod) -> float:
        """The kubelet's wait before restarting the container a ``pod.restarts``-th time: none
        the first time, then CrashLoopBackOff 10 s, 20 s, ... 300 s (scaled by
        ``restart_delay``)."""
        if pod.restarts <= 1:
            return 0
        return min(self.restart_delay * 2 ** (pod.restarts - 2), 30 * self.restart_delay)

    def _stop_all(self, grace: float) -> None:
        """Let running pods end on their own for ``grace`` seconds, then kill what is left."""
        deadline = time.monotonic() + grace
        for pod in self.pods.values():
            pod.restart_at = None
            while pod.running and time.monotonic() < deadline:
                time.sleep(0.1)
            if pod.started:
                pod.process.kill()
                pod.exit_codes.append(pod.process.wait())
                if pod.phase == "Running":
                    pod.phase = "Succeeded" if pod.exit_codes[-1] == 0 else "Failed"
                pod.process = None
            elif pod.phase == "Running":  # was waiting to restart
                pod.phase = "Failed"

    def processes(self, ref) -> list[int]:
        """Process ids of pod ``ref``'s container: its init and everything below it."""
        pod = self._pod(ref)
        return pod.process.processes() if pod.running else []

    def pause(self, ref) -> None:
        """SIGSTOP every process of pod ``ref``'s container: a hung node. Its peers block in
        their next collective until it is killed (:meth:`kill`) or resumed with SIGCONT."""
        pod = self._pod(ref)
        if pod.running:
            pod.process.pause()

    def kill(self, ref) -> None:
        """SIGKILL every process of pod ``ref``'s container (what an OOM kill or a crash does).

        The container exits with 137; the next :meth:`poll` applies the pod's restartPolicy.
        """
        pod = self._pod(ref)
        if not pod.running:
            raise EmulatorError(f"{pod.name} is not running")
        pod.process.kill()

    def wait_until(self, predicate, timeout: float, interval: float = 0.2) -> None:
        """Poll until ``predicate()`` is true; raise if the job ends first, or (after killing
        everything) on timeout."""
        deadline = time.monotonic() + timeout
        while not predicate():
            self.poll()
            if self.finished and not predicate():
                raise EmulatorError(f"the job ended before the condition was met\n{self.report()}")
            if time.monotonic() > deadline:
                self.shutdown()
                raise EmulatorTimeout(f"condition not met within {timeout}s\n{self.report()}")
            time.sleep(interval)

    def wait(self, timeout: float) -> str:
        """Poll until the job has succeeded or failed and return its phase; on timeout kill and
        raise."""
        self.wait_until(lambda: self.poll() in (self.SUCCEEDED, "Failed"), timeout)
        return self.phase

    def shutdown(self) -> None:
        """Kill every process of every pod now and let the runtime remove what it made
        (idempotent)."""
        for pod in self.pods.values():
            pod.restart_at = None
            if pod.started:
                pod.process.kill()
                pod.process = None
        self.runtime.close()

    def leftover_processes(self) -> list[int]:
        """Processes still running whose working directory is inside the workspace or the PVC
        folder, and those of the runtime's containers (none expected after :meth:`shutdown`)."""
        left = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                continue
            if any(cwd == str(root) or cwd.startswith(f"{root}/")
                   for root in (self.workspace, self.pvc_root)):
                left.append(int(entry))
        return left + self.runtime.leftover_processes()

    # -- reading results ------------------------------------------------------------------------

    def logs(self, ref, previous: bool = False) -> str:
        """The output of pod ``ref``'s current container (``kubectl logs``), or of the one
        before (``--previous``)."""
        pod = self._pod(ref)
        if not pod.starts or (previous and len(pod.starts) < 2):
            return ""
        data = pod.log_path.read_bytes()
        which = len(pod.starts) - (2 if previous else 1)
        end = pod.starts[which + 1] if which + 1 < len(pod.starts) else len(data)
        return data[pod.starts[which]:end].decode(errors="replace")

    def all_logs(self, ref) -> str:
        """Everything pod ``ref``'s containers printed, all restarts included."""
        path = self._pod(ref).log_path
        return path.read_text(errors="replace") if path.exists() else ""

    def _status_lines(self) -> list[str]:
        """Lines on the job's state beyond its conditions (for :meth:`report`)."""
        return []

    def report(self, tail: int = 15) -> str:
        """Job phase, conditions and each pod's status with the end of its log (for failure
        messages)."""
        lines = [f"{self.kind} {self.name}: {self.phase}"]
        lines += [f"  {c.type}: {c.reason}: {c.message}" for c in self.conditions]
        lines += self._status_lines()
        for pod in self.pods.values():
            deleted = ", deleted" if pod.deleting else ""
            lines.append(f"  pod {pod.name}: {pod.phase}{deleted}, restarts={pod.restarts}, "
                         f"recreations={pod.recreations}, exit codes={pod.exit_codes}, "
                         f"log={pod.log_path}")
            lines += ["    | " + line for line in self.all_logs(pod.name).splitlines()[-tail:]]
        return "\n".join(lines)
