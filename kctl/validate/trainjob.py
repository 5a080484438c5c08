"""TrainJobs (Kubeflow Trainer v2.3.0, ``trainer.kubeflow.org/v1alpha1``), in three layers.

- :func:`api_problems`: what the API server itself refuses (HTTP 422): the vendored CRD's
  schema closed to unknown fields, its CEL rules (:mod:`kctl.validate.cel`), list-map keys and
  ``metadata``.
- :func:`webhook_problems`: what the Trainer's validating webhook
  (``validator.trainjob.trainer.kubeflow.org``, ``failurePolicy: Fail``) refuses: an unsupported
  runtime kind or group, the torch plugin's reserved ``PET_*`` variables in ``trainer.env``, and
  the ``runtimePatches`` rules (a domain-prefixed ``manager``; only replicated jobs and containers
  the runtime has; no ``env`` on the ``node`` and initializer containers). Which jobs and
  containers the runtime has is known for the vendored default ``torch-distributed``
  ClusterTrainingRuntime or for a runtime object passed in (the fake API server passes the
  stored one); for any other runtime those rules are skipped. The webhook's other rule, "the
  runtime must exist", needs a cluster. The rule that ``runtimePatches`` change only while the
  job is suspended applies to updates, which kctl never makes.
- :func:`client_problems`: what nothing on the server checks, yet breaks the job: a name too
  long for its pods' names (the JobSet webhook refuses the JobSet the Trainer then builds, and the
  TrainJob stays without pods, with only a Warning event), ``numNodes`` or ``numProcPerNode``
  below 1, and pod rules (:mod:`kctl.validate.pods`) and label syntax in the patches, which fail
  only when the pods are created.

Facts and sources: kubeflow/trainer at v2.3.0 and kubernetes-sigs/jobset v0.12.0 (the Trainer's
``pkg/webhooks``, ``pkg/runtime/framework/plugins/{torch,jobset}``).
"""

from __future__ import annotations

import dataclasses
import functools
import re

from kctl.validate.cel import cel_problems
from kctl.validate.listmaps import list_problems
from kctl.validate.metadata import metadata_problems
from kctl.validate.names import dns1123_subdomain_error
from kctl.validate.pods import pod_problems
from kctl.validate.problems import Problem, join, join_all
from kctl.validate.schema import job_schema, load_yaml, schema_problems

GROUP = "trainer.kubeflow.org"
RUNTIME_KINDS = ("ClusterTrainingRuntime", "TrainingRuntime")
#: The runtime ``runtimeRef`` names by default (its kind and group are CRD defaults).
DEFAULT_RUNTIME = "torch-distributed"
#: What the torch plugin sets on the ``node`` container for torchrun (reserved in trainer.env).
RESERVED_ENV = ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR",
                "PET_MASTER_PORT")
#: Containers whose env only ``spec.trainer.env`` / ``spec.initializer`` may set.
NO_ENV_CONTAINERS = ("dataset-initializer", "model-initializer", "node")
#: The Job-template label that marks the replicated job ``numNodes`` sizes.
ANCESTOR_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"
#: Initializer replicated jobs, which ``spec.initializer.{dataset,model}`` need.
INITIALIZERS = {"dataset": "dataset-initializer", "model": "model-initializer"}

_PATCHES = "spec.runtimePatches"
_JOBS = ["trainingRuntimeSpec", "template", "spec", "replicatedJobs"]
_POD = ["template", "spec", "template", "spec"]
#: A schema "unknown field" inside a patch's pod spec or container: group 1 is "", "containers[i]."
#: or "initContainers[i].", group 2 the field.
_PATCH_FIELD = re.compile(r"^spec\.runtimePatches\[\d+\]\.trainingRuntimeSpec\.template\.spec\."
                          r"replicatedJobs\[\d+\]\.template\.spec\.template\.spec\."
                          r"((?:initContainers|containers)\[\d+\]\.)?([^.\[]+)$")
_HTTP_PATH = re.compile(r"^[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$")


