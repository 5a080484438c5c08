"""The trainer image, built from the Dockerfile with podman, for the tests marked ``image``.

Fixture ``podman`` (session): Debian's podman, runc and debootstrap (installed when missing, which
needs root and the Debian archive) and a ``containers.conf`` of this test session, given to every
podman call as ``CONTAINERS_CONF`` instead of editing /etc. It holds the host fixes of
``shared/reference/container-build-facts.md``: runc (crun refuses this VM's cgroup layout) and
ulimits below the host's hard limits (podman's defaults exceed them).

Fixture ``trainer_image`` (session): the image's name. It builds the CPU base
(``image/build-cpu-base.sh``: Debian plus torch's CPU wheel, kept between runs in podman's storage
and rebuilt only when its inputs change), then the Dockerfile on it (``--format docker``, so SHELL
and its pipefail are kept; pip gets the host's CA bundle, and ``PIP_INDEX_URL`` if set, as build
secrets). Both builds run twice, so the summary at the end shows the cold (or already cached)
build and the cached one.

Fixture ``podman_runtime`` (per test): a :class:`~tests.support.podman_runtime.PodmanRuntime`,
with which the operator emulators run a job's pods as containers of the image.

Where this cannot work (not Linux, not root, no apt-get, a failed install or build), every test
that needs the image fails with one line saying why: CI must not skip them silently.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import pytest

REPO = Path(__file__).resolve().parents[2]
#: The torch release of the CPU base: the one the README installs.
TORCH_VERSION = "2.13.0"
IMAGE = "localhost/kctl-trainer:test"
PACKAGES = {"podman": "podman", "runc": "runc", "debootstrap": "debootstrap"}
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
"""
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
#: Every container a test starts carries this label with the session's id, so that the end of the
#: session removes whatever a failed test left behind.
SESSION_LABEL = "kctl.test-session"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "image: builds the trainer image with podman and runs it (fixture "
        "trainer_image; the first build takes minutes, needs root; deselect with -m 'not image')")


def pytest_terminal_summary(terminalreporter):
    if BUILDS:
        terminalreporter.write_sep("-", "trainer image builds")
        for build in BUILDS:
            size = f", {build.size / 1e9:.2f} GB" if build.size else ""
            terminalreporter.write_line(f"{build.what}: {build.seconds:.1f} s ({build.cache}{size})")


def _unavailable(reason: str):
    pytest.fail(f"trainer image needed but unavailable: {reason}", pytrace=False)


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


