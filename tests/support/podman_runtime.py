"""Pods' containers as podman containers of the trainer image: :class:`PodmanRuntime`.

The other implementation of :class:`~tests.support.containers.ContainerRuntime` (the first runs
local processes). Given to an operator emulator (``OperatorEmulator(objects, workspace,
runtime=PodmanRuntime(podman))``, likewise ``TrainJobEmulator``), every container start of every
pod becomes ``podman create`` and ``podman start --attach`` of the image the manifest names (it must
be in podman's storage: nothing is pulled), with what the manifest says:

- ``command`` replaces the image's ENTRYPOINT and CMD, ``args`` its CMD (each kept where absent);
  ``env`` as the emulator resolved it, the operator's variables included, unchanged: the master's
  address and port are the manifest's (see below); ``workingDir``;
- volumes: the ConfigMap's files (laid out by the emulator) bind-mounted read-only, a claim's
  folder ``pvc_root/<claim>`` and an ``emptyDir``'s folder of the pod (it outlives a container
  restart, not the pod) bind-mounted, ``readOnly`` mounts read-only; an ``emptyDir`` with
  ``medium: Memory`` (``/dev/shm``) is a tmpfs of its ``sizeLimit``;
- ``securityContext``: ``runAsUser``/``runAsGroup`` as ``--user``, ``fsGroup`` and
  ``supplementalGroups`` as supplementary groups, and, as the kubelet does before it starts a
  container, every volume but the tmpfs handed to ``fsGroup`` (group owner, group read and
  write, set-group-ID folders; read-only volumes group read); ``runAsNonRoot`` refused for a root
  user (the kubelet's CreateContainerConfigError); ``allowPrivilegeEscalation: false`` as
  ``no-new-privileges``; ``capabilities`` dropped and added; ``readOnlyRootFilesystem`` as
  ``--read-only`` with nothing writable but the volumes (podman's own tmpfs on /tmp, /run and
  /var/tmp turned off);
- ``resources.limits``: ``cpu`` as ``--cpus`` (a CFS quota), ``memory`` as ``--memory``;
- network: one podman network per runtime (that is, per job) with DNS, kept up by a container
  that only sleeps (:meth:`PodmanRuntime.ensure_network`); each pod's container has
  the pod's hostname and the names the job's other pods reach it by as network aliases (the
  PyTorchJob operator's Service ``<job>-master-0``, a TrainJob node's
  ``<tj>-node-0-<i>.<tj>``), in a network namespace of its own, so the manifest's own master
  address and port work unchanged (:attr:`PodmanRuntime.pod_network`).

The container's output is appended to the pod's log file by the attached ``podman start``, whose
exit status is the container's (137 after ``podman kill -s KILL``, 128+N for signal N). A restart is
a new container in the same pod (same volume folders); :meth:`PodmanContainer.terminate` is
``podman stop --time GRACE`` (SIGTERM, SIGKILL after the grace period), :meth:`~PodmanContainer.kill`
``podman kill -s KILL``, :meth:`~PodmanContainer.pause` SIGSTOPs the container's processes from
this machine. The command is the container's PID 1, as on a cluster: a signal it has no handler
for (SIGTERM to a plain ``sleep``) is ignored, where the process runtime's command dies of it.

Every container is removed once it has ended or was killed; :meth:`PodmanRuntime.close` (called by
the emulator's ``shutdown``) removes any that are left and the network. Each container and network
also carries the test session's label, which the ``podman`` fixture removes at the end.
"""

from __future__ import annotations

import itertools
import json
import os
import stat
import subprocess
import time
import uuid
from pathlib import Path

from tests.support.container_init import descendants
from tests.support.containers import Container, ContainerRuntime, ContainerSpec, exit_code
from tests.support.pod_runner import EmulatorError
from tests.support.podman import SESSION_LABEL, Podman, last_line

#: Every container and the network of one runtime carry this label with the runtime's id.
RUNTIME_LABEL = "kctl.test-runtime"
#: Seconds a container may take from ``podman start`` to running.
START_TIMEOUT = 120


def set_volume_ownership(root: Path, gid: int, read_only: bool) -> None:
    """What the kubelet does to a volume for the pod's ``fsGroup`` (``SetVolumeOwnership``): every
    file and folder under ``root`` gets group ``gid`` and group read and write (read only for a
    read-only volume); folders also group search and set-group-ID, so what is created in them
    belongs to the group too. Symbolic links are left alone."""
    mask = 0o440 if read_only else 0o660
    for folder, dirs, files in os.walk(root):
        for path in [folder, *(os.path.join(folder, name) for name in dirs + files)]:
            try:
                info = os.lstat(path)
                if stat.S_ISLNK(info.st_mode):
                    continue
                os.lchown(path, -1, gid)
                extra = stat.S_ISGID | 0o110 if stat.S_ISDIR(info.st_mode) else 0
                os.chmod(path, stat.S_IMODE(info.st_mode) | mask | extra)
            except FileNotFoundError:  # removed meanwhile by a running pod (a checkpoint rename)
                continue