@dataclasses.dataclass(frozen=True)
class Runtime:
    """What the webhook rules need to know of a (Cluster)TrainingRuntime.

    Args:
        name: The runtime's name.
        containers: Replicated job name -> names of its containers and init containers.
        volumes: Replicated job name -> names of its pods' volumes.
        trainer_job: The replicated job ``numNodes`` sizes (``node`` in torch-distributed).
        num_nodes: ``mlPolicy.numNodes``: the node count when the TrainJob sets none.
    """

    name: str
    containers: dict
    volumes: dict
    trainer_job: str | None
    num_nodes: int

    @classmethod
    def from_object(cls, runtime: dict) -> "Runtime":
        """Read a ClusterTrainingRuntime or TrainingRuntime object."""
        spec = runtime.get("spec") or {}
        containers, volumes, trainer_job = {}, {}, None
        for rjob in _get(spec, "template", "spec", "replicatedJobs") or []:
            pod = _get(rjob, *_POD) or {}
            containers[rjob["name"]] = {c.get("name") for c in (pod.get("initContainers") or [])
                                        + (pod.get("containers") or [])}
            volumes[rjob["name"]] = {v.get("name") for v in pod.get("volumes") or []}
            labels = _get(rjob, "template", "metadata", "labels") or {}
            if labels.get(ANCESTOR_LABEL) == "trainer":
                trainer_job = rjob["name"]
        return cls(name=runtime["metadata"]["name"], containers=containers, volumes=volumes,
                   trainer_job=trainer_job,
                   num_nodes=_get(spec, "mlPolicy", "numNodes") or 1)


@functools.lru_cache(maxsize=None)
def default_runtime_object() -> dict:
    """The ``torch-distributed`` ClusterTrainingRuntime of Trainer v2.3.0, as vendored
    (``kctl/schemas/torch_distributed.yaml``)."""
    return load_yaml("torch_distributed.yaml")


def runtime_ref(job: dict) -> tuple[str, str, str]:
    """``(kind, apiGroup, name)`` of the runtime ``job`` refers to, with the CRD's defaults."""
    ref = _get(job, "spec", "runtimeRef")
    ref = ref if isinstance(ref, dict) else {}
    return (ref.get("kind") or RUNTIME_KINDS[0], ref.get("apiGroup") or GROUP,
            ref.get("name") or "")


def trainjob_problems(job: dict) -> list[Problem]:
    """Everything kctl checks on one TrainJob (its runtime assumed as described above)."""
    return api_problems(job) + webhook_problems(job) + client_problems(job)


def api_problems(job: dict) -> list[Problem]:
    """What the API server refuses with 422: schema, CEL rules, list-map keys, ``metadata``."""
    schema = job_schema("TrainJob")
    problems = [_explain_patch_field(p) for p in schema_problems("TrainJob", job)]
    problems += cel_problems(schema, job)
    problems += list_problems(schema, job)
    problems += metadata_problems(job.get("metadata"), "dns1123-subdomain")
    return problems


def webhook_problems(job: dict, runtime: dict | None = None) -> list[Problem]:
    """What the Trainer's validating webhook refuses.

    Args:
        job: The TrainJob.
        runtime: The (Cluster)TrainingRuntime it refers to; ``None`` assumes the vendored
            torch-distributed when the job refers to it, and skips the rules that depend on the
            runtime's jobs and containers otherwise.
    """
    spec = job.get("spec")
    if not isinstance(spec, dict):
        return []
    kind, group, _ = runtime_ref(job)
    if kind not in RUNTIME_KINDS or group != GROUP:
        return [Problem("spec.runtimeRef", f"unsupported runtime: {kind}.{group} (the Trainer "
                                           f"runs ClusterTrainingRuntime or TrainingRuntime of "
                                           f"API group {GROUP})")]
    known = _known_runtime(job, runtime)
    problems = _env_problems(spec.get("trainer"))
    problems += _initializer_problems(spec.get("initializer"), known)
    patches = spec.get("runtimePatches")
    for index, patch in enumerate(patches if isinstance(patches, list) else []):
        if isinstance(patch, dict):
            problems += _patch_problems(patch, join(_PATCHES, index), known)
    return problems


def client_problems(job: dict, runtime: dict | None = None) -> list[Problem]:
    """What nothing on the server refuses but breaks the job (``runtime`` as in
    :func:`webhook_problems`)."""
    spec = job.get("spec")
    if not isinstance(spec, dict):
        return []
    known = _known_runtime(job, runtime)
    trainer = spec.get("trainer") if isinstance(spec.get("trainer"), dict) else {}
    problems = []
    for field in ("numNodes", "numProcPerNode"):
        value = trainer.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            problems.append(Problem(join("spec.trainer", field),
                                    f"must be at least 1, got {value} (the API server accepts "
                                    "it, and the job never runs)"))
    problems += _name_length_problems(job, spec, trainer, known)
    problems += _patched_pod_problems(spec.get("runtimePatches"), known)
    return problems


# -- webhook rules ------------------------------------------------------------------------------