@dataclass
class Podman:
    """podman with this session's ``containers.conf``.

    Attributes:
        conf: The ``containers.conf`` every call gets as ``CONTAINERS_CONF``.
        session: The value of the ``kctl.test-session`` label on every container started here.
    """

    conf: Path
    session: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def env(self) -> dict:
        return {**os.environ, "CONTAINERS_CONF": str(self.conf)}

    def __call__(self, *args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
        """``podman ARGS``, text output captured, not checked."""
        return subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, **kwargs)

    def container_args(self, image: str, args: Sequence[str] = (), *, name: str,
                       user: str | None = None, entrypoint: str | None = None,
                       env: Mapping[str, str] | None = None,
                       mounts: Sequence[tuple[Path | str, str, str]] = (),
                       tmpfs: Mapping[str, str] | None = None, read_only: bool = False,
                       hardened: bool = False, network: str = "none",
                       hostname: str | None = None, aliases: Sequence[str] = (),
                       workdir: str | None = None, group_add: Sequence[int] = (),
                       cap_drop: Sequence[str] = (), cap_add: Sequence[str] = (),
                       no_new_privileges: bool = False, cpus: float | None = None,
                       memory: int | None = None,
                       labels: Mapping[str, str] | None = None) -> list[str]:
        """The arguments of ``podman run`` (or ``create``) for a container like a pod's.

        Args:
            image: Image to run; ``args`` follow it (the entrypoint's arguments).
            name: Container name.
            user: ``UID[:GID]`` (runAsUser/runAsGroup); None keeps the image's USER.
            entrypoint: Replaces the image's ENTRYPOINT (Kubernetes ``command``; a JSON list
                for several words), and with it the image's CMD.
            env: Environment variables to add.
            mounts: ``(host path, container path, "rw" or "ro")`` bind mounts (volumes).
            tmpfs: Container path -> tmpfs options (``size=...``), e.g. ``/tmp`` and ``/dev/shm``
                (emptyDir, ``medium: Memory`` and its sizeLimit).
            read_only: A read-only root filesystem (readOnlyRootFilesystem) and nothing else
                writable: podman's own tmpfs on /tmp, /run and /var/tmp is turned off.
            hardened: All capabilities dropped and no privilege escalation, as the manifests'
                securityContext says (``cap_drop=["ALL"], no_new_privileges=True``).
            network: ``none``, ``host`` or a podman network's name.
            hostname: The container's hostname.
            aliases: Names the container has on ``network`` (its DNS answers them).
            workdir: Replaces the image's WORKDIR (``workingDir``).
            group_add: Supplementary groups (fsGroup, supplementalGroups).
            cap_drop, cap_add: Capabilities to drop and add.
            no_new_privileges: Set ``no_new_privs`` (``allowPrivilegeEscalation: false``).
            cpus: CPU limit in cores.
            memory: Memory limit in bytes.
            labels: Labels besides the session's.
        """
        command = ["--name", name, "--label", f"{SESSION_LABEL}={self.session}",
                   "--network", network]
        for key, value in (labels or {}).items():
            command += ["--label", f"{key}={value}"]
        if hostname is not None:
            command += ["--hostname", hostname]
        for alias in aliases:
            command += ["--network-alias", alias]
        if user is not None:
            command += ["--user", user]
        for group in group_add:
            command += ["--group-add", str(group)]
        if entrypoint is not None:
            command += ["--entrypoint", entrypoint]
        if workdir is not None:
            command += ["--workdir", workdir]
        for key, value in (env or {}).items():
            command += ["--env", f"{key}={value}"]
        for host, inside, mode in mounts:
            command += ["--volume", f"{host}:{inside}:{mode}"]
        for inside, options in (tmpfs or {}).items():
            command += ["--mount", ",".join(["type=tmpfs", f"destination={inside}",
                                             *([options] if options else [])])]
        if read_only:
            command += ["--read-only", "--read-only-tmpfs=false"]
        if hardened:
            cap_drop, no_new_privileges = ["ALL", *cap_drop], True
        for capability in cap_drop:
            command += ["--cap-drop", capability]
        for capability in cap_add:
            command += ["--cap-add", capability]
        if no_new_privileges:
            command += ["--security-opt", "no-new-privileges"]
        if cpus is not None:
            command += ["--cpus", f"{cpus:g}"]
        if memory is not None:
            command += ["--memory", str(memory)]
        return [*command, image, *args]

    def run_container(self, image: str, args: Sequence[str] = (), *, timeout: float = 300,
                      **options) -> subprocess.CompletedProcess:
        """Run a container to its end (``podman run --rm``; options as :meth:`container_args`,
        a fresh name by default); on timeout it is removed and the test fails."""
        name = options.pop("name", None) or f"kctl-test-{uuid.uuid4().hex[:8]}"
        try:
            return self("run", "--rm", *self.container_args(image, args, name=name, **options),
                        timeout=timeout)
        except subprocess.TimeoutExpired:
            self("rm", "--force", "--time", "0", name)
            pytest.fail(f"container {name} still running after {timeout:.0f}s", pytrace=False)

    def remove_session_containers(self) -> None:
        """Remove every container and network this session made that is still there."""
        self("rm", "--force", "--time", "0", "--filter", f"label={SESSION_LABEL}={self.session}",
             timeout=300)
        self("network", "prune", "--force", "--filter", f"label={SESSION_LABEL}={self.session}")


def _install_missing() -> None:
    missing = [package for tool, package in PACKAGES.items() if not shutil.which(tool)]
    if not missing:
        return
    if not shutil.which("apt-get"):
        _unavailable(f"{', '.join(missing)} missing and no apt-get to install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    for command in (["apt-get", *lock, "update", "-qq"],
                    ["apt-get", *lock, "install", "-y", "-qq", *missing]):
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900,
                              stdin=subprocess.DEVNULL)
        if proc.returncode:
            _unavailable(f"{' '.join(command[:1] + command[3:])} failed: "
                         f"{last_line(proc.stderr or proc.stdout)}")


@pytest.fixture(scope="session")
def podman(tmp_path_factory):
    """podman, installed when missing, with this session's ``containers.conf``; the containers
    the session started are removed at its end."""
    if not sys.platform.startswith("linux"):
        _unavailable("needs Linux")
    if os.geteuid() != 0:
        _unavailable("podman (installing it, building with debootstrap) runs as root here")
    _install_missing()
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    engine = Podman(conf)
    info = engine("info", "--format", "{{.Host.OCIRuntime.Name}}")
    if info.returncode:
        _unavailable(f"podman info failed: {last_line(info.stderr)}")
    try:
        yield engine
    finally:
        engine.remove_session_containers()


