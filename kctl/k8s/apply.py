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

from kctl.errors import KctlError
from kctl.k8s import CONFIGMAPS, PVCS, SECRETS, STORAGE_CLASSES
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


def check_references(cluster: Cluster, kind, objects: list[dict], namespace: str) -> None:
    """Refuse objects that name a StorageClass or an image pull Secret the cluster does not have
    (one line; nothing is created). A lookup RBAC forbids is skipped: the cluster will tell."""
    wanted = [(STORAGE_CLASSES, None, o["spec"]["storageClassName"], "--storage-class")
              for o in objects if o.get("kind") == "PersistentVolumeClaim"
              and (o.get("spec") or {}).get("storageClassName")]
    job = next(o for o in objects if o.get("kind") == kind.kind)
    secrets = {s["name"] for spec in kind.pod_specs(job) for s in spec.get("imagePullSecrets") or []}
    wanted += [(SECRETS, namespace, name, "--image-pull-secret") for name in sorted(secrets)]
    for resource, ns, name, flag in wanted:
        read = (cluster.storage.read_storage_class if resource is STORAGE_CLASSES
                else cluster.core.read_namespaced_secret)
        args = (name,) if ns is None else (name, ns)
        try:
            found = cluster.call(read, *args, op=Op("get", resource, ns, name), missing_ok=True)
        except ApiError as err:
            if err.status == 403:
                continue
            raise
        if found is None:
            where = f' in namespace "{ns}"' if ns else ""
            listing = (f"kubectl get {resource.plural}" + (f" -n {ns}" if ns else ""))
            raise KctlError(f'{resource.kind} "{name}" ({flag}) does not exist{where} (see: '
                            f"{listing}); nothing was created")


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
