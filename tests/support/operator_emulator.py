"""Run a rendered PyTorchJob on this machine the way Kubeflow's training operator v1.9 would.

Given the objects of a manifest (the PyTorchJob, its ConfigMaps, PersistentVolumeClaims), every
replica pod (``Master`` x1, ``Worker`` x(N-1)) becomes a local process tree running the ``pytorch``
container's ``command`` + ``args`` (the image's ENTRYPOINT/CMD where they are absent) with:

- exactly the environment the operator injects (``PYTHONUNBUFFERED``, ``MASTER_ADDR``/``PORT``,
  ``PET_MASTER_ADDR``/``PORT``, ``WORLD_SIZE`` = N x nprocPerNode, ``RANK`` = ``PET_NODE_RANK`` =
  node index, ``PET_NPROC_PER_NODE``, ``PET_NNODES``; :func:`operator_env`), appended after the
  container's own ``env`` so the operator's value wins on a repeated name, as with the kubelet;
  ``$(VAR)`` references in ``env``, ``command`` and ``args`` are expanded as Kubernetes does;
- its volumes: a ConfigMap volume is materialised with its ``items`` (``key`` -> ``path``) layout
  (keys and paths checked as the API server does), a PersistentVolumeClaim is one folder shared by
  every pod (``pvc_root/<claimName>``), an ``emptyDir`` is a folder that lives as long as the pod
  (it survives container restarts, not pod re-creation);
- the container's writable filesystem stood in by a fresh folder per container start, holding
  the image's working directory, ``HOME`` and ``/tmp``: whatever is written outside a volume is
  lost on a restart, and the pods do not share it, as on a cluster;
- the restart behaviour of its ``restartPolicy`` and the job's ``runPolicy`` (``backoffLimit``,
  ``activeDeadlineSeconds``), and the operator's rule for success: the job is Succeeded when the
  Master pod succeeds (all Workers when there is no Master).

What differs from a cluster, and why
------------------------------------
1. ``MASTER_ADDR`` / ``PET_MASTER_ADDR``: the operator sets ``<job>-master-0``, the name of the
   master's headless Service. No Service exists here, so local processes get ``127.0.0.1``, the
   address that name resolves to when every pod runs on this machine. This is the one change to
   the operator's variables; the rest are computed unchanged.
2. ``MASTER_PORT`` / ``PET_MASTER_PORT``: on a cluster every pod has its own network namespace; here
   all share one, so by default the master's ``pytorchjob-port`` (23456 when absent, as the
   operator's defaulter adds) is replaced by a free local port and two emulated jobs cannot clash.
   ``master_port="manifest"`` keeps the manifest's. Sharing one host also means that every pod
   sees the master's address as its own: what decides by "is this my address" (torchrun's c10d
   rendezvous electing its store host) is not faithful here; the static rendezvous the operator's
   variables set up is.
3. Paths: a container sees its volumes at their ``mountPath`` (``/config``, ``/work_dirs``...).
   Creating those folders on this machine's ``/`` is not safe per test: they would outlive the run
   and be shared by concurrent runs. A private mount namespace (``unshare --mount`` + bind mounts)
   avoids the sharing but still needs the mount points created on the host's ``/`` and root with
   CAP_SYS_ADMIN, which CI runners, laptops and the GPU machines do not all grant. So each
   mountPath is mapped to a local folder and absolute paths in ``command``, ``args``,
   ``workingDir`` and the container's ``env`` values are rewritten (a whole argument, or the value
   after ``=`` in ``key=/path``) by :meth:`OperatorEmulator.local_path`: under a mountPath -> that
   volume's folder; the image's own folders (``WORKDIR``, ``HOME``, ``/tmp``) and paths this
   machine does not have -> the container's writable folder; other paths that exist here are left
   alone (``/usr/bin/env`` stands for the image's). Paths inside files (a config naming
   ``/data/...``) are not rewritten.
4. The image (:class:`Image`, defaults from the repository's ``Dockerfile``): ``python`` and
   ``torchrun`` are this interpreter's (its folder is first on ``PATH``), the repository is on
   ``PYTHONPATH`` instead of installed, ``configs/`` is linked in at ``/workspace/configs``. The
   environment holds only ``PATH``, ``HOSTNAME`` (the pod name), ``HOME``, ``TMPDIR`` (the
   container's ``/tmp``), the image's ``ENV`` and ``PYTHONPATH`` before the container's variables;
   Kubernetes' Service-link variables (``KUBERNETES_SERVICE_HOST``...) are not set.
5. GPUs: the device plugin gives each pod its own ``nvidia.com/gpu`` devices; here a pod gets
   ``CUDA_VISIBLE_DEVICES`` naming its share of this machine's GPUs, or an empty value (no GPU)
   when it requests none. A job needing more GPUs than the machine has is refused.
6. Not enforced: ``securityContext`` (processes run as the current user), ``readOnly`` mounts,
   ``resources`` other than GPUs, ``sizeLimit``; ``medium: Memory`` is an ordinary folder.
7. Timing: restarts follow the kubelet's CrashLoopBackOff (the first at once, then 10 s doubling
   to 300 s; ``restart_delay`` scales it, and the kubelet's reset after 10 minutes of running is
   not modelled); a stopped pod gets ``grace_period`` seconds between SIGTERM and SIGKILL instead
   of ``terminationGracePeriodSeconds``. Worker pods start with the Master: the ``init-pytorch``
   init container's DNS wait has nothing to wait for.
8. ``ExitCode`` re-creations count towards ``backoffLimit`` (standing for the operator's
   requeue-based check on failed pods); ``OnFailure``/``Always`` restarts count as container
   restarts, as in v1.9.
9. When the job has finished, pods still running get ``grace_period`` seconds to exit and are then
   killed, whatever ``cleanPodPolicy`` says: a test must leave no process behind.
10. Refused with :class:`EmulatorError` (not emulated): ``elasticPolicy``, more than one container
    per pod, volume types other than configMap / persistentVolumeClaim / emptyDir, ``envFrom``,
    ``valueFrom`` other than ``fieldRef`` (``metadata.name``, ``metadata.namespace``,
    ``status.podIP``) and ``configMapKeyRef``.

Each container runs under :mod:`tests.support.container_init`, a small init that, like a PID
namespace, takes every process the container started with it when it ends or is killed
(``torchrun`` starts its workers in sessions of their own, so killing a process group would leave
them running).

Usage from a test::

    with OperatorEmulator(objects, workspace=tmp_path / "emu", pvc_root=tmp_path / "pvc") as emu:
        emu.start()
        emu.wait_until(lambda: (tmp_path / "pvc/shared/job/epoch_1.pth").exists(), timeout=120)
        emu.kill("job-worker-0")      # or pause() (a hung node), delete_pod() (kubectl delete pod)
        assert emu.wait(timeout=300) == "Succeeded"

From a shell: ``python -m tests.support.operator_emulator MANIFEST.yaml [--pvc-root DIR]``
(``-`` reads the manifest from stdin), e.g. piped from ``kctl train ... --dry-run``.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.support import container_init

REPO = Path(__file__).resolve().parents[2]
INIT = Path(container_init.__file__).resolve()

#: The operator's names (kubeflow/training-operator v1.9 ``pytorch_types.go``).
CONTAINER_NAME = "pytorch"
PORT_NAME = "pytorchjob-port"
DEFAULT_PORT = 23456
DEFAULT_RESTART_POLICY = "OnFailure"
REPLICA_TYPES = ("Master", "Worker")
GPU_RESOURCE = "nvidia.com/gpu"

#: What a local process is told instead of the master's Service name (deviation 1).
LOCAL_MASTER_ADDR = "127.0.0.1"
#: Kubernetes' rule for ConfigMap keys (``IsConfigMapKey``) and the ConfigMap size limit.
_CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
CONFIGMAP_MAX_BYTES = 1024 * 1024
_ENV_REF = re.compile(r"\$\$|\$\(([-._a-zA-Z0-9]+)\)")
_BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Image:
    """What the emulator knows of the container image; the defaults are the repository's
    ``Dockerfile`` (the trainer image), with this interpreter standing in for the image's Python.

    Args:
        workdir: ``WORKDIR``, the working directory when the container sets no ``workingDir``.
        home: The image user's home directory (``HOME``).
        env: ``ENV`` variables, before the container's own.
        files: Image content as (path in the image, local path) pairs: each is linked into the
            container's filesystem, e.g. the configs baked into ``/workspace/configs``.
        entrypoint: ``ENTRYPOINT``, used when the container has no ``command``.
        cmd: ``CMD``, used when the container has neither ``command`` nor ``args``.
        bin_dir: Folder first on ``PATH`` (``python``, ``torchrun``).
        python_path: On ``PYTHONPATH``: the packages the image has installed.
    """

    workdir: str = "/workspace"
    home: str = "/home/trainer"
    env: tuple[tuple[str, str], ...] = (("PYTHONDONTWRITEBYTECODE", "1"),
                                        ("PYTHONUNBUFFERED", "1"))
    files: tuple[tuple[str, Path], ...] = (("/workspace/configs", REPO / "configs"),)
    entrypoint: tuple[str, ...] = (sys.executable, str(REPO / "image" / "entrypoint.py"))
    cmd: tuple[str, ...] = ("configs/resnet/resnet18_1xb64_digits.py",)
    bin_dir: Path = Path(sys.executable).parent
    python_path: Path = REPO


class EmulatorError(Exception):
    """The manifest cannot run here (or would not start on a cluster either); the message says
    why."""


class EmulatorTimeout(EmulatorError):
    """A wait ran out of time; every process of the job has been killed."""


def load_manifest(text: str) -> list[dict]:
    """The objects of a multi-document YAML manifest, empty documents skipped."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


