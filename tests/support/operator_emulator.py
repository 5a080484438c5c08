"""Run a rendered PyTorchJob on this machine the way Kubeflow's training operator v1.9 would.

(A TrainJob of Kubeflow Trainer v2.3.0 runs in :mod:`tests.support.trainjob_emulator`; the
command-line entry at the end of this module runs either kind. What both share, the kubelet's part,
is :mod:`tests.support.pod_runner`; how a container runs is :mod:`tests.support.containers`.)

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
   after ``=`` in ``key=/path``) by the process runtime (:meth:`LocalContainer.local_path
   <tests.support.containers.LocalContainer.local_path>`): under a mountPath -> that
   volume's folder; the image's own folders (``WORKDIR``, ``HOME``, ``/tmp``) and paths this
   machine does not have -> the container's writable folder; other paths that exist here are left
   alone (``/usr/bin/env`` stands for the image's). Paths inside files (a config naming
   ``/data/...``) are not rewritten.
4. The image (:class:`~tests.support.containers.Image`, defaults from the repository's
   ``Dockerfile``): ``python`` and
   ``torchrun`` are this interpreter's (its folder is first on ``PATH``; so ``torchrun`` is
   PyTorch's, which ends with 1 when SIGTERM stops it, not the image's ``image/torchrun.sh``,
   which ends with the ranks' 143), the repository is on
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
    ``status.podIP``, ``metadata.labels[...]``, ``metadata.annotations[...]``) and
    ``configMapKeyRef``.

Container mode
--------------
With ``runtime=PodmanRuntime(podman)`` (:mod:`tests.support.podman_runtime`, tests marked
``image``) every container start is a podman container of the image the manifest names, built
from this checkout. That removes deviations 1 to 4 and most of 6:

- 1 and 2: each pod has a network namespace of its own on one podman network per job, where the
  pod's Service name (``<job>-master-0``, ``<job>-worker-0``) resolves to it (a network alias), so
  the operator's ``MASTER_ADDR``, ``MASTER_PORT`` and ``PET_*`` values are used unchanged and a
  pod's own address is not the master's;
- 3: volumes are mounted at their ``mountPath``; nothing is rewritten;
- 4: the image is the real one (its Python, installed packages, ``ENV``, ``USER``, ``WORKDIR``,
  ENTRYPOINT/CMD), and the command runs as the container's PID 1, so signals reach it as on a
  cluster (``torchrun`` gets the SIGTERM of ``podman stop``);
- 6: ``runAsUser``/``runAsGroup``, ``fsGroup`` (the volumes' group set as the kubelet sets it, and
  a supplementary group), ``runAsNonRoot`` (checked against the image's user),
  ``allowPrivilegeEscalation: false``, dropped capabilities, ``readOnlyRootFilesystem``,
  ``readOnly`` mounts, CPU and memory limits (a CFS quota and a memory cgroup limit) and the
  ``sizeLimit`` of a ``medium: Memory`` emptyDir (a tmpfs of that size) are enforced.

What stays as in process mode: 5 (GPUs are refused in containers: the GPU runs use process mode),
7 to 10, and of 6: requests (no scheduling), ``ephemeral-storage``, the ``sizeLimit`` of a
disk-backed emptyDir, and the seccomp profile (podman's default applies, whatever the manifest
says). ``status.podIP`` is still ``127.0.0.1``, and Kubernetes' Service-link variables are
absent. Every container start takes about a second more (``podman create`` and ``start``).

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
(``-`` reads the manifest from stdin), e.g. piped from ``kctl train ... --dry-run``; a manifest
holding a TrainJob runs in :class:`~tests.support.trainjob_emulator.TrainJobEmulator`.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time

from tests.support.containers import REPO
from tests.support.pod_runner import (LOCAL_ADDR, Condition, EmulatorError, EmulatorTimeout, Pod,
                                      PodRunner, gpu_count, host_gpu_count, load_manifest)
from tests.support.trainjob_emulator import TrainJobEmulator

__all__ = ["REPO", "EmulatorError", "EmulatorTimeout", "LOCAL_MASTER_ADDR", "OperatorEmulator",
           "emulator_for", "load_manifest", "operator_env"]

#: The operator's names (kubeflow/training-operator v1.9 ``pytorch_types.go``).
CONTAINER_NAME = "pytorch"
PORT_NAME = "pytorchjob-port"
DEFAULT_PORT = 23456
DEFAULT_RESTART_POLICY = "OnFailure"
REPLICA_TYPES = ("Master", "Worker")

#: What a local process is told instead of the master's Service name (deviation 1).
LOCAL_MASTER_ADDR = LOCAL_ADDR


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


# ---------------------------------------------------------------------------------------------
# The operator
# ---------------------------------------------------------------------------------------------

class OperatorEmulator(PodRunner):
    """Run the PyTorchJob in ``objects`` as local processes (see the module docstring).

    Args:
        objects: The manifest's objects (one PyTorchJob, its ConfigMaps and PVCs).
        workspace: A folder of the emulator's own: logs (``logs/<pod>.log``), pod folders.
        pvc_root: Where PersistentVolumeClaims live, one folder each. Defaults to
            ``workspace/pvc``. A claim the manifest does not create must already exist there (a pod
            using a missing claim would stay Pending on a cluster).
        master_port: The port local processes get as ``MASTER_PORT``; ``None`` (default) picks a
            free one, ``"manifest"`` keeps the Master's ``pytorchjob-port``.
        runtime: How containers run (:mod:`tests.support.containers`). Defaults to local
            processes of the trainer image's layout.
        restart_delay: The kubelet's CrashLoopBackOff: a container's first restart is immediate,
            the next wait this many seconds, doubling up to 30 times it. Defaults to 10 (the
            kubelet's 10 s to 300 s).
        grace_period: Seconds between SIGTERM and SIGKILL when a pod is stopped. Defaults to 5.
        host_gpus: GPUs this machine offers to pods. Defaults to ``nvidia-smi -L``'s count.
    """

    kind = "PyTorchJob"
    SUCCEEDED = "Succeeded"

    def __init__(self, objects: list[dict], workspace, *, pvc_root=None,
                 master_port: int | str | None = None, runtime=None,
                 restart_delay: float = 10.0, grace_period: int = 5,
                 host_gpus: int | None = None):
        super().__init__(objects, workspace, pvc_root=pvc_root, runtime=runtime,
                         restart_delay=restart_delay, grace_period=grace_period)
        run_policy = self.job["spec"].get("runPolicy") or {}
        self.backoff_limit = run_policy.get("backoffLimit")
        self.active_deadline = run_policy.get("activeDeadlineSeconds")
        if self.job["spec"].get("elasticPolicy") is not None:
            raise EmulatorError("elasticPolicy is not emulated")
        if "Master" in self.job["spec"]["pytorchReplicaSpecs"]:
            self.local_port = self.choose_port(master_port, manifest_master_port(self.job))
        self.pods = self._make_pods()
        pods = list(self.pods.values())
        shares = self.assign_gpus([gpu_count(pod.container) for pod in pods],
                                  host_gpu_count() if host_gpus is None else host_gpus)
        for pod, gpus in zip(pods, shares):
            pod.gpus = gpus
            self.check_volumes(pod.name, pod.template, pod.container)

    # -- set-up ---------------------------------------------------------------------------------

    def _local_values(self) -> dict[str, str]:
        """The operator's variables whose values the local network needs replaced (deviations 1,
        2)."""
        local = {"MASTER_ADDR": LOCAL_MASTER_ADDR, "PET_MASTER_ADDR": LOCAL_MASTER_ADDR}
        if "Master" in self.job["spec"]["pytorchReplicaSpecs"]:
            local.update(MASTER_PORT=str(self.local_port), PET_MASTER_PORT=str(self.local_port))
        return local

    def _make_pods(self) -> dict[str, Pod]:
        specs = self.job["spec"]["pytorchReplicaSpecs"]
        unknown = set(specs) - set(REPLICA_TYPES)
        if unknown:
            raise EmulatorError(f"replica types {sorted(unknown)} are not Master or Worker")
        local = self._local_values()
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
            user = list(container.get("env") or [])
            for index in range(replica_count(self.job, rtype)):
                name = pod_name(self.name, rtype, index)
                injected = operator_env(self.job, rtype, index)
                overrides = {len(user) + i: local[var] for i, (var, _) in enumerate(injected)
                             if var in local}
                env = user + [{"name": var, "value": value} for var, value in injected]
                pods[name] = Pod(name, index, rtype,
                                 replica.get("restartPolicy", DEFAULT_RESTART_POLICY), template,
                                 {**container, "env": env},
                                 self.workspace / "logs" / f"{name}.log", env_overrides=overrides,
                                 dns_names=[name])  # the operator's Service of the pod
        if not pods:
            raise EmulatorError("the job has no replicas")
        return pods

    # -- running --------------------------------------------------------------------------------

    @property
    def phase(self) -> str:
        """The job's last condition (``Created`` before :meth:`start`)."""
        return self.conditions[-1].type if self.conditions else "Created"

    def start(self) -> None:
        """Create the job's pods (the Master first) and start their containers."""
        self._begin()
        self._condition("Created", "PyTorchJobCreated", f"PyTorchJob {self.name} is created.")
        for name in self.pods:
            self._start_container(self.prepare(name))
        self._condition("Running", "PyTorchJobRunning", f"PyTorchJob {self.name} is running.")

    def poll(self) -> str:
        """Look at every pod once, act as the kubelet and the operator would; the job's phase."""
        if self.started_at is None or self.finished:
            return self.phase
        now = time.monotonic()
        for pod in self.pods.values():
            code = self._exited(pod)
            if code is not None:
                self._on_exit(pod, code)
            elif pod.restart_at is not None and now >= pod.restart_at and not self.finished:
                self._start_container(pod)  # same pod, emptyDirs kept; a fresh writable layer
            if self.finished:
                return self.phase
        if self.active_deadline is not None and now - self.started_at > self.active_deadline:
            self._fail("DeadlineExceeded", f"PyTorchJob {self.name} is active more than "
                       f"{self.active_deadline}s")
        elif self._succeeded():
            self._finish("Succeeded", "PyTorchJobSucceeded",
                         f"PyTorchJob {self.name} is successfully completed.")
        return self.phase

    def _on_exit(self, pod: Pod, code: int) -> None:
        if pod.deleting:  # delete_pod(): the operator creates the pod again
            pod.deleting = False
            pod.recreations += 1
            self._start_container(self.prepare(pod.name))
            return
        policy = pod.restart_policy
        if code == 0 and policy != "Always":
            pod.phase = "Succeeded"
            return
        if policy == "Never" or (policy == "ExitCode" and code < 128):
            pod.phase = "Failed"
            self._fail(f"{pod.role}Failed",
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
            pod.restart_at = time.monotonic() + self._crash_loop_delay(pod)

    def _counted_restarts(self) -> int:
        return sum(p.restarts + p.recreations for p in self.pods.values()
                   if p.restart_policy != "Never")

    def _succeeded(self) -> bool:
        masters = [p for p in self.pods.values() if p.role == "Master"]
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

    def delete_pod(self, name: str) -> None:
        """``kubectl delete pod NAME``: SIGTERM, SIGKILL after the grace period; the operator then
        creates the pod again (new emptyDirs), which is not a failure and no restart."""
        pod = self.pods[name]
        if not pod.running:
            raise EmulatorError(f"{name} is not running")
        pod.deleting = True
        pod.process.terminate()


# ---------------------------------------------------------------------------------------------
# Either kind, from a shell
# ---------------------------------------------------------------------------------------------

def emulator_for(objects: list[dict], workspace, **options) -> PodRunner:
    """The emulator of the one job in ``objects``: :class:`OperatorEmulator` for a PyTorchJob,
    :class:`~tests.support.trainjob_emulator.TrainJobEmulator` for a TrainJob; ``options`` go to
    it."""
    kinds = {o.get("kind") for o in objects} & {"PyTorchJob", "TrainJob"}
    if len(kinds) > 1:
        raise EmulatorError("the manifest holds a PyTorchJob and a TrainJob; the emulator runs "
                            "one job")
    cls = TrainJobEmulator if kinds == {"TrainJob"} else OperatorEmulator
    return cls(objects, workspace, **options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.operator_emulator",
        description="Run a rendered PyTorchJob or TrainJob manifest as local processes, as the "
                    "Kubeflow training operator v1.9 or Kubeflow Trainer v2.3.0 would on a "
                    "cluster (see the modules' docstrings for what differs).")
    parser.add_argument("manifest", help="multi-document YAML file; - reads stdin")
    parser.add_argument("--pvc-root", help="folder holding one folder per PersistentVolumeClaim "
                        "(default: WORKSPACE/pvc)")
    parser.add_argument("--workspace", help="logs and pod folders (default: a new temp folder)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds (default 3600)")
    parser.add_argument("--manifest-port", action="store_true",
                        help="use the manifest's master port (the Master's pytorchjob-port, a "
                             "TrainJob's 29500) instead of a free port")
    args = parser.parse_args(argv)
    text = sys.stdin.read() if args.manifest == "-" else open(args.manifest).read()
    workspace = args.workspace or tempfile.mkdtemp(prefix="emulated-job-")
    try:
        emu = emulator_for(load_manifest(text), workspace, pvc_root=args.pvc_root,
                           master_port="manifest" if args.manifest_port else None)
        with emu:
            print(f"workspace {emu.workspace}, PVCs in {emu.pvc_root}", flush=True)
            emu.start()
            emu.wait(args.timeout)
    except EmulatorError as err:
        sys.stderr.write(f"operator_emulator: error: {err}\n")
        return 1
    print(emu.report(tail=5))
    return 0 if emu.succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
