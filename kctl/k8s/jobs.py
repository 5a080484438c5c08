"""Jobs of any kind a backend describes: read, list, find by name across kinds, delete."""

from __future__ import annotations

from kctl.errors import KctlError
from kctl.k8s.cluster import Cluster
from kctl.k8s.errors import ApiError, Op


def get_job(cluster: Cluster, kind, name: str, namespace: str,
            missing_ok: bool = False) -> dict | None:
    """The job ``name`` of ``kind`` (a backend); a one-line error (or ``None`` with
    ``missing_ok``) if absent."""
    return cluster.call(cluster.custom.get_namespaced_custom_object, kind.group, kind.version,
                        namespace, kind.plural, name,
                        op=Op("get", kind.resource, namespace, name), missing_ok=missing_ok)


def list_jobs(cluster: Cluster, kind, namespace: str | None) -> list[dict]:
    """The jobs of ``kind`` in ``namespace``, or in every namespace when it is ``None``."""
    op = Op("list", kind.resource, namespace)
    if namespace is None:
        reply = cluster.call(cluster.custom.list_cluster_custom_object, kind.group, kind.version,
                             kind.plural, op=op)
    else:
        reply = cluster.call(cluster.custom.list_namespaced_custom_object, kind.group,
                             kind.version, namespace, kind.plural, op=op)
    return reply.get("items") or []


def delete_job(cluster: Cluster, kind, job: dict) -> None:
    """Delete ``job`` the way ``kubectl delete`` does (background propagation).

    Its pods, Services and the ConfigMap kctl created go with it (they name the job as their
    owner). The uid precondition makes sure a job re-created meanwhile under the same name is
    left alone.
    """
    meta = job["metadata"]
    body = {"propagationPolicy": "Background", "preconditions": {"uid": meta["uid"]}}
    cluster.call(cluster.custom.delete_namespaced_custom_object, kind.group, kind.version,
                 meta["namespace"], kind.plural, meta["name"], body=body,
                 op=Op("delete", kind.resource, meta["namespace"], meta["name"]))


def not_served(kinds) -> str:
    """The error when the cluster serves none of ``kinds``: how to install each operator."""
    return "; ".join(kind.install for kind in kinds)


def served(cluster: Cluster, kinds, each) -> list:
    """``[(kind, each(kind))]`` for the kinds the cluster serves; a kind whose CRD is missing is
    skipped, and an error if none is served."""
    found, missing = [], []
    for kind in kinds:
        try:
            found.append((kind, each(kind)))
        except ApiError as err:
            if not err.type_missing:
                raise
            missing.append(kind)
    if not found:
        raise KctlError(not_served(missing))
    return found


def find_job(cluster: Cluster, kinds, name: str, namespace: str, kind: str | None = None):
    """``(backend, job)`` of the job ``name``, whichever of ``kinds`` (backends) it is.

    Args:
        kind: Look only at this kind (``--kind``); otherwise at every kind the cluster serves.

    Raises:
        KctlError: no such job (one line naming the kinds looked at), jobs of several kinds
            share the name (pass ``--kind``), or the cluster serves none of the kinds.
    """
    if kind is not None:
        (backend,) = [k for k in kinds if k.kind == kind]
        return backend, backend.get(cluster, name, namespace)
    found = [(k, job) for k, job in served(
        cluster, kinds, lambda k: k.get(cluster, name, namespace, missing_ok=True))]
    jobs = [(k, job) for k, job in found if job is not None]
    if len(jobs) == 1:
        return jobs[0]
    if jobs:
        names = " and ".join(f"a {k.kind}" for k, _ in jobs)
        raise KctlError(f'{names} are both named "{name}" in namespace "{namespace}": pass '
                        f"--kind {' or --kind '.join(k.kind for k, _ in jobs)}")
    if len(found) == 1:  # ask again, for the kind's own "not found" message
        return found[0][0], found[0][0].get(cluster, name, namespace)
    raise KctlError(f'no {" or ".join(k.kind for k, _ in found)} named "{name}" in namespace '
                    f'"{namespace}" (see: kctl list -n {namespace})')