# ---------------------------------------------------------------------------------------------
# What the operator computes (pure functions of the manifest)
# ---------------------------------------------------------------------------------------------

def pod_name(job_name: str, replica_type: str, index: int) -> str:
    """``<job>-<replica type, lower-case>-<index>``, the name of the pod and of its Service."""
    return f"{job_name}-{replica_type.lower()}-{index}"


def _pytorch_container(spec: dict, replica_type: str) -> dict:
    template = spec["pytorchReplicaSpecs"][replica_type]["template"]
    for container in template["spec"].get("containers") or []:
        if container.get("name") == CONTAINER_NAME:
            return container
    raise EmulatorError(f"{replica_type} has no container named {CONTAINER_NAME!r}; "
                        "the operator's webhook rejects the job")


def manifest_master_port(job: dict) -> int:
    """The Master's ``pytorchjob-port`` (23456 when absent: the operator's defaulter adds it)."""
    for port in _pytorch_container(job["spec"], "Master").get("ports") or []:
        if port.get("name") == PORT_NAME:
            return int(port["containerPort"])
    return DEFAULT_PORT


def replica_count(job: dict, replica_type: str) -> int:
    """``replicas`` of a replica type (1 when unset, the controller's default; 0 when absent)."""
    spec = job["spec"]["pytorchReplicaSpecs"].get(replica_type)
    if spec is None:
        return 0
    return int(spec.get("replicas", 1))