def _known_runtime(job: dict, runtime: dict | None) -> Runtime | None:
    if runtime is not None:
        return Runtime.from_object(runtime)
    if runtime_ref(job) == (RUNTIME_KINDS[0], GROUP, DEFAULT_RUNTIME):
        return Runtime.from_object(default_runtime_object())
    return None


def _env_problems(trainer) -> list[Problem]:
    env = trainer.get("env") if isinstance(trainer, dict) else None
    problems = []
    for index, var in enumerate(env if isinstance(env, list) else []):
        name = var.get("name") if isinstance(var, dict) else None
        if name in RESERVED_ENV:
            problems.append(Problem(join_all("spec.trainer.env", [index, "name"]),
                                    f"{name} is reserved: the Trainer sets "
                                    f"{', '.join(RESERVED_ENV)} for torchrun from numNodes and "
                                    "numProcPerNode; remove it"))
    return problems


def _initializer_problems(initializer, known: Runtime | None) -> list[Problem]:
    if not isinstance(initializer, dict) or known is None:
        return []
    problems = []
    for field, rjob in INITIALIZERS.items():
        if initializer.get(field) is None:
            continue
        if rjob not in known.containers:
            problems.append(Problem(join("spec.initializer", field),
                                    f"runtime {known.name} has no {rjob} job: use a runtime "
                                    f"with initializers, or leave spec.initializer.{field} out"))
        elif rjob not in known.containers[rjob]:
            problems.append(Problem(join("spec.initializer", field),
                                    f"the {rjob} job of runtime {known.name} has no container "
                                    f"named {rjob}"))
    return problems


def _patch_problems(patch: dict, path: str, known: Runtime | None) -> list[Problem]:
    problems = []
    manager = patch.get("manager")
    if isinstance(manager, str) and manager:
        error = domain_prefixed_path_error(manager)
        if error:
            problems.append(Problem(join(path, "manager"), error))
    for jpath, rjob in _patched_jobs(patch, path):
        name = rjob.get("name")
        if known is not None and isinstance(name, str) and name not in known.containers:
            problems.append(Problem(join(jpath, "name"),
                                    f"runtime {known.name} has no replicated job {name!r} (it "
                                    f"has {', '.join(sorted(known.containers))})"))
            continue
        pod = _get(rjob, *_POD)
        for group in ("initContainers", "containers"):
            containers = pod.get(group) if isinstance(pod, dict) else None
            for index, container in enumerate(containers if isinstance(containers, list) else []):
                if isinstance(container, dict):
                    problems += _patched_container_problems(
                        container, join_all(jpath, _POD + [group, index]), name, known)
    return problems


def _patched_container_problems(container: dict, path: str, rjob, known: Runtime | None):
    name = container.get("name")
    problems = []
    if (known is not None and rjob in known.containers and isinstance(name, str)
            and name not in known.containers[rjob]):
        problems.append(Problem(join(path, "name"),
                                f"the {rjob} job of runtime {known.name} has no container "
                                f"{name!r} (it has {', '.join(sorted(known.containers[rjob]))}); "
                                "a patch changes containers, it cannot add one"))
    if name in NO_ENV_CONTAINERS and container.get("env"):
        problems.append(Problem(join(path, "env"),
                                f"env cannot be patched into the {name} container: set "
                                + ("spec.trainer.env" if name == "node" else
                                   f"spec.initializer.{name.split('-')[0]}.env")))
    return problems


def domain_prefixed_path_error(value: str) -> str | None:
    """Why ``value`` is not a domain-prefixed path (``mycli.example.com/cli``), or ``None``.

    Kubernetes' ``IsDomainPrefixedPath``, which the webhook applies to a patch's ``manager``.
    """
    host, _, path = value.partition("/")
    if not host or not path:
        return (f"{value!r} must be a domain-prefixed path such as mycli.example.com/cli (a "
                "domain you own, '/', a name)")
    if dns1123_subdomain_error(host):
        return f"the domain {host!r} of {value!r} is not a DNS-1123 subdomain"
    if not _HTTP_PATH.match(path):
        return (f"the path {path!r} of {value!r} may hold only letters, digits and "
                "/-._~%!$&'()*+,;=:")
    return None


def _explain_patch_field(problem: Problem) -> Problem:
    """An unknown field in a patched pod spec or container says what a patch can set instead."""
    match = _PATCH_FIELD.match(problem.path)
    if not match or problem.message != "unknown field":
        return problem  # not in a patch, or a likely typo ("did you mean ...?")
    if match[1]:
        allowed = _patch_fields("containers")
        return Problem(problem.path, f"unknown field: a container patch can set only "
                                     f"{', '.join(allowed)}; {match[2]} comes from spec.trainer "
                                     "or needs a custom (Cluster)TrainingRuntime")
    return Problem(problem.path, f"unknown field: a runtime patch can set only "
                                 f"{', '.join(_patch_fields())} of a pod; {match[2]} needs a "
                                 "custom (Cluster)TrainingRuntime")