class PodmanRuntime(ContainerRuntime):
    """Containers of one job as podman containers on one podman network (see the module
    docstring). One runtime per emulator: its network holds the job's DNS names.

    Args:
        podman: podman with the test session's configuration (fixture ``podman``).
    """

    pod_network = True

    def __init__(self, podman: Podman):
        self.podman = podman
        self.id = uuid.uuid4().hex[:8]
        self.network = f"kctl-job-{self.id}"
        self._network_made = False
        self.used = False  # whether the network was made (before that, podman is not asked)
        self._image_users: dict[str, str] = {}
        self._starts = itertools.count()

    def create(self, spec: ContainerSpec) -> "PodmanContainer":
        if spec.gpus:
            raise EmulatorError(f"{spec.pod}: GPUs in containers are not emulated (the pod "
                                f"wants {len(spec.gpus)})")
        return PodmanContainer(self, spec, f"kctl-{self.id}-{spec.pod}-{next(self._starts)}")

    @property
    def labels(self) -> dict[str, str]:
        return {RUNTIME_LABEL: self.id}

    def ensure_network(self, image: str) -> None:
        """Create the job's network (once), with a container of ``image`` that only sleeps on it
        until :meth:`close`: podman's DNS server (aardvark-dns) runs only while some container is
        on a network, so without it DNS would go down and come back whenever every pod's
        container has ended at once (a killed master and the worker failing with it), and a
        lookup in that moment takes about 20 s to fail (seen as torchrun's "The hostname of the
        client socket cannot be retrieved" after a restart). A cluster's DNS stays up."""
        if self._network_made:
            return
        self.used = True
        proc = self.podman("network", "create", "--label", f"{SESSION_LABEL}={self.podman.session}",
                           "--label", f"{RUNTIME_LABEL}={self.id}", self.network)
        if proc.returncode:
            raise EmulatorError(f"podman network create failed: {last_line(proc.stderr)}")
        self._network_made = True
        holder = self.podman("run", "--detach", "--pull", "never", *self.podman.container_args(
            image, ["infinity"], name=f"kctl-{self.id}-dns", entrypoint="sleep", read_only=True,
            hardened=True, network=self.network, labels=self.labels))
        if holder.returncode:
            raise EmulatorError(f"podman run of the network's holder container failed: "
                                f"{last_line(holder.stderr)}")

    def image_user(self, image: str) -> str:
        """The image's USER (empty: root); refused when podman does not have the image (nothing
        is pulled: a cluster would report ErrImagePull and never start the pod)."""
        if image not in self._image_users:
            proc = self.podman("image", "inspect", "--format", "{{.Config.User}}", image)
            if proc.returncode:
                raise EmulatorError(f"image {image} is not in podman's storage (build it; nothing "
                                    f"is pulled): {last_line(proc.stderr)}")
            self._image_users[image] = proc.stdout.strip()
        return self._image_users[image]

    def containers(self) -> list[str]:
        """Names of this runtime's containers that still exist."""
        if not self.used:
            return []
        proc = self.podman("ps", "--all", "--filter", f"label={RUNTIME_LABEL}={self.id}",
                           "--format", "{{.Names}}")
        return proc.stdout.split()

    def network_exists(self) -> bool:
        return self.podman("network", "exists", self.network).returncode == 0

    def leftover_processes(self) -> list[int]:
        """Processes (as this machine numbers them) of this runtime's containers still running."""
        left = []
        for name in self.containers():
            proc = self.podman("inspect", "--format", "{{.State.Pid}}", name)
            pid = int(proc.stdout.strip() or 0) if proc.returncode == 0 else 0
            if pid > 0:
                left += [pid, *descendants(pid)]
        return left

    def close(self) -> None:
        """Remove every container of this runtime (running ones are killed) and its network."""
        if self.containers():
            self.podman("rm", "--force", "--time", "0", "--filter",
                        f"label={RUNTIME_LABEL}={self.id}", timeout=300)
        if self._network_made:
            self.podman("network", "rm", "--force", self.network)
            self._network_made = False


