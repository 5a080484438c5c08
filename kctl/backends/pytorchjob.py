"""Kubeflow PyTorchJob (training operator v1.9): the target of ``kctl train``.

One job becomes, in ``kctl/templates/pytorchjob.yaml.j2``, the ConfigMap with the config tree and
the pod every Kubernetes target runs (:mod:`kctl.backends.kubernetes`), and a ``kubeflow.org/v1``
PyTorchJob: ``Master`` (1 replica) plus ``Worker`` (N-1 replicas, absent for one node), one pod per
node. ``torchrun`` reads the operator's ``PET_NNODES``, ``PET_NPROC_PER_NODE``, ``PET_NODE_RANK``,
``PET_MASTER_ADDR`` and ``PET_MASTER_PORT``, so the manifest states the topology once
(``replicas`` and ``nprocPerNode``).

work_dir lives on a PersistentVolumeClaim when one is given, so a restarted or re-created pod
resumes from the last checkpoint (``--resume``); resubmitting a job of the same name resumes too.
Before anything is submitted, the rendered manifest is validated (vendored CRD schema, webhook
rules: :func:`kctl.validate.manifest.check_rendered`); a dry run only prints it (validating costs
0.3 s: the 609 KB CRD and jsonschema), ``kctl validate`` checks it on demand.

Restarts and preemption. The replicas' ``restartPolicy`` is ``OnFailure``: a container that exits
non-zero for any reason (a crash, an OOM kill = 137, a rank that failed or was killed, which
``torchrun`` reports as exit 1) is restarted in the same pod by the kubelet and resumes. The ranks
of the other pods fail with their lost peer and are restarted the same way, so one failure costs
one container restart per node: the operator counts every one against ``runPolicy.backoffLimit``,
which is therefore ``--max-restarts`` (failures the job survives) x nodes.

A restarted pod's ``torchrun`` can reach the master's rendezvous store before the master's old
``torchrun`` has exited (the kubelet restarts a container at once the first time). Left to
itself, it would then read its ranks from that old store, and the new master would wait for
ranks that were already given out: a job that hangs until the rendezvous times out (10 minutes).
Every node runs the same number of processes, so the pods set ``TORCH_ELASTIC_WORKER_IDENTICAL=1``
and ``torchrun`` computes the ranks itself (node rank x processes per node + local rank, the
arithmetic of :meth:`kctl.job.Topology.rank`) instead of exchanging them through the store. What is
left of that race costs time, not the job: a rank that started in the old store fails with it
and its pod restarts once more; a rank whose ``torchrun`` saw the old store but which itself
joined the new one trains to the end, and the master's ``torchrun`` then waits out its 300 s
exit barrier for that node before the job succeeds.

A pod that is deleted, evicted or preempted gets SIGTERM (to ``torchrun``, which passes it to
the ranks: the trainer finishes its iteration, saves a checkpoint and exits 143, "preempted,
checkpoint saved: retry") and SIGKILL after ``terminationGracePeriodSeconds`` (30 s by default);
the operator creates the pod again and it resumes from that checkpoint. Under the operator's
other policy, ``ExitCode``, exit codes >= 128 (143, 137) are retryable (the pod is re-created)
and 1-127 fail the job. PyTorch's ``torchrun`` exits 1 when a rank fails or when SIGTERM stops
it, so with any image a rank's 143 would end the job there; that is why kctl renders
``OnFailure``. The trainer image's ``torchrun`` (``image/torchrun.sh``) ends with the ranks' own
status (143 after SIGTERM, 2 for bad input), so its pods also show why they stopped.
"""

from __future__ import annotations

import re

from kctl.backends.kubernetes import KubernetesBackend
from kctl.job import Job
from kctl.options import Settings

#: The operator's names: container, rendezvous port name and its default number.
CONTAINER_NAME = "pytorch"
PORT_NAME = "pytorchjob-port"
PORT = 23456

#: Labels the training operator puts on every pod of a job.
JOB_NAME_LABEL = "training.kubeflow.org/job-name"
REPLICA_TYPE_LABEL = "training.kubeflow.org/replica-type"
REPLICA_INDEX_LABEL = "training.kubeflow.org/replica-index"

#: Replica types in the order kctl shows them.
REPLICA_TYPES = ("Master", "Worker")

#: Longest job name: the operator's ``<name>-worker-<i>`` Services must stay within 63 characters.
MAX_JOB_NAME = 50

#: Containers restart in place (``emptyDir`` volumes survive); the operator re-creates failed pods.
RESTART_POLICY = "OnFailure"

#: When the job has finished, stop pods still running or pending (e.g. workers left waiting after
#: the master failed) but keep finished pods, so ``kctl logs`` still works.
CLEAN_POD_POLICY = "Running"

#: The PyTorchJob, its pods and ConfigMap are deleted a week after the job finished.
TTL_SECONDS_AFTER_FINISHED = 7 * 24 * 3600

#: Conditions after which a job's pods will not start again.
FINISHED = ("Succeeded", "Failed")


def backoff_limit(max_restarts: int, nodes: int) -> int:
    """``runPolicy.backoffLimit`` for a job that survives ``max_restarts`` failures: the operator
    counts container restarts, and one failure restarts the container of every node."""
    return max_restarts * nodes