@functools.lru_cache(maxsize=None)
def _patch_fields(container: str | None = None) -> tuple[str, ...]:
    """The fields a runtime patch may set on a pod spec (or on one of its ``containers``), read
    from the CRD."""
    node = job_schema("TrainJob")["properties"]["spec"]["properties"]["runtimePatches"]["items"]
    for key in _JOBS + ["items"] + _POD:
        node = node["items"] if key == "items" else node["properties"][key]
    if container:
        node = node["properties"][container]["items"]
    return tuple(sorted(node["properties"]))


# -- what no server checks ------------------------------------------------------------------------


def _name_length_problems(job: dict, spec: dict, trainer: dict, known: Runtime | None):
    """The JobSet webhook's pod-name check: ``<name>-<job>-0-<completions-1>-<5 random>`` must
    be a DNS-1035 label of at most 63 characters, for every replicated job."""
    name = _get(job, "metadata", "name")
    if not isinstance(name, str):
        return []
    nodes = trainer.get("numNodes")
    if not isinstance(nodes, int) or nodes < 1:
        nodes = known.num_nodes if known else 1
    trainer_job = known.trainer_job if known and known.trainer_job else "node"
    jobs = [(trainer_job, nodes, f"{nodes} node{'s' * (nodes != 1)}")]
    initializer = spec.get("initializer") if isinstance(spec.get("initializer"), dict) else {}
    jobs += [(rjob, 1, f"a {rjob} job") for field, rjob in INITIALIZERS.items()
             if initializer.get(field) is not None]
    pods = [(f"<name>-{rjob}-0-{count - 1}-<5 random characters>",
             63 - len(f"-{rjob}-0-{count - 1}-abcde"), what) for rjob, count, what in jobs]
    pod, limit, what = min(pods, key=lambda entry: entry[1])
    if len(name) <= limit:
        return []
    return [Problem("metadata.name",
                    f"{name!r} is {len(name)} characters; a TrainJob with {what} may have at most "
                    f"{limit}: its pods are named {pod}, at most 63 (a longer name is accepted, "
                    "then no pod is ever created); choose a shorter name")]


def _patched_pod_problems(patches, known: Runtime | None) -> list[Problem]:
    """Pod rules and label syntax in the patches, with the volumes every patch of a replicated
    job and the runtime give its pods."""
    found = [(jpath, rjob) for index, patch in enumerate(patches if isinstance(patches, list)
                                                         else [])
             if isinstance(patch, dict)
             for jpath, rjob in _patched_jobs(patch, join(_PATCHES, index))]
    volumes: dict = {}
    for _, rjob in found:
        pod = _get(rjob, *_POD)
        for volume in (pod.get("volumes") if isinstance(pod, dict) else None) or []:
            if isinstance(volume, dict):
                volumes.setdefault(rjob.get("name"), set()).add(volume.get("name"))
    problems = []
    for jpath, rjob in found:
        name = rjob.get("name")
        elsewhere = None
        if known is not None and name in known.volumes:
            elsewhere = frozenset(known.volumes[name] | volumes.get(name, set()))
        problems += pod_problems(_get(rjob, *_POD), join_all(jpath, _POD), elsewhere)
        for keys in (["template", "metadata"], ["template", "spec", "template", "metadata"]):
            problems += metadata_problems(_get(rjob, *keys), "dns1123-subdomain",
                                          join_all(jpath, keys), top_level=False)
    for index, patch in enumerate(patches if isinstance(patches, list) else []):
        keys = ["trainingRuntimeSpec", "template", "metadata"]
        problems += metadata_problems(_get(patch, *keys), "dns1123-subdomain",
                                      join_all(join(_PATCHES, index), keys), top_level=False)
    return problems


def _patched_jobs(patch: dict, path: str):
    """``(path, replicated job patch)`` for each replicated job a runtime patch names."""
    rjobs = _get(patch, *_JOBS)
    for index, rjob in enumerate(rjobs if isinstance(rjobs, list) else []):
        if isinstance(rjob, dict):
            yield join_all(path, _JOBS + [index]), rjob


def _get(obj, *keys):
    """``obj[k1][k2]...``, or ``None`` where a level is missing or not a map."""
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj
