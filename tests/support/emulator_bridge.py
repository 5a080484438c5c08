"""Show an emulated job to the fake API server, so that the real ``kctl status``, ``logs`` and
``logs -f`` run against a job that really runs.

The operator emulators (:mod:`tests.support.trainjob_emulator`,
:mod:`tests.support.operator_emulator`) run a job's pods as local processes; the fake API server
(:mod:`tests.support.fake_apiserver`) serves what a cluster would say about them, but runs nothing.
:class:`EmulatorBridge` copies the one into the other as the controllers and the kubelet would
write it:

- the job's objects (the TrainJob or PyTorchJob and its ConfigMaps; a TrainJob's runtime unless
  the cluster has it) are created through the fake's admission when the bridge is made;
- each pod, once its first container has started, with its name, its labels (the JobSet's and
  the Job's for a TrainJob) and a running container; a container restart in the same pod as a
  new container (``restartCount`` + 1, the last termination's exit code); a pod that ends
  (``Succeeded``/``Failed``, its exit code); a deleted pod as Terminating while it stops and gone
  once it has (a TrainJob's replacement is a new pod of a new name; a PyTorchJob's pod comes back
  under its name);
- each container's output, appended line by line as it grows (a line is published once it is
  whole, or when its container has ended);
- the job's status: a TrainJob's conditions and ``jobsStatus``, a PyTorchJob's conditions.

The emulator is not thread-safe, so the bridge runs in the test's thread: :meth:`poll` polls the
emulator and publishes what changed; :meth:`wait_until` and :meth:`wait` do it until a condition
holds or the job ends. Faults are injected on the emulator between polls, as without the bridge;
while the test does not poll, the fake shows the job as it was last published.

Usage::

    with TrainJobEmulator(objects, tmp_path / "emu") as emu:
        bridge = EmulatorBridge(fake_kube, emu)
        emu.start()
        follow = KctlProcess("logs", emu.name, "-f")
        assert bridge.wait(timeout=300) == "Complete"
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.support.fake_apiserver import PLURALS, FakeKubeAPIServer, exit_reason
from tests.support.pod_runner import Pod, PodRunner


@dataclass
class _Published:
    """What the fake API server shows of one emulated pod."""

    containers: int  # container starts published
    offset: int  # bytes of the current container's output published
    recreations: int  # PyTorchJob: re-creations of the pod under its name
    stopping: bool = False  # shown as Terminating
    ended: bool = False  # shown as Succeeded/Failed, or gone


class EmulatorBridge:
    """Publish ``emulator``'s job into ``fake`` (see the module docstring).

    Args:
        fake: A running fake API server.
        emulator: An operator emulator, before its ``start``.
    """

    def __init__(self, fake: FakeKubeAPIServer, emulator: PodRunner):
        self.fake, self.emulator = fake, emulator
        self.namespace = emulator.namespace
        self._pods: dict[str, _Published] = {}
        self._status = None
        runtime = getattr(emulator, "training_runtime", None)  # a TrainJob's
        if runtime is not None and fake.get(PLURALS[runtime["kind"]], runtime["metadata"]["name"],
                                            self.namespace) is None:
            fake.add_runtime(runtime["metadata"]["name"], runtime["kind"], self.namespace,
                             spec=runtime["spec"])
        for obj in (*emulator.config_maps.values(), emulator.job):
            fake.create(obj)

    # -- driving --------------------------------------------------------------------------------

    def poll(self) -> str:
        """Poll the emulator once and publish what changed; the job's phase."""
        phase = self.emulator.poll()
        self.publish()
        return phase

    def wait_until(self, predicate, timeout: float) -> None:
        """Poll and publish until ``predicate()`` is true (asked after each publication); as
        the emulator's ``wait_until``, raise if the job ends first or on timeout."""
        self.emulator.wait_until(lambda: bool(self.poll()) and predicate(), timeout)

    def wait(self, timeout: float) -> str:
        """Poll and publish until the job has succeeded or failed; its phase."""
        self.wait_until(lambda: self.emulator.finished, timeout)
        return self.emulator.phase

    # -- publishing -----------------------------------------------------------------------------

    def publish(self) -> None:
        """Make the fake API server show the emulator's pods, logs and job status as they are
        now: pods first, so that the job ends after its pods' last lines."""
        for pod in list(self.emulator.pods.values()):
            self._publish_pod(pod)
        self._publish_status()

    def _replica(self, pod: Pod) -> str:
        """``node-1``, ``master-0``, ``worker-0``: the fake's name for the pod's replica."""
        return f"{pod.role.lower()}-{pod.index}"

    def _publish_pod(self, pod: Pod) -> None:
        shown = self._pods.get(pod.name)
        if shown is None:
            if not pod.starts:
                return  # not started: the pod is created with its first container
            self.fake.add_pod(self.emulator.name, self._replica(pod), self.namespace,
                              name=pod.name, labels=pod.labels)
            shown = self._pods[pod.name] = _Published(1, pod.starts[0], pod.recreations)
        if shown.ended:
            return
        while shown.containers < len(pod.starts):  # a container started since the last look
            end = pod.starts[shown.containers]
            self._append(pod, shown, end)
            code = pod.exit_codes[shown.containers - 1]
            if pod.recreations > shown.recreations:  # the operator created the pod again
                shown.recreations += 1
                self.fake.replace_pod(self.emulator.name, self._replica(pod), self.namespace,
                                      labels=pod.labels)
                shown.stopping = False
            else:  # the kubelet restarted its container
                self.fake.restart_container(pod.name, namespace=self.namespace,
                                            last_exit=(code, exit_reason(code)))
            shown.containers += 1
            shown.offset = end
        if pod.process is not None:  # the current container runs (or its end was not seen)
            self._append(pod, shown, None, whole_lines=True)
            if pod.deleting and not shown.stopping:
                self.fake.delete_pod(pod.name, self.namespace, stopping=True)
                shown.stopping = True
        elif pod.phase in ("Succeeded", "Failed") or pod.deleting:
            self._append(pod, shown, None)
            if pod.deleting:
                self.fake.delete_pod(pod.name, self.namespace)
            else:
                self.fake.finish_pod(pod.name, pod.phase, pod.exit_codes[-1], self.namespace)
            shown.ended = True
        else:  # waiting to restart: its container's output is complete
            self._append(pod, shown, None)

    def _append(self, pod: Pod, shown: _Published, end: int | None,
                whole_lines: bool = False) -> None:
        """Publish the pod's output from ``shown.offset`` to ``end`` (the end of the file by
        default); with ``whole_lines``, up to its last complete line."""
        if not pod.log_path.exists():
            return
        with open(pod.log_path, "rb") as log:
            log.seek(shown.offset)
            data = log.read() if end is None else log.read(end - shown.offset)
        if whole_lines:
            data = data[:data.rfind(b"\n") + 1]
        if data:
            self.fake.append_log(pod.name, data.decode(errors="replace"), self.namespace)
            shown.offset += len(data)

    def _publish_status(self) -> None:
        emulator = self.emulator
        if emulator.started_at is None:
            return
        conditions = [(c.type, "True", c.reason, c.message) for c in emulator.conditions]
        if emulator.kind == "TrainJob":
            jobs = {s["name"]: {k: v for k, v in s.items() if k != "name"}
                    for s in emulator.jobs_status}
            status = (conditions, jobs)
            if status != self._status:
                self.fake.set_trainjob_status(emulator.name, conditions, jobs, self.namespace)
        else:
            # The training operator sets Running (and Restarting) to False once a later
            # condition replaces it; Created stays True.
            last = len(conditions) - 1
            status = [(type_, "False" if i < last and type_ in ("Running", "Restarting")
                       else state, reason, message)
                      for i, (type_, state, reason, message) in enumerate(conditions)]
            if status != self._status:
                self.fake.set_conditions(emulator.name, status, self.namespace)
        self._status = status
