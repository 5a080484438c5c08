"""Submitting a job: create its objects so that deleting the job removes what belongs to it.

Order and ownership (``kctl train`` without ``--dry-run`` calls :func:`create`):

1. PersistentVolumeClaims first. They hold ``work_dir`` (checkpoints), so they are *not* owned by
   the job: they outlive ``kctl delete``, and a job submitted again under the same claim resumes
   from its last checkpoint. A claim that already exists is used as it is.
2. The job (a PyTorchJob, a TrainJob: the kind of the backend that rendered it). Its uid is known
   only once it exists.
3. Everything else (the ConfigMap with the config tree), with an ``ownerReference`` to the job,
   so Kubernetes' garbage collector deletes it with the job. The operator may start pods a
   moment before their ConfigMap exists; the kubelet retries the mount until it does.

Before anything is created, what the objects name but do not create is looked up (:func:`check_references`):
the StorageClass of a claim kctl creates and the pods' image pull Secrets. A missing one is an
error; one the user may not read is left for the cluster to judge. Nothing is left half-written:
if a step fails, what this call created is deleted again (the job with its dependents, and claims
that did not exist before).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from kctl.errors import KctlError
from kctl.k8s import CONFIGMAPS, PVCS, SECRETS, STORAGE_CLASSES, Resource
from kctl.k8s.cluster import Cluster
from kctl.k8s.errors import ApiError, Op
from kctl.k8s.jobs import delete_job

#: Kinds :func:`create` can create besides the job: the client method and resource.
CREATORS = {
    "ConfigMap": ("create_namespaced_config_map", CONFIGMAPS),
    "PersistentVolumeClaim": ("create_namespaced_persistent_volume_claim", PVCS),
}

#: Kinds that outlive the job (not owned; an existing one is reused).
KEPT_KINDS = ("PersistentVolumeClaim",)


def create(cluster: Cluster, kind, objects: list[dict], namespace: str | None = None) -> str:
    """Create a job's objects in the cluster and return the job's name.

    Args:
        cluster: The connection (:func:`kctl.k8s.cluster.connect`).
        kind: The job's backend (its kind, API group, version and plural).
        objects: Plain dicts: exactly one object of ``kind``, plus ConfigMaps and
            PersistentVolumeClaims. They are not modified; ``metadata.namespace`` is set on copies.
        namespace: Target namespace. Defaults to the cluster's (the context's, else ``default``).

    Raises:
        KctlError: one line, e.g. the job already exists (409), the CRD is not installed,
            RBAC forbids it, the server rejects the manifest (422), or no cluster is reachable.
    """
    job, kept, owned = _sort(kind.kind, objects)
    ns = namespace or cluster.namespace
    check_references(cluster, kind, objects, ns)
    new_claims = []
    try:
        for obj in kept:
            if _create_core(cluster, _in_namespace(obj, ns), ns, reuse_existing=True):
                new_claims.append(obj)
        created = cluster.call(cluster.custom.create_namespaced_custom_object, kind.group,
                               kind.version, ns, kind.plural, _in_namespace(job, ns),
                               op=Op("create", kind.resource, ns, job["metadata"]["name"]))
    except KctlError:
        _remove_claims(cluster, new_claims, ns)
        raise
    owner = {"apiVersion": kind.api_version, "kind": kind.kind,
             "name": created["metadata"]["name"], "uid": created["metadata"]["uid"]}
    try:
        for obj in owned:
            body = _in_namespace(obj, ns)
            body["metadata"]["ownerReferences"] = (
                list(body["metadata"].get("ownerReferences") or []) + [owner])
            _create_core(cluster, body, ns)
    except KctlError:
        _delete_quietly(cluster, kind, created)
        _remove_claims(cluster, new_claims, ns)
        raise
    return created["metadata"]["name"]


@dataclass(frozen=True)
class Reference:
    """An object a job names and needs, but does not create.

    Args:
        resource: Its kind.
        name: Its name.
        flag: The ``kctl train`` flag that named it, for the message.
        namespace: Its namespace; ``None`` for a cluster-scoped kind.
        version: The API version of a custom resource (built-in kinds are read with their own
            client methods).
    """

    resource: Resource
    name: str
    flag: str
    namespace: str | None = None
    version: str = "v1"


def check_references(cluster: Cluster, kind, objects: list[dict], namespace: str) -> None:
    """Refuse objects that name what the cluster does not have (one line; nothing is created):
    the StorageClass of a claim kctl creates, the pods' image pull Secrets, and what the job's
    backend names (:meth:`~kctl.backends.kubernetes.KubernetesBackend.references`, e.g. a
    TrainJob's runtime). A lookup RBAC forbids is skipped: the cluster will tell."""
    wanted = [Reference(STORAGE_CLASSES, o["spec"]["storageClassName"], "--storage-class")
              for o in objects if o.get("kind") == "PersistentVolumeClaim"
              and (o.get("spec") or {}).get("storageClassName")]
    job = next(o for o in objects if o.get("kind") == kind.kind)
    secrets = {s["name"] for spec in kind.pod_specs(job) for s in spec.get("imagePullSecrets") or []}
    wanted += [Reference(SECRETS, name, "--image-pull-secret", namespace)
               for name in sorted(secrets)]
    wanted += kind.references(job, namespace)
    for ref in wanted:
        try:
            found = _read(cluster, ref)
        except ApiError as err:
            if err.status == 403:
                continue
            raise
        if found is None:
            where = f' in namespace "{ref.namespace}"' if ref.namespace else ""
            listing = f"kubectl get {ref.resource.qualified}" + (
                f" -n {ref.namespace}" if ref.namespace else "")
            raise KctlError(f'{ref.resource.kind} "{ref.name}" ({ref.flag}) does not exist'
                            f"{where} (see: {listing}); nothing was created")


def _read(cluster: Cluster, ref: Reference) -> dict | None:
    """The referenced object, or ``None`` where it does not exist."""
    res, ns, name = ref.resource, ref.namespace, ref.name
    op = Op("get", res, ns, name)
    if res is SECRETS:
        return cluster.call(cluster.core.read_namespaced_secret, name, ns, op=op, missing_ok=True)
    if res is STORAGE_CLASSES:
        return cluster.call(cluster.storage.read_storage_class, name, op=op, missing_ok=True)
    if ns is None:
        return cluster.call(cluster.custom.get_cluster_custom_object, res.group, ref.version,
                            res.plural, name, op=op, missing_ok=True)
    return cluster.call(cluster.custom.get_namespaced_custom_object, res.group, ref.version, ns,
                        res.plural, name, op=op, missing_ok=True)


def _sort(job_kind: str, objects: list[dict]) -> tuple[dict, list[dict], list[dict]]:
    """The job, the kept objects and the owned ones; programming errors are ValueErrors."""
    found = [o for o in objects if o.get("kind") == job_kind]
    if len(found) != 1:
        raise ValueError(f"expected exactly one {job_kind} among the objects, got {len(found)}")
    others = [o for o in objects if o.get("kind") != job_kind]
    unknown = sorted({o.get("kind") for o in others} - set(CREATORS))
    if unknown:
        raise ValueError(f"cannot create {', '.join(map(str, unknown))}; "
                         f"known: {job_kind}, {', '.join(CREATORS)}")
    return (found[0], [o for o in others if o["kind"] in KEPT_KINDS],
            [o for o in others if o["kind"] not in KEPT_KINDS])


def _in_namespace(obj: dict, namespace: str) -> dict:
    body = copy.deepcopy(obj)
    body.setdefault("metadata", {})["namespace"] = namespace
    return body


def _create_core(cluster: Cluster, body: dict, namespace: str,
                 reuse_existing: bool = False) -> bool:
    """Create a ConfigMap or claim; ``False`` if it existed and ``reuse_existing`` allows that."""
    method, resource = CREATORS[body["kind"]]
    try:
        cluster.call(getattr(cluster.core, method), namespace, body,
                     op=Op("create", resource, namespace, body["metadata"]["name"]))
    except ApiError as err:
        if reuse_existing and err.status == 409:
            return False
        raise
    return True


def _remove_claims(cluster: Cluster, claims: list[dict], namespace: str) -> None:
    for claim in claims:
        name = claim["metadata"]["name"]
        try:
            cluster.call(cluster.core.delete_namespaced_persistent_volume_claim, name, namespace,
                         op=Op("delete", PVCS, namespace, name))
        except KctlError:
            pass  # best effort; the error that made us clean up is the one to report


def _delete_quietly(cluster: Cluster, kind, job: dict) -> None:
    try:
        delete_job(cluster, kind, job)
    except KctlError:
        pass  # best effort, as above
