"""How an emulated pod's container runs: the :class:`ContainerRuntime` interface and its
implementation :class:`ProcessRuntime`, a local process tree.

The operator emulators decide which pods exist, what their containers are and when they start,
restart or stop (:mod:`tests.support.operator_emulator` for PyTorchJobs,
:mod:`tests.support.trainjob_emulator` for TrainJobs); :mod:`tests.support.pod_runner` does the
kubelet's part (volumes, environment, ``$(VAR)`` expansion) and hands a runtime a
:class:`ContainerSpec` in container terms. The runtime makes a :class:`Container` of it, which the
emulators only start, signal, watch and read through its log file. The other pair of these two
classes, :mod:`tests.support.podman_runtime`, runs each container start as a podman container of
the trainer image; the operator code does not change.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from tests.support import container_init

REPO = Path(__file__).resolve().parents[2]
INIT = Path(container_init.__file__).resolve()
_BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Mount:
    """A volumeMount: where the container sees it and the local folder (or file) behind it.

    Attributes:
        container_path: The ``mountPath``.
        host_path: The volume's folder here (its ``subPath`` inside it, where one is given).
        read_only: ``readOnly: true``, or a ConfigMap volume (always read-only).
        memory_limit: For an ``emptyDir`` with ``medium: Memory``: its ``sizeLimit`` in bytes,
            0 without one (a tmpfs); ``None`` for any other volume.
        volume_root: The whole volume's folder (the kubelet applies ``fsGroup`` to it, not only
            to a ``subPath``); ``None``: ``host_path``.
    """

    container_path: str
    host_path: Path
    read_only: bool = False
    memory_limit: int | None = None
    volume_root: Path | None = None


@dataclass(frozen=True)
class Security:
    """The container's ``securityContext`` merged over the pod's, as the kubelet applies it.

    Attributes:
        run_as_user, run_as_group: ``runAsUser``/``runAsGroup`` (``None``: the image's USER).
        run_as_non_root: ``runAsNonRoot``: the kubelet refuses to start a container whose user
            would be root.
        fs_group: The pod's ``fsGroup``: the volumes are made writable by this group and it is a
            supplementary group of the container's processes.
        supplemental_groups: The pod's ``supplementalGroups``.
        allow_privilege_escalation: ``False``: the ``no_new_privs`` flag is set.
        drop, add: ``capabilities.drop``/``add``.
        read_only_root: ``readOnlyRootFilesystem``.
    """

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool = False
    fs_group: int | None = None
    supplemental_groups: tuple[int, ...] = ()
    allow_privilege_escalation: bool = True
    drop: tuple[str, ...] = ()
    add: tuple[str, ...] = ()
    read_only_root: bool = False


@dataclass(frozen=True)
class ContainerSpec:
    """One start of a pod's container, as the kubelet hands it to the runtime.

    Args:
        pod: The pod's name.
        hostname: The pod's hostname (``HOSTNAME`` inside).
        image: The container's ``image``.
        command: ``command`` after ``$(VAR)`` expansion; ``None``: the image's ENTRYPOINT.
        args: ``args`` after ``$(VAR)`` expansion; ``None``: the image's CMD (without a command).
        env: The container's variables in order, resolved and expanded, in container terms.
        working_dir: ``workingDir``; ``None``: the image's WORKDIR.
        mounts: The pod's volumes as this container mounts them, longest path first.
        gpus: This machine's GPUs the pod was given (empty: none).
        scratch: A folder of this pod incarnation where the runtime may keep its own files.
        log_path: The file that collects the container's output (appended to).
        grace_period: Seconds between SIGTERM and SIGKILL when the container is stopped.
        security: The ``securityContext`` in effect.
        cpu_limit: ``resources.limits.cpu`` in cores (``None``: no limit).
        memory_limit: ``resources.limits.memory`` in bytes (``None``: no limit).
        dns_names: The names other pods of the job reach this one by (the PyTorchJob's Service
            of the pod, a TrainJob node's ``<hostname>.<subdomain>``).
    """

    pod: str
    hostname: str
    image: str
    command: tuple[str, ...] | None
    args: tuple[str, ...] | None
    env: dict[str, str]
    working_dir: str | None
    mounts: tuple[Mount, ...]
    gpus: tuple[int, ...]
    scratch: Path
    log_path: Path
    grace_period: int
    security: Security = Security()
    cpu_limit: float | None = None
    memory_limit: int | None = None
    dns_names: tuple[str, ...] = ()


class Container(ABC):
    """One container start, made by a runtime and not running until :meth:`start`."""

    @property
    @abstractmethod
    def pid(self) -> int:
        """The process that stands for the container on this machine (its init)."""

    @abstractmethod
    def start(self) -> None:
        """Start it; its output is appended to the spec's ``log_path``."""

    @abstractmethod
    def poll(self) -> int | None:
        """``None`` while it runs; then its exit code as Kubernetes reports it (128+N for signal
        N)."""

    @abstractmethod
    def wait(self) -> int:
        """Wait for it to end; its exit code as :meth:`poll` gives it."""

    @abstractmethod
    def terminate(self) -> None:
        """The kubelet's graceful stop: SIGTERM now, SIGKILL after the grace period."""

    @abstractmethod
    def kill(self) -> None:
        """SIGKILL every process of the container now and wait for them to be gone."""

    @abstractmethod
    def processes(self) -> list[int]:
        """Process ids of the running container (empty once it has ended)."""

    @property
    @abstractmethod
    def started(self) -> bool:
        """Whether :meth:`start` was called."""

    @property
    def running(self) -> bool:
        return self.started and self.poll() is None

    def pause(self) -> None:
        """SIGSTOP every process of the container: a hung node (SIGCONT or :meth:`kill` ends
        it)."""
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass


def exit_code(returncode: int) -> int:
    """A process's return code as Kubernetes reports a container's: ``128 + N`` for signal N."""
    return 128 - returncode if returncode < 0 else returncode


class ContainerRuntime(ABC):
    """Makes containers of specs, for one job at a time.

    Attributes:
        pod_network: Whether each pod has a network namespace of its own in which the other pods'
            :attr:`ContainerSpec.dns_names` resolve; then the emulators leave the manifest's
            master address and port as they are. Otherwise every pod shares this machine's
            network and the emulators point the master's address at the loopback and pick a free
            port.
    """

    pod_network = False

    @abstractmethod
    def create(self, spec: ContainerSpec) -> Container:
        """The container of ``spec``, created, not started."""

    def leftover_processes(self) -> list[int]:
        """Processes of containers this runtime made that still run (beyond those the emulator
        finds by their working directory)."""
        return []

    def close(self) -> None:
        """Remove what the runtime made for the job (after its containers were killed)."""


@dataclass(frozen=True)
class Image:
    """What the process runtime knows of the container image; the defaults are the repository's
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


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


class ProcessRuntime(ContainerRuntime):
    """Each container is a local process tree under :mod:`tests.support.container_init`, which
    takes every process the command started with it when it ends or is killed, as a PID namespace
    does (``torchrun`` starts its workers in sessions of their own).

    Args:
        image: The image's layout (see :class:`Image`); the same for every container.
    """

    def __init__(self, image: Image = Image()):
        self.image = image

    def create(self, spec: ContainerSpec) -> "LocalContainer":
        return LocalContainer(spec, self.image)


class LocalContainer(Container):
    """A container as a local process: its writable layer is a fresh folder, its paths are mapped
    to local ones, its environment is the image's plus the container's.

    Attributes:
        rootfs: The container's writable folder (the image's WORKDIR, HOME, /tmp live in it).
        env: The process's whole environment.
        argv: The command line, container paths mapped.
        cwd: The working directory on this machine.
    """

    def __init__(self, spec: ContainerSpec, image: Image):
        self.spec, self.image = spec, image
        self.rootfs = Path(tempfile.mkdtemp(prefix="container-", dir=spec.scratch))
        for path, local in image.files:  # the image's content, read from the repository
            link = Path(f"{self.rootfs}{path}")
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(local)
        for path in (image.workdir, image.home, "/tmp"):
            Path(f"{self.rootfs}{path}").mkdir(parents=True, exist_ok=True)
        self.env = {**self.image_env(),
                    **{name: self.rewrite(value) for name, value in spec.env.items()}}
        command, args = spec.command, spec.args
        if not command:
            command, args = image.entrypoint, args if args else image.cmd
        self.argv = [self.rewrite(word) for word in (*command, *(args or ()))]
        self.cwd = Path(self.local_path(spec.working_dir or image.workdir))
        self.cwd.mkdir(parents=True, exist_ok=True)
        self._process: subprocess.Popen | None = None

    def local_path(self, path: str) -> str:
        """Where the container path ``path`` is on this machine: in a volume's folder, in the
        container's writable folder (the image's own folders, and any path this machine does not
        have), or unchanged (this machine's ``/usr/bin/env`` stands for the image's)."""
        for mount in self.spec.mounts:
            if _under(path, mount.container_path):
                return str(mount.host_path) + path[len(mount.container_path):]
        image_owned = (self.image.workdir, self.image.home, "/tmp",
                       *(p for p, _ in self.image.files))
        if any(_under(path, owned) for owned in image_owned) or not os.path.exists(path):
            return f"{self.rootfs}{path}"
        return path

    def rewrite(self, value: str) -> str:
        """A whole absolute path, or the path after ``=`` in ``key=/path``, mapped by
        :meth:`local_path`; any other value unchanged."""
        if value.startswith("/"):
            return self.local_path(value)
        key, sep, rest = value.partition("=")
        if sep and rest.startswith("/"):
            return f"{key}={self.local_path(rest)}"
        return value

    def image_env(self) -> dict[str, str]:
        """What the image and the runtime provide before the container's own variables."""
        return {"PATH": f"{self.image.bin_dir}:{_BASE_PATH}", "HOSTNAME": self.spec.hostname,
                "HOME": self.local_path(self.image.home), "TMPDIR": self.local_path("/tmp"),
                **dict(self.image.env), "PYTHONPATH": str(self.image.python_path),
                "CUDA_VISIBLE_DEVICES": ",".join(map(str, self.spec.gpus))}

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def started(self) -> bool:
        return self._process is not None

    def start(self) -> None:
        with open(self.spec.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, str(INIT), str(os.getpid()), str(self.spec.grace_period),
                 *self.argv],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                cwd=self.cwd, start_new_session=True)

    def poll(self) -> int | None:
        if self._process is None:
            raise RuntimeError(f"the container of {self.spec.pod} was not started")
        code = self._process.poll()
        return None if code is None else exit_code(code)

    def wait(self) -> int:
        return exit_code(self._process.wait())

    def terminate(self) -> None:
        self._process.send_signal(signal.SIGTERM)  # the init forwards it, SIGKILLs after the grace

    def kill(self) -> None:
        container_init.kill_descendants(self._process.pid)
        try:
            os.kill(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._process.wait()

    def processes(self) -> list[int]:
        if self._process is None or self._process.poll() is not None:
            return []
        return [self._process.pid, *container_init.descendants(self._process.pid)]