class PyTorchJobBackend(KubernetesBackend):
    """Kubeflow PyTorchJob (training operator v1.9): ConfigMap + PyTorchJob."""

    kind = "PyTorchJob"
    group = "kubeflow.org"
    version = "v1"
    plural = "pytorchjobs"
    container = CONTAINER_NAME
    template = "pytorchjob.yaml.j2"
    #: The training operator v1 adds to every Worker pod an init container without a
    #: securityContext (``initcontainer.go``).
    restricted_rejects = ("rejects the Worker pods of a multi-node PyTorchJob (the training "
                          "operator v1 gives them an init container, init-pytorch, without "
                          "allowPrivilegeEscalation: false and capabilities.drop: [ALL])")
    name_limit_why = "the operator's <name>-worker-<i> Services must stay within 63"
    install = ("the PyTorchJob CRD (kubeflow.org/v1) is not installed: install the Kubeflow "
               "training-operator v1.9 (kubectl apply --server-side -k "
               "\"github.com/kubeflow/training-operator.git/manifests/overlays/standalone"
               "?ref=v1.9.0\")")

    def name_limit(self, nodes: int) -> int:
        return MAX_JOB_NAME

    def claim_access(self, job: Job) -> str:
        """Only the Master (rank 0, which alone reads and writes checkpoints) mounts the claim;
        the Workers' work_dir is an emptyDir."""
        return "ReadWriteOnce"

    def kind_context(self, job: Job, settings: Settings, warnings: list[str]) -> dict:
        topology = job.topology
        replicas = {"Master": 1}
        if topology.nodes > 1:
            replicas["Worker"] = topology.nodes - 1
        return dict(
            claim_replicas=("Master",),
            nproc_per_node=str(topology.procs_per_node),
            clean_pod_policy=CLEAN_POD_POLICY,
            backoff_limit=backoff_limit(settings.max_restarts, topology.nodes),
            ttl_seconds_after_finished=TTL_SECONDS_AFTER_FINISHED,
            min_available=topology.nodes if settings.gang else None,
            priority_class=settings.priority_class,
            replicas=replicas,
            restart_policy=RESTART_POLICY,
            port_name=PORT_NAME,
            port=PORT,
        )

    # -- reading PyTorchJobs and their pods -------------------------------------------------

    def pod_selector(self, name: str) -> str:
        return f"{JOB_NAME_LABEL}={name}"

    def replica_selector(self, name: str, replica: str) -> str:
        rtype, _, index = replica.rpartition("-")
        return (f"{JOB_NAME_LABEL}={name},{REPLICA_TYPE_LABEL}={rtype},"
                f"{REPLICA_INDEX_LABEL}={index}")

    def _replica_specs(self, job: dict) -> list[tuple[str, dict]]:
        """``(type, spec)`` for each replica type, Master first."""
        specs = (job.get("spec") or {}).get("pytorchReplicaSpecs") or {}
        known = [(t, specs[t]) for t in REPLICA_TYPES if t in specs]
        return known + sorted((t, s) for t, s in specs.items() if t not in REPLICA_TYPES)

    def replicas(self, job: dict) -> list[str]:
        """``master-0``, ``worker-0``, ``worker-1``, ..."""
        return [f"{rtype.lower()}-{i}" for rtype, spec in self._replica_specs(job)
                for i in range(int(spec.get("replicas", 1)))]

    def expected_pod_name(self, name: str, replica: str) -> str:
        return f"{name}-{replica}"

    def replica_of(self, pod: dict) -> str:
        labels = pod.get("metadata", {}).get("labels") or {}
        rtype, index = labels.get(REPLICA_TYPE_LABEL), labels.get(REPLICA_INDEX_LABEL)
        if rtype and index is not None:
            return f"{rtype.lower()}-{index}"
        match = re.search(r"(master|worker)-\d+$", pod.get("metadata", {}).get("name", ""))
        return match.group(0) if match else pod.get("metadata", {}).get("name", "?")

    def state(self, job: dict) -> str | None:
        """The latest condition that holds (``Running``, ``Succeeded``, ...).

        The operator appends each new condition and sets the ones it replaces to False, so this
        is the column ``kubectl get pytorchjobs`` shows as STATE.
        """
        conditions = (job.get("status") or {}).get("conditions") or []
        holding = [c for c in conditions if c.get("status") == "True"]
        last = (holding or conditions or [None])[-1]
        return last.get("type") if last else None

    def outcome(self, job: dict) -> str | None:
        conditions = (job.get("status") or {}).get("conditions") or []
        done = [c["type"] for c in conditions
                if c.get("type") in FINISHED and c.get("status") == "True"]
        return done[-1] if done else None

    def pod_specs(self, job: dict) -> list[dict]:
        return [spec.get("template", {}).get("spec", {}) for _, spec in self._replica_specs(job)]

    def nodes(self, job: dict) -> int:
        """Pods in the job: the sum of ``replicas`` over Master and Worker."""
        return sum(int(spec.get("replicas", 1)) for _, spec in self._replica_specs(job))


BACKEND = PyTorchJobBackend()