def operator_env(job: dict, replica_type: str, index: int) -> list[tuple[str, str]]:
    """The variables the v1.9 operator appends to the ``pytorch`` container's ``env``.

    ``pkg/controller.v1/pytorch/envvar.go`` ``setPodEnv`` and ``master.go`` (see
    pytorchjob-facts.md section 5): values exactly as the operator computes them, in the order of
    that table. Only the order relative to the user's ``env`` matters for the resulting values (the
    operator's come after, so they win); none of these names repeats within the operator's list.

    Args:
        job: The PyTorchJob object.
        replica_type: ``Master`` or ``Worker``.
        index: The pod's index within its replica type.
    """
    spec = job["spec"]
    if spec.get("elasticPolicy") is not None:
        raise EmulatorError("elasticPolicy is not emulated")
    nodes = sum(replica_count(job, rtype) for rtype in spec["pytorchReplicaSpecs"])
    nproc = str(spec.get("nprocPerNode", "auto"))  # the defaulter sets "auto"
    procs = int(nproc) if re.fullmatch(r"[+-]?\d+", nproc) else 1  # Go's strconv.Atoi, else 1
    env = [("PYTHONUNBUFFERED", "1")]
    if "Master" in spec["pytorchReplicaSpecs"]:
        port = str(manifest_master_port(job))
        addr = pod_name(job["metadata"]["name"], "Master", 0)
        rank = str(index + 1 if replica_type == "Worker" else index)
        env += [("MASTER_PORT", port), ("PET_MASTER_PORT", port),
                ("MASTER_ADDR", addr), ("PET_MASTER_ADDR", addr),
                ("WORLD_SIZE", str(nodes * procs)), ("RANK", rank), ("PET_NODE_RANK", rank)]
    env += [("PET_NPROC_PER_NODE", nproc), ("PET_NNODES", str(nodes))]
    return env


