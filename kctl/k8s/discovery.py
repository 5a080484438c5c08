"""Which job kinds a cluster serves, from API discovery (``/apis/<group>/<version>``)."""

from __future__ import annotations

from kctl.k8s.cluster import Cluster
from kctl.k8s.errors import ApiError, Op


def serves(cluster: Cluster, kind) -> bool:
    """Whether the API server serves ``kind`` (a backend): its CRD is installed."""
    try:
        reply = cluster.call(cluster.custom.get_api_resources, kind.group, kind.version,
                             op=Op("get", kind.resource, None))
    except ApiError as err:
        if err.type_missing:
            return False
        raise
    return any(r.get("name") == kind.plural for r in (reply or {}).get("resources") or [])


def served_kinds(cluster: Cluster, kinds) -> list:
    """The kinds (backends) among ``kinds`` the cluster serves, in the order given."""
    return [kind for kind in kinds if serves(cluster, kind)]