class PodmanContainer(Container):
    """One container start of a pod as a podman container (see the module docstring).

    Attributes:
        name: The podman container's name.
        args: The arguments of ``podman create`` (options, image, the command's arguments).
    """

    def __init__(self, runtime: PodmanRuntime, spec: ContainerSpec, name: str):
        self.runtime, self.spec, self.name = runtime, spec, name
        security = spec.security
        user = None
        if security.run_as_user is not None:
            user = str(security.run_as_user)
            if security.run_as_group is not None:
                user += f":{security.run_as_group}"
        elif security.run_as_group is not None:
            raise EmulatorError(f"{spec.pod}: runAsGroup without runAsUser is not emulated")
        groups = [g for g in (security.fs_group, *security.supplemental_groups) if g is not None]
        entrypoint, args = None, spec.args or ()
        if spec.command:
            entrypoint = json.dumps(list(spec.command))
        mounts = [(m.host_path, m.container_path, "ro" if m.read_only else "rw")
                  for m in spec.mounts if m.memory_limit is None]
        tmpfs = {m.container_path: f"tmpfs-size={m.memory_limit}" if m.memory_limit else ""
                 for m in spec.mounts if m.memory_limit is not None}
        self.args = ["--pull", "never", *runtime.podman.container_args(
            spec.image, args, name=name, user=user, entrypoint=entrypoint, env=spec.env,
            mounts=mounts, tmpfs=tmpfs, read_only=security.read_only_root,
            network=runtime.network, hostname=spec.hostname, aliases=spec.dns_names,
            workdir=spec.working_dir, group_add=groups, cap_drop=security.drop,
            cap_add=security.add, no_new_privileges=not security.allow_privilege_escalation,
            cpus=spec.cpu_limit, memory=spec.memory_limit, labels=runtime.labels)]
        self._client: subprocess.Popen | None = None
        self._stopper: subprocess.Popen | None = None
        self._pid = 0
        self._removed = False

    @property
    def pid(self) -> int:
        """The container's PID 1 as this machine numbers it (0 before it ran)."""
        return self._pid

    @property
    def started(self) -> bool:
        return self._client is not None

    def _check_non_root(self) -> None:
        """The kubelet's ``runAsNonRoot`` check (also: the image must be here)."""
        security, image_user = self.spec.security, self.runtime.image_user(self.spec.image)
        uid = image_user.split(":")[0]
        if security.run_as_user is not None:
            uid = str(security.run_as_user)
        if not security.run_as_non_root:
            return
        if uid and not uid.isdigit():
            raise EmulatorError(f"{self.spec.pod}: container has runAsNonRoot and image has "
                                f"non-numeric user ({uid}), cannot verify user is non-root")
        if uid in ("", "0"):
            raise EmulatorError(f"{self.spec.pod}: container has runAsNonRoot and image will run "
                                "as root")

    def start(self) -> None:
        podman = self.runtime.podman
        self._check_non_root()
        self.runtime.ensure_network(self.spec.image)
        fs_group = self.spec.security.fs_group
        if fs_group is not None:
            for mount in self.spec.mounts:
                if mount.memory_limit is None:
                    set_volume_ownership(mount.volume_root or mount.host_path, fs_group,
                                         mount.read_only)
        created = podman("create", *self.args)
        if created.returncode:
            raise EmulatorError(f"{self.spec.pod}: podman create failed: "
                                f"{last_line(created.stderr)}")
        with open(self.spec.log_path, "ab") as log:
            self._client = subprocess.Popen(["podman", "start", "--attach", self.name],
                                            env=podman.env, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while self._client.poll() is None and not self._pid:
            proc = podman("inspect", "--format", "{{.State.Pid}}", self.name)
            self._pid = int(proc.stdout.strip() or 0) if proc.returncode == 0 else 0
            if not self._pid:
                if time.monotonic() > deadline:
                    self.kill()
                    raise EmulatorError(f"{self.spec.pod}: container {self.name} did not start "
                                        f"within {START_TIMEOUT}s")
                time.sleep(0.1)

    def _ended(self, code: int) -> int:
        """Remove the ended container (once) and return its exit code as Kubernetes reports it."""
        if not self._removed:
            self._removed = True
            if self._stopper is not None:
                self._stopper.wait(timeout=self.spec.grace_period + 60)
            self.runtime.podman("rm", "--force", "--ignore", "--time", "0", self.name)
        return exit_code(code)

    def poll(self) -> int | None:
        if self._client is None:
            raise RuntimeError(f"the container of {self.spec.pod} was not started")
        code = self._client.poll()
        return None if code is None else self._ended(code)

    def wait(self) -> int:
        return self._ended(self._client.wait())

    def terminate(self) -> None:
        """``podman stop --time GRACE``: SIGTERM to PID 1, SIGKILL after the grace period."""
        self._stopper = subprocess.Popen(
            ["podman", "stop", "--time", str(self.spec.grace_period), self.name],
            env=self.runtime.podman.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        """``podman kill -s KILL``, then wait for the container's end and remove it."""
        if self._client is None:
            return
        if self._client.poll() is None:
            self.runtime.podman("kill", "--signal", "KILL", self.name)
            try:
                self._client.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.runtime.podman("rm", "--force", "--time", "0", self.name)
                self._client.wait(timeout=60)
        self._ended(self._client.returncode)

    def processes(self) -> list[int]:
        if not self._pid or self._client is None or self._client.poll() is not None:
            return []
        return [self._pid, *descendants(self._pid)]