def expand_refs(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined names are replaced, ``$$`` is ``$``, the rest
    stays as it is."""
    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))
    return _ENV_REF.sub(replace, text)


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


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


# ---------------------------------------------------------------------------------------------
# Pods
# ---------------------------------------------------------------------------------------------

@dataclass
class Mount:
    """A volumeMount: where the container sees it and the local folder (or file) behind it."""

    container_path: str
    host_path: Path


@dataclass
class Pod:
    """One replica pod and its container's history.

    Attributes:
        phase: ``Pending`` (not started yet), ``Running`` (also while waiting to restart),
            ``Succeeded`` or ``Failed``.
        restarts: The kubelet's ``restartCount``, summed over the pod's incarnations.
        recreations: Times the operator deleted and created the pod again (``ExitCode`` policy,
            :meth:`OperatorEmulator.delete_pod`).
        exit_codes: Every container exit in order, as Kubernetes reports it (128+N for signal N).
    """

    name: str
    replica_type: str
    index: int
    restart_policy: str
    template: dict
    container: dict
    log_path: Path
    phase: str = "Pending"
    restarts: int = 0
    recreations: int = 0
    exit_codes: list[int] = field(default_factory=list)
    gpus: list[int] = field(default_factory=list)
    process: subprocess.Popen | None = None
    restart_at: float | None = None
    starts: list[int] = field(default_factory=list)  # log offset of each container start
    pod_dir: Path | None = None  # this incarnation's folder (emptyDirs, ConfigMaps)
    rootfs: Path | None = None  # this container start's writable folder
    mounts: list[Mount] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    deleting: bool = False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Condition:
    """A job condition like the operator's: ``Created``, ``Running``, ``Restarting``, ``Succeeded``,
    ``Failed``."""

    type: str
    reason: str
    message: str


class OperatorEmulator:
    """Run the PyTorchJob in ``objects`` as local processes (see the module docstring).

    Args:
        objects: The manifest's objects (one PyTorchJob, its ConfigMaps and PVCs).
        workspace: A folder of the emulator's own: logs (``logs/<pod>.log``), pod folders.
        pvc_root: Where PersistentVolumeClaims live, one folder each. Defaults to
            ``workspace/pvc``. A claim the manifest does not create must already exist there (a pod
            using a missing claim would stay Pending on a cluster).
        master_port: The port local processes get as ``MASTER_PORT``; ``None`` (default) picks a
            free one, ``"manifest"`` keeps the Master's ``pytorchjob-port``.
        image: The container image's layout (see :class:`Image`). Defaults to the trainer image.
        restart_delay: The kubelet's CrashLoopBackOff: a container's first restart is immediate,
            the next wait this many seconds, doubling up to 30 times it. Defaults to 10 (the
            kubelet's 10 s to 300 s).
        grace_period: Seconds between SIGTERM and SIGKILL when a pod is stopped. Defaults to 5.
        host_gpus: GPUs this machine offers to pods. Defaults to ``nvidia-smi -L``'s count.
    """

    def __init__(self, objects: list[dict], workspace: str | os.PathLike, *,
                 pvc_root: str | os.PathLike | None = None, master_port: int | str | None = None,
                 image: Image = Image(), restart_delay: float = 10.0,
                 grace_period: int = 5, host_gpus: int | None = None):
        jobs = [o for o in objects if o.get("kind") == "PyTorchJob"]
        if len(jobs) != 1:
            raise EmulatorError(f"the manifest holds {len(jobs)} PyTorchJobs; the emulator runs "
                                "exactly one")
        self.job = jobs[0]
        self.name = self.job["metadata"]["name"]
        self.namespace = self.job["metadata"].get("namespace", "default")
        self.config_maps = {o["metadata"]["name"]: o for o in objects
                            if o.get("kind") == "ConfigMap"
                            and o["metadata"].get("namespace", "default") == self.namespace}
        self.claims = [o["metadata"]["name"] for o in objects
                       if o.get("kind") == "PersistentVolumeClaim"]
        self.workspace = Path(workspace).resolve()
        self.pvc_root = Path(pvc_root).resolve() if pvc_root else self.workspace / "pvc"
        self.image = image
        self.restart_delay = restart_delay
        self.grace_period = max(1, int(grace_period))
        run_policy = self.job["spec"].get("runPolicy") or {}
        self.backoff_limit = run_policy.get("backoffLimit")
        self.active_deadline = run_policy.get("activeDeadlineSeconds")
        self.conditions: list[Condition] = []
        self.started_at: float | None = None
        if self.job["spec"].get("elasticPolicy") is not None:
            raise EmulatorError("elasticPolicy is not emulated")
        if "Master" in self.job["spec"]["pytorchReplicaSpecs"]:
            manifest_port = manifest_master_port(self.job)
            self.local_port = (manifest_port if master_port == "manifest"
                               else int(master_port) if master_port else free_port())
        self.pods = self._make_pods()
        self._assign_gpus(host_gpu_count() if host_gpus is None else host_gpus)
        for pod in self.pods.values():
            self._check_volumes(pod)

    @classmethod
    def from_yaml(cls, text: str, workspace, **options) -> "OperatorEmulator":
        """The emulator of a multi-document YAML manifest (what ``kctl train --dry-run``
        prints)."""
        return cls(load_manifest(text), workspace, **options)

    # -- set-up ---------------------------------------------------------------------------------

    def _make_pods(self) -> dict[str, Pod]:
        specs = self.job["spec"]["pytorchReplicaSpecs"]
        unknown = set(specs) - set(REPLICA_TYPES)
        if unknown:
            raise EmulatorError(f"replica types {sorted(unknown)} are not Master or Worker")
        pods = {}
        for rtype in REPLICA_TYPES:
            if rtype not in specs:
                continue
            replica = specs[rtype]
            template = replica["template"]
            containers = template["spec"].get("containers") or []
            if len(containers) != 1:
                raise EmulatorError(f"{rtype} has {len(containers)} containers; the emulator runs "
                                    f"pods with exactly one (named {CONTAINER_NAME!r})")
            container = _pytorch_container(self.job["spec"], rtype)
            for index in range(replica_count(self.job, rtype)):
                name = pod_name(self.name, rtype, index)
                pods[name] = Pod(name, rtype, index,
                                 replica.get("restartPolicy", DEFAULT_RESTART_POLICY), template,
                                 container, self.workspace / "logs" / f"{name}.log")
        if not pods:
            raise EmulatorError("the job has no replicas")
        return pods

    def _assign_gpus(self, available: int) -> None:
        wanted = 0
        for pod in self.pods.values():
            resources = pod.container.get("resources") or {}
            count = int((resources.get("limits") or {}).get(
                GPU_RESOURCE, (resources.get("requests") or {}).get(GPU_RESOURCE, 0)))
            pod.gpus = list(range(wanted, wanted + count))
            wanted += count
        if wanted > available:
            raise EmulatorError(f"the job requests {wanted} GPUs ({GPU_RESOURCE}); this machine "
                                f"has {available}")

    def _check_volumes(self, pod: Pod) -> None:
        """Fail now for what would keep the pod Pending on a cluster (or is not emulated)."""
        volumes = {v["name"]: v for v in pod.template["spec"].get("volumes") or []}
        for mount in pod.container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"])
            if volume is None:
                raise EmulatorError(f"{pod.name}: volumeMount {mount['name']!r} names no volume")
            if "configMap" in volume:
                self._config_map_files(volume["configMap"])
            elif "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                if claim not in self.claims and not (self.pvc_root / claim).is_dir():
                    raise EmulatorError(
                        f"{pod.name}: PersistentVolumeClaim {claim!r} is neither in the manifest "
                        f"nor present under {self.pvc_root} (the pod would stay Pending)")
            elif "emptyDir" not in volume:
                kinds = sorted(set(volume) - {"name"})
                raise EmulatorError(f"{pod.name}: volume {volume['name']!r} of type {kinds} is "
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
                    if "configMap" in volume:
                        for rel, content in self._config_map_files(volume["configMap"]).items():
                            (root / rel).parent.mkdir(parents=True, exist_ok=True)
                            (root / rel).write_bytes(content)
            host = root / mount["subPath"] if mount.get("subPath") else root
            if mount.get("subPath") and not host.exists():  # the kubelet creates a missing subPath
                host.mkdir(parents=True)
            pod.mounts.append(Mount(mount["mountPath"].rstrip("/") or "/", host))
        pod.mounts.sort(key=lambda m: len(m.container_path), reverse=True)

    def _claim_folders(self) -> None:
        for claim in self.claims:
            (self.pvc_root / claim).mkdir(parents=True, exist_ok=True)

    # -- the container's view -------------------------------------------------------------------

    def local_path(self, pod: Pod, path: str) -> str:
        """Where the container path ``path`` is on this machine (deviation 3): in a volume's
        folder, in the container's writable folder (the image's own folders, and any path this
        machine does not have), or unchanged (this machine's ``/usr/bin/env`` stands for the
        image's)."""
        for mount in pod.mounts:
            if _under(path, mount.container_path):
                return str(mount.host_path) + path[len(mount.container_path):]
        image_owned = (self.image.workdir, self.image.home, "/tmp",
                       *(p for p, _ in self.image.files))
        if any(_under(path, owned) for owned in image_owned) or not os.path.exists(path):
            return f"{pod.rootfs}{path}"
        return path

    def _rewrite(self, pod: Pod, value: str) -> str:
        if value.startswith("/"):
            return self.local_path(pod, value)
        key, sep, rest = value.partition("=")
        if sep and rest.startswith("/"):
            return f"{key}={self.local_path(pod, rest)}"
        return value

    def container_env(self, pod: Pod) -> list[tuple[str, str]]:
        """The container's ``env`` as the kubelet sees it: the user's entries, then the
        operator's."""
        user = []
        for entry in pod.container.get("env") or []:
            if "value" in entry or "valueFrom" not in entry:
                user.append((entry["name"], str(entry.get("value", ""))))
            else:
                user.append((entry["name"], self._value_from(pod, entry)))
        if pod.container.get("envFrom"):
            raise EmulatorError(f"{pod.name}: envFrom is not emulated")
        return user + operator_env(self.job, pod.replica_type, pod.index)

    def _value_from(self, pod: Pod, entry: dict) -> str:
        source = entry["valueFrom"]
        if "fieldRef" in source:
            fields = {"metadata.name": pod.name, "metadata.namespace": self.namespace,
                      "status.podIP": LOCAL_MASTER_ADDR}
            path = source["fieldRef"]["fieldPath"]
            if path in fields:
                return fields[path]
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

    def local_env(self, pod: Pod) -> dict[str, str]:
        """The container's variables as the local process gets them: :meth:`container_env` after
        ``$(VAR)`` expansion (each entry sees those before it, as Kubernetes does), container paths
        in the user's values mapped, and the operator's master address and port replaced
        (deviations 1-3)."""
        local = {"MASTER_ADDR": LOCAL_MASTER_ADDR, "PET_MASTER_ADDR": LOCAL_MASTER_ADDR}
        if "Master" in self.job["spec"]["pytorchReplicaSpecs"]:
            local.update(MASTER_PORT=str(self.local_port), PET_MASTER_PORT=str(self.local_port))
        user = len(pod.container.get("env") or [])
        defined: dict[str, str] = {}
        for position, (name, value) in enumerate(self.container_env(pod)):
            if position >= user and name in local:
                value = local[name]
            value = expand_refs(value, defined)
            defined[name] = self._rewrite(pod, value) if position < user else value
        return defined

    def image_env(self, pod: Pod) -> dict[str, str]:
        """What the image and the runtime provide before the container's own variables
        (deviations 4 and 5)."""
        return {"PATH": f"{self.image.bin_dir}:{_BASE_PATH}", "HOSTNAME": pod.name,
                "HOME": self.local_path(pod, self.image.home),
                "TMPDIR": self.local_path(pod, "/tmp"),
                **dict(self.image.env), "PYTHONPATH": str(self.image.python_path),
                "CUDA_VISIBLE_DEVICES": ",".join(map(str, pod.gpus))}

    def argv(self, pod: Pod, defined: dict[str, str]) -> list[str]:
        """``command`` + ``args`` with ``$(VAR)`` expanded and container paths mapped; without a
        ``command`` the image's ENTRYPOINT, and its CMD when there are no ``args`` either."""
        command, args = pod.container.get("command"), pod.container.get("args")
        if not command:
            command, args = self.image.entrypoint, args if args else self.image.cmd
        words = [str(w) for w in command] + [str(w) for w in args or []]
        return [self._rewrite(pod, expand_refs(word, defined)) for word in words]

    # -- running --------------------------------------------------------------------------------

    def __enter__(self) -> "OperatorEmulator":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    @property
    def phase(self) -> str:
        """The job's last condition (``Created`` before :meth:`start`)."""
        return self.conditions[-1].type if self.conditions else "Created"

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    def start(self) -> None:
        """Create the job's pods (the Master first) and start their containers."""
        if self.started_at is not None:
            raise EmulatorError("the job was started already")
        (self.workspace / "logs").mkdir(parents=True, exist_ok=True)
        self._claim_folders()
        self.started_at = time.monotonic()
        self._condition("Created", "PyTorchJobCreated", f"PyTorchJob {self.name} is created.")
        for name in self.pods:
            self._start_container(self.prepare(name))
        self._condition("Running", "PyTorchJobRunning", f"PyTorchJob {self.name} is running.")

    def prepare(self, name: str) -> Pod:
        """Create pod ``name`` (volumes) and its container's folder, environment and command line,
        without starting it (what :meth:`start` does first; tests look at the result)."""
        pod = self.pods[name]
        self._make_pod_dir(pod)
        self._new_container(pod)
        return pod

    def _new_container(self, pod: Pod) -> None:
        pod.rootfs = Path(tempfile.mkdtemp(prefix="container-", dir=pod.pod_dir))
        for path, local in self.image.files:  # the image's content, read from the repository
            link = Path(f"{pod.rootfs}{path}")
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(local)
        for path in (self.image.workdir, self.image.home, "/tmp"):
            Path(f"{pod.rootfs}{path}").mkdir(parents=True, exist_ok=True)
        defined = self.local_env(pod)
        pod.env = {**self.image_env(pod), **defined}
        pod.argv = self.argv(pod, defined)
        pod.cwd = Path(self.local_path(pod, pod.container.get("workingDir") or self.image.workdir))
        pod.cwd.mkdir(parents=True, exist_ok=True)

    def _start_container(self, pod: Pod) -> None:
        """Start the container of ``pod`` (:meth:`_new_container` done) under the init."""
        pod.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(pod.log_path, "ab") as log:
            pod.starts.append(log.tell())
            pod.process = subprocess.Popen(
                [sys.executable, str(INIT), str(os.getpid()), str(self.grace_period), *pod.argv],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=pod.env,
                cwd=pod.cwd, start_new_session=True)
        pod.phase = "Running"
        pod.restart_at = None

    def poll(self) -> str:
        """Look at every pod once, act as the kubelet and the operator would; the job's phase."""
        if self.started_at is None or self.finished:
            return self.phase
        now = time.monotonic()
        for pod in self.pods.values():
            if pod.process is not None and pod.process.poll() is not None:
                self._on_exit(pod)
            elif pod.restart_at is not None and now >= pod.restart_at and not self.finished:
                self._new_container(pod)  # same pod, emptyDirs kept; a fresh writable layer
                self._start_container(pod)
            if self.finished:
                return self.phase
        if self.active_deadline is not None and now - self.started_at > self.active_deadline:
            self._fail("DeadlineExceeded", f"PyTorchJob {self.name} is active more than "
                       f"{self.active_deadline}s")
        elif self._succeeded():
            self._finish("Succeeded", "PyTorchJobSucceeded",
                         f"PyTorchJob {self.name} is successfully completed.")
        return self.phase

    def _on_exit(self, pod: Pod) -> None:
        code = pod.process.returncode
        code = 128 - code if code < 0 else code  # init killed by signal N: the runtime says 128+N
        pod.process = None
        if pod.deleting:  # delete_pod(): the operator creates the pod again
            pod.deleting = False
            pod.recreations += 1
            self._start_container(self.prepare(pod.name))
            return
        pod.exit_codes.append(code)
        policy = pod.restart_policy
        if code == 0 and policy != "Always":
            pod.phase = "Succeeded"
            return
        if policy == "Never" or (policy == "ExitCode" and code < 128):
            pod.phase = "Failed"
            self._fail(f"{pod.replica_type}Failed",
                       f"{pod.name} exited with code {code} (restartPolicy {policy})")
            return
        if policy == "ExitCode":
            pod.recreations += 1
        else:  # OnFailure, Always: the kubelet restarts the container in the same pod
            pod.restarts += 1
        if self.backoff_limit is not None and self._counted_restarts() >= self.backoff_limit:
            pod.phase = "Failed"
            self._fail("BackoffLimitExceeded",
                       f"PyTorchJob {self.name} has failed because it has reached the specified "
                       f"backoff limit ({self.backoff_limit})")
            return
        self._condition("Restarting", "PyTorchJobRestarting",
                        f"{pod.name} exited with code {code} and is restarted")
        if policy == "ExitCode":  # the operator deletes the pod and creates it again at once
            self._start_container(self.prepare(pod.name))
        else:
            # the kubelet: the first restart at once, then CrashLoopBackOff 10 s, 20 s, ... 300 s
            delay = 0 if pod.restarts == 1 else self.restart_delay * 2 ** (pod.restarts - 2)
            pod.restart_at = time.monotonic() + min(delay, 30 * self.restart_delay)

    def _counted_restarts(self) -> int:
        return sum(p.restarts + p.recreations for p in self.pods.values()
                   if p.restart_policy != "Never")

    def _succeeded(self) -> bool:
        masters = [p for p in self.pods.values() if p.replica_type == "Master"]
        return all(p.phase == "Succeeded" for p in (masters or list(self.pods.values())))

    def _condition(self, type_: str, reason: str, message: str) -> None:
        if self.conditions and self.conditions[-1].type == type_:  # updated, as the operator does
            self.conditions.pop()
        self.conditions.append(Condition(type_, reason, message))

    def _fail(self, reason: str, message: str) -> None:
        self._condition("Failed", reason, message)
        self._stop_all(grace=0)

    def _finish(self, type_: str, reason: str, message: str) -> None:
        self._condition(type_, reason, message)
        self._stop_all(grace=self.grace_period)

    def _stop_all(self, grace: float) -> None:
        """Let running pods end on their own for ``grace`` seconds, then kill what is left."""
        deadline = time.monotonic() + grace
        for pod in self.pods.values():
            pod.restart_at = None
            while pod.running and time.monotonic() < deadline:
                time.sleep(0.1)
            self._kill_tree(pod)
            if pod.process is not None:
                code = pod.process.wait()
                pod.exit_codes.append(128 - code if code < 0 else code)
                if pod.phase == "Running":
                    pod.phase = "Succeeded" if pod.exit_codes[-1] == 0 else "Failed"
                pod.process = None
            elif pod.phase == "Running":  # was waiting to restart
                pod.phase = "Failed"

    def _kill_tree(self, pod: Pod) -> None:
        if pod.process is None:
            return
        container_init.kill_descendants(pod.process.pid)
        try:
            os.kill(pod.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def processes(self, name: str) -> list[int]:
        """Process ids of pod ``name``'s container: its init and everything below it."""
        pod = self.pods[name]
        if not pod.running:
            return []
        return [pod.process.pid, *container_init.descendants(pod.process.pid)]

    def pause(self, name: str) -> None:
        """SIGSTOP every process of pod ``name``'s container: a hung node. Its peers block in
        their next collective until it is killed (:meth:`kill`) or resumed with SIGCONT."""
        for pid in self.processes(name):
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass

    def kill(self, name: str) -> None:
        """SIGKILL every process of pod ``name``'s container (what an OOM kill or a crash does).

        The container exits with 137; the next :meth:`poll` applies the replica's restartPolicy.
        """
        pod = self.pods[name]
        if not pod.running:
            raise EmulatorError(f"{name} is not running")
        self._kill_tree(pod)
        pod.process.wait()

    def delete_pod(self, name: str) -> None:
        """``kubectl delete pod NAME``: SIGTERM, SIGKILL after the grace period; the operator then
        creates the pod again (new emptyDirs), which is not a failure and no restart."""
        pod = self.pods[name]
        if not pod.running:
            raise EmulatorError(f"{name} is not running")
        pod.deleting = True
        pod.process.send_signal(signal.SIGTERM)  # the init forwards it, SIGKILLs after the grace

    def wait_until(self, predicate, timeout: float, interval: float = 0.2) -> None:
        """Poll until ``predicate()`` is true; raise if the job ends first, or (after killing
        everything) on timeout."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.poll() in ("Succeeded", "Failed") and not predicate():
                raise EmulatorError(f"the job ended before the condition was met\n{self.report()}")
            if time.monotonic() > deadline:
                self.shutdown()
                raise EmulatorTimeout(f"condition not met within {timeout}s\n{self.report()}")
            time.sleep(interval)

    def wait(self, timeout: float) -> str:
        """Poll until the job is Succeeded or Failed and return that; on timeout kill and raise."""
        self.wait_until(lambda: self.poll() in ("Succeeded", "Failed"), timeout)
        return self.phase

    def shutdown(self) -> None:
        """Kill every process of every pod now (idempotent)."""
        for pod in self.pods.values():
            pod.restart_at = None
            self._kill_tree(pod)
            if pod.process is not None:
                pod.process.wait()
                pod.process = None

    def leftover_processes(self) -> list[int]:
        """Processes still running whose working directory is inside the workspace or the PVC
        folder (none expected after :meth:`shutdown`)."""
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
        return left

    # -- reading results ------------------------------------------------------------------------

    def logs(self, name: str, previous: bool = False) -> str:
        """The output of pod ``name``'s current container (``kubectl logs``), or of the one before
        (``--previous``)."""
        pod = self.pods[name]
        if not pod.starts or (previous and len(pod.starts) < 2):
            return ""
        data = pod.log_path.read_bytes()
        which = len(pod.starts) - (2 if previous else 1)
        end = pod.starts[which + 1] if which + 1 < len(pod.starts) else len(data)
        return data[pod.starts[which]:end].decode(errors="replace")

    def all_logs(self, name: str) -> str:
        """Everything pod ``name``'s containers printed, all restarts included."""
        path = self.pods[name].log_path
        return path.read_text(errors="replace") if path.exists() else ""

    def report(self, tail: int = 15) -> str:
        """Job phase, conditions and each pod's status with the end of its log (for failure
        messages)."""
        lines = [f"PyTorchJob {self.name}: {self.phase}"]
        lines += [f"  {c.type}: {c.reason}: {c.message}" for c in self.conditions]
        for pod in self.pods.values():
            lines.append(f"  pod {pod.name}: {pod.phase}, restarts={pod.restarts}, "
                         f"recreations={pod.recreations}, exit codes={pod.exit_codes}, "
                         f"log={pod.log_path}")
            lines += ["    | " + line for line in self.all_logs(pod.name).splitlines()[-tail:]]
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.operator_emulator",
        description="Run a rendered PyTorchJob manifest as local processes, as the Kubeflow "
                    "training operator v1.9 would on a cluster (see the module docstring for what "
                    "differs).")
    parser.add_argument("manifest", help="multi-document YAML file; - reads stdin")
    parser.add_argument("--pvc-root", help="folder holding one folder per PersistentVolumeClaim "
                        "(default: WORKSPACE/pvc)")
    parser.add_argument("--workspace", help="logs and pod folders (default: a new temp folder)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds (default 3600)")
    parser.add_argument("--manifest-port", action="store_true",
                        help="use the Master's pytorchjob-port instead of a free port")
    args = parser.parse_args(argv)
    text = sys.stdin.read() if args.manifest == "-" else Path(args.manifest).read_text()
    workspace = args.workspace or tempfile.mkdtemp(prefix="pytorchjob-")
    try:
        emu = OperatorEmulator.from_yaml(text, workspace, pvc_root=args.pvc_root,
                                         master_port="manifest" if args.manifest_port else None)
        with emu:
            print(f"workspace {emu.workspace}, PVCs in {emu.pvc_root}", flush=True)
            emu.start()
            phase = emu.wait(args.timeout)
    except EmulatorError as err:
        sys.stderr.write(f"operator_emulator: error: {err}\n")
        return 1
    print(emu.report(tail=5))
    return 0 if phase == "Succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