@dataclass
class Build:
    """One build step the ``trainer_image`` fixture ran: what, how long, and its output."""

    what: str
    seconds: float
    output: str
    size: int | None = None  # bytes of the image it made, where recorded

    @property
    def cache(self) -> str:
        """What was taken from the cache, in words."""
        if "is up to date" in self.output:
            return "cached"
        steps = len(re.findall(r"^STEP \d+/\d+: (?!FROM )", self.output, re.M))
        cached = len(re.findall(r"^--> Using cache ", self.output, re.M))
        return f"{cached} of {steps} steps after FROM cached" if steps else "built"


#: Every build step of this session, in order, shown in the terminal summary.
BUILDS: list[Build] = []


def _timed(what: str, command: list[str], env: dict, timeout: float) -> str:
    """Run a build step, record it in :data:`BUILDS` and return its standard output."""
    start = time.monotonic()
    try:
        proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        _unavailable(f"{what} did not finish within {timeout:.0f}s")
    if proc.returncode:
        _unavailable(f"{what} failed (exit {proc.returncode}): {last_line(proc.stderr)}")
    BUILDS.append(Build(what, time.monotonic() - start, proc.stdout + proc.stderr))
    return proc.stdout


def build_cpu_base(podman: Podman, what: str) -> str:
    """Build (or find cached) the CPU base image; return its name."""
    env = {**podman.env, "TORCH_VERSION": TORCH_VERSION, "PYTHON": sys.executable}
    stdout = _timed(what, ["bash", str(REPO / "image" / "build-cpu-base.sh")], env, timeout=1800)
    return last_line(stdout)


def build_args(base: str, network: str = "host") -> list[str]:
    """``podman build`` arguments of the trainer image on ``base`` (no tag, no context)."""
    return ["build", "--format", "docker", "--network", network,
            "--build-arg", f"BASE_IMAGE={base}", "--build-arg", f"TORCH_VERSION={TORCH_VERSION}",
            # the CPU torch: PyPI's torchvision (a CUDA build), which MMPretrain needs, cannot load
            "--build-arg", "EXTRAS=trainer"]


def pip_secrets(tmp: Path) -> list[str]:
    """Build secrets that give pip this machine's CA bundle and, if set, its ``PIP_INDEX_URL``."""
    args = []
    bundle = os.environ.get("PIP_CERT") or HOST_CA_BUNDLE
    if Path(bundle).is_file():
        args += ["--secret", f"id=pip-ca,src={bundle}"]
    if os.environ.get("PIP_INDEX_URL"):
        index = tmp / "pip-index-url"
        index.write_text(os.environ["PIP_INDEX_URL"])
        args += ["--secret", f"id=pip-index-url,src={index}"]
    return args


def image_size(podman: Podman, image: str) -> int:
    """The size of ``image`` in bytes, as ``podman images`` counts it (all its layers)."""
    proc = podman("image", "inspect", "--format", "{{.Size}}", image)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout)


@pytest.fixture(scope="session")
def cpu_base(podman) -> str:
    """The CPU base image (Debian plus torch's CPU wheel), built or found cached; its name."""
    base = build_cpu_base(podman, "CPU base (image/build-cpu-base.sh)")
    BUILDS[-1].size = image_size(podman, base)
    return base


@pytest.fixture(scope="session")
def trainer_image(podman, cpu_base, tmp_path_factory) -> str:
    """The trainer image built from this checkout's Dockerfile on the CPU base; its name."""
    build = ["podman", *build_args(cpu_base), *pip_secrets(tmp_path_factory.mktemp("build")),
             "--tag", IMAGE, "."]
    _timed("trainer image (podman build)", build, podman.env, timeout=1800)
    BUILDS[-1].size = image_size(podman, IMAGE)
    build_cpu_base(podman, "CPU base again")
    _timed("trainer image again", build, podman.env, timeout=600)
    # The image this build replaced, and the layers only it used: not kept for ever.
    podman("image", "prune", "--force", "--filter", "label=kctl.cpu-base.inputs", timeout=300)
    return IMAGE


@pytest.fixture
def podman_runtime(podman, trainer_image):
    """A :class:`~tests.support.podman_runtime.PodmanRuntime` for one job's pods, the trainer
    image built; closed at the end of the test (whatever the emulator left is removed)."""
    from tests.support.podman_runtime import PodmanRuntime  # it imports this module

    runtime = PodmanRuntime(podman)
    yield runtime
    runtime.close()
