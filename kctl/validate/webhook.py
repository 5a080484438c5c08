"""What the training operator's validating webhook refuses, and a few values it lets through
that would only fail later.

The webhook (``pkg/webhooks/pytorch/pytorchjob_webhook.go`` in training-operator v1.9, enabled
with ``failurePolicy: Fail``) checks what the CRD schema cannot: replica type names, the Master's
explicit single replica, the ``pytorch`` container, ``elasticPolicy`` consistency and
``runPolicy.managedBy``. The job name rule (DNS-1035, at most 63 characters) is in
:mod:`kctl.validate.metadata`.

kctl adds checks for values the API accepts but the operator or torchrun would trip over:
``restartPolicy`` and ``cleanPodPolicy`` outside their Go enums, and an ``nprocPerNode`` that is
neither ``auto``/``cpu``/``gpu`` nor a whole number.
"""

from __future__ import annotations

from kctl.validate.problems import Problem, join, join_all

REPLICA_TYPES = ("Master", "Worker")
CONTAINER_NAME = "pytorch"
MANAGED_BY = ("kubeflow.org/training-operator", "kueue.x-k8s.io/multikueue")
RESTART_POLICIES = ("Always", "OnFailure", "Never", "ExitCode")
CLEAN_POD_POLICIES = ("None", "Running", "All")
NPROC_WORDS = ("auto", "cpu", "gpu")


def pytorchjob_problems(job: dict) -> list[Problem]:
    """The webhook's (and kctl's) findings for one PyTorchJob; wrong types are the schema's."""
    spec = job.get("spec")
    if not isinstance(spec, dict):
        return []
    problems = []
    replicas = spec.get("pytorchReplicaSpecs")
    if isinstance(replicas, dict):
        for replica_type, replica in replicas.items():
            problems += _replica_problems(str(replica_type), replica)
    problems += _elastic_problems(spec, replicas)
    problems += _nproc_problems(spec.get("nprocPerNode"))
    problems += _run_policy_problems(spec.get("runPolicy"))
    return problems


def _replica_problems(replica_type: str, replica) -> list[Problem]:
    path = join("spec.pytorchReplicaSpecs", replica_type)
    problems = []
    if replica_type not in REPLICA_TYPES:
        problems.append(Problem(path, "replica type must be Master or Worker (case-sensitive)"))
    if not isinstance(replica, dict):
        return problems
    count = replica.get("replicas")
    if replica_type == "Master":
        if count is None:
            problems.append(Problem(join(path, "replicas"), "must be set to 1 (the webhook "
                                                            "checks before defaulting)"))
        elif isinstance(count, int) and count != 1:
            problems.append(Problem(join(path, "replicas"), f"must be 1, got {count}"))
    elif replica_type == "Worker" and isinstance(count, int) and count < 1:
        problems.append(Problem(join(path, "replicas"), f"must be at least 1, got {count}"))
    policy = replica.get("restartPolicy")
    if isinstance(policy, str) and policy not in RESTART_POLICIES:
        problems.append(Problem(join(path, "restartPolicy"),
                                f"must be one of {', '.join(RESTART_POLICIES)}, got {policy!r}"))
    template = replica.get("template")
    pod = template.get("spec") if isinstance(template, dict) else None
    containers = pod.get("containers") if isinstance(pod, dict) else None
    where = join_all(path, ["template", "spec", "containers"])
    if isinstance(containers, list):
        if not containers:
            problems.append(Problem(where, "needs at least one container"))
        elif not any(isinstance(c, dict) and c.get("name") == CONTAINER_NAME for c in containers):
            problems.append(Problem(where, f"needs a container named {CONTAINER_NAME!r} (the "
                                           "operator runs and wires up that one)"))
        for index, container in enumerate(containers):
            if isinstance(container, dict) and not container.get("image"):
                problems.append(Problem(join(join(where, index), "image"),
                                        "every container needs an image"))
    return problems


def _elastic_problems(spec: dict, replicas) -> list[Problem]:
    elastic = spec.get("elasticPolicy")
    if elastic is None:
        return []
    problems = []
    if not isinstance(replicas, dict) or "Worker" not in replicas:
        problems.append(Problem("spec.elasticPolicy", "needs a Worker replica"))
    if (isinstance(elastic, dict) and elastic.get("nProcPerNode") is not None
            and spec.get("nprocPerNode") is not None):
        problems.append(Problem("spec.elasticPolicy.nProcPerNode",
                                "cannot be set together with spec.nprocPerNode"))
    return problems


def _nproc_problems(nproc) -> list[Problem]:
    if not isinstance(nproc, str) or nproc in NPROC_WORDS:
        return []
    if nproc.isascii() and nproc.isdigit() and int(nproc) >= 1:
        return []
    return [Problem("spec.nprocPerNode", f"must be auto, cpu, gpu or a whole number of at least 1 "
                                         f"written as a string (e.g. \"8\"), got {nproc!r}")]


def _run_policy_problems(run_policy) -> list[Problem]:
    if not isinstance(run_policy, dict):
        return []
    problems = []
    managed_by = run_policy.get("managedBy")
    if isinstance(managed_by, str) and managed_by not in MANAGED_BY:
        problems.append(Problem("spec.runPolicy.managedBy",
                                f"must be {' or '.join(MANAGED_BY)}, got {managed_by!r}"))
    clean = run_policy.get("cleanPodPolicy")
    if isinstance(clean, str) and clean not in CLEAN_POD_POLICIES:
        problems.append(Problem("spec.runPolicy.cleanPodPolicy",
                                f"must be one of {', '.join(CLEAN_POD_POLICIES)}, got {clean!r}"))
    return problems
