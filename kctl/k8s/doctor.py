"""``kctl doctor``: can a job run on this cluster, and if not, what to fix.

Each check is a small function that reads the cluster and returns a :class:`Check`: a mark, the
check's name and one line of text that carries the fix when something is wrong. The marks:

- ``✓`` fine;
- ``✗`` no job can run until this is fixed (``kctl doctor`` then exits 1): the API server cannot
  be reached, no usable operator, no kind the user may create, no ConfigMaps or claims allowed,
  no default StorageClass for the work-dir claim, a namespace that does not exist;
- ``!`` some jobs cannot run (multi-node TrainJobs without ReadWriteMany storage, GPU jobs without
  GPU nodes, multi-node PyTorchJobs under Pod Security ``restricted``), or kctl cannot tell
  because RBAC forbids the read;
- ``-`` information: an operator that is not installed while another one works, Kueue.

Which kinds there are, and their API group, version, plural and install hint, come from the
backends (:class:`kctl.backends.kubernetes.KubernetesBackend`), and so do the facts only one kind
has: whether what serves it is fit for what kctl renders (``installation``: the Trainer's version
and runtimes for TrainJobs) and what Pod Security ``restricted`` rejects of it
(``restricted_rejects``: the init container the training operator v1 adds to a PyTorchJob's
Workers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from kctl.errors import KctlError
from kctl.k8s import CONFIGMAPS, PVCS, STORAGE_CLASSES, Resource
from kctl.k8s.cluster import Cluster
from kctl.k8s.discovery import serves
from kctl.k8s.errors import ApiError, Op

OK, FAIL, WARN, INFO = "✓", "✗", "!", "-"

#: The check names, in the order they print (each job kind's name comes after the API server).
API, GPUS, STORAGE, RWX, KUEUE, POD_SECURITY, PERMISSIONS = (
    "API server", "GPUs", "Storage", "ReadWriteMany", "Kueue", "Pod Security", "Permissions")

VERSION = Resource("version", "", "Version")
NODES = Resource("nodes", "", "Node")
NAMESPACES = Resource("namespaces", "", "Namespace")
ACCESS_REVIEWS = Resource("selfsubjectaccessreviews", "authorization.k8s.io",
                          "SelfSubjectAccessReview")

#: Kueue's API group; LocalQueues are read at the version the cluster prefers.
KUEUE_GROUP = "kueue.x-k8s.io"

#: The annotations that mark the default StorageClass (the beta one is still honoured).
DEFAULT_CLASS = ("storageclass.kubernetes.io/is-default-class",
                 "storageclass.beta.kubernetes.io/is-default-class")

#: Provisioners of shared file systems, which offer ReadWriteMany. A StorageClass does not say
#: which access modes it offers, so this is a guess, and ``kctl doctor`` says so. A provisioner
#: matches by its whole name or as a suffix after "." or "/" (``rook-ceph.cephfs.csi.ceph.com``,
#: ``k8s-sigs.io/nfs-subdir-external-provisioner``).
RWX_PROVISIONERS = (
    "nfs.csi.k8s.io", "nfs-subdir-external-provisioner", "efs.csi.aws.com", "fsx.csi.aws.com",
    "filestore.csi.storage.gke.io", "file.csi.azure.com", "kubernetes.io/azure-file",
    "cephfs.csi.ceph.com", "kubernetes.io/cephfs", "kubernetes.io/glusterfs",
    "driver.longhorn.io", "juicefs.csi.juicefs.com", "spectrumscale.csi.ibm.com",
    "beegfs.csi.netapp.com")

#: The namespace label that sets the Pod Security level pods must meet.
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"

#: At most this many names are listed in one line (runtimes, queues, classes).
MAX_NAMES = 5


@dataclass(frozen=True)
class Check:
    """One line of ``kctl doctor``: its mark (:data:`OK`, :data:`FAIL`, :data:`WARN`,
    :data:`INFO`), the check's name and what was found, with the fix when something is wrong."""

    mark: str
    name: str
    text: str

    def line(self, width: int) -> str:
        return f"{self.mark} {self.name.ljust(width)}  {self.text}"


def names(kinds) -> list[str]:
    """Every check's name in print order, for aligning the lines."""
    return [API, *(k.kind for k in kinds), GPUS, STORAGE, RWX, KUEUE, POD_SECURITY, PERMISSIONS]


def checkup(cluster: Cluster, kinds) -> Iterator[Check]:
    """Every check, in order, against ``cluster`` and its namespace, for the job ``kinds``
    (backends). When the API server does not answer, that is the only check."""
    api = api_server(cluster)
    yield api
    if api.mark == FAIL:
        return
    operators, usable, served = job_kinds(cluster, kinds)
    yield from operators
    yield _guarded(GPUS, gpus, cluster)
    classes = _guarded(STORAGE, storage_classes, cluster)
    if isinstance(classes, Check):  # could not be read: the same line for both checks
        yield classes
        yield Check(classes.mark, RWX, classes.text)
    else:
        yield default_storage_class(classes)
        yield read_write_many(classes)
    yield _guarded(KUEUE, kueue, cluster)
    yield _guarded(POD_SECURITY, pod_security, cluster, served)
    yield _guarded(PERMISSIONS, permissions, cluster, served, usable)


def _guarded(name: str, check, *args):
    """``check(*args)``, or a failed :class:`Check` named ``name`` where the cluster answered
    with an error no check expects (e.g. a 500 that outlived the retries)."""
    try:
        return check(*args)
    except KctlError as err:
        return Check(FAIL, name, str(err))


def forbidden(err: KctlError) -> bool:
    return isinstance(err, ApiError) and err.status == 403


def cannot_tell(verb: str, resource: Resource, namespace: str | None = None) -> str:
    where = f' in "{namespace}"' if namespace else ""
    flag = f" -n {namespace}" if namespace else ""
    return (f"cannot tell: you may not {verb} {resource.qualified}{where} (RBAC; check: kubectl "
            f"auth can-i {verb} {resource.qualified}{flag})")


def listed(items) -> str:
    items = list(items)
    more = f" (+{len(items) - MAX_NAMES} more)" if len(items) > MAX_NAMES else ""
    return ", ".join(items[:MAX_NAMES]) + more


# -- the checks -------------------------------------------------------------------------------


def api_server(cluster: Cluster) -> Check:
    """The API server answers ``/version``: its address, the context and Kubernetes' version."""
    from kubernetes import client

    try:
        version = cluster.call(client.VersionApi(cluster.api_client).get_code,
                               op=Op("get", VERSION, None))
    except KctlError as err:
        hint = "" if isinstance(err, ApiError) else (
            " (is the cluster up, and is it the right context? see: kubectl config "
            "get-contexts)")
        return Check(FAIL, API, f"{err}{hint}")
    return Check(OK, API, f'{cluster.server} (context "{cluster.context}"), Kubernetes '
                          f"{version.get('gitVersion', '?')}")


def job_kinds(cluster: Cluster, kinds) -> tuple[list[Check], list, list]:
    """One line per job kind: is its CRD served, and is what serves it fit for what kctl
    renders (the backend's ``installation``). Returns the lines, the usable kinds and the served
    ones.

    A kind that is not installed, or not usable, only informs or warns while another kind is
    usable; when none is, every kind's line fails."""
    found = []  # (kind, served, mark: OK usable, WARN usable but unsure, FAIL not usable, text)
    for kind in kinds:
        served = False
        try:
            served = serves(cluster, kind)
            if not served:
                found.append((kind, False, FAIL, kind.install))
                continue
            found.append((kind, True, *kind.installation(cluster)))
        except KctlError as err:
            found.append((kind, served, FAIL, str(err)))
    usable = [kind for kind, _, mark, _ in found if mark != FAIL]
    lines = [Check(FAIL if not usable else WARN if served else INFO, kind.kind, text)
             if mark == FAIL else Check(mark, kind.kind, text)
             for kind, served, mark, text in found]
    return lines, usable, [kind for kind, served, _, _ in found if served]


def gpus(cluster: Cluster) -> Check:
    """Ready nodes with allocatable ``nvidia.com/gpu``, and how many GPUs they offer."""
    from kctl.backends.kubernetes import GPU_RESOURCE

    try:
        nodes = cluster.call(cluster.core.list_node, op=Op("list", NODES, None)).get("items")
    except ApiError as err:
        if not forbidden(err):
            raise
        return Check(WARN, GPUS, cannot_tell("list", NODES))
    counts, not_ready = [], 0
    for node in nodes or []:
        status = node.get("status") or {}
        try:
            count = int((status.get("allocatable") or {}).get(GPU_RESOURCE) or 0)
        except ValueError:
            count = 0
        if count <= 0:
            continue
        if any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in status.get("conditions") or []):
            counts.append(count)
        else:
            not_ready += 1
    late = f"{not_ready} GPU node{'s' if not_ready > 1 else ''} not Ready" if not_ready else ""
    if not counts:
        found = (f"no Ready node offers {GPU_RESOURCE} ({late})" if late else
                 f"none of the {len(nodes or [])} nodes offers {GPU_RESOURCE}")
        return Check(WARN, GPUS, f"{found}: GPU jobs stay Pending; install the NVIDIA device "
                                 "plugin or GPU Operator, or train on CPUs (--gpus 0)")
    per_node = (f"{counts[0]}" if min(counts) == max(counts)
                else f"{min(counts)} to {max(counts)}")
    return Check(OK, GPUS, f"{sum(counts)} {GPU_RESOURCE} on {len(counts)} "
                           f"node{'s' if len(counts) > 1 else ''} ({per_node} per node)"
                           f"{'; ' + late if late else ''}")


def storage_classes(cluster: Cluster) -> list[dict] | Check:
    """The StorageClasses, or a :data:`WARN` line where RBAC forbids listing them."""
    try:
        return cluster.call(cluster.storage.list_storage_class,
                            op=Op("list", STORAGE_CLASSES, None)).get("items") or []
    except ApiError as err:
        if not forbidden(err):
            raise
        return Check(WARN, STORAGE, cannot_tell("list", STORAGE_CLASSES))


def _provisioned(storage_class: dict) -> str:
    return f'"{storage_class["metadata"]["name"]}" ({storage_class.get("provisioner", "?")})'


def _defaults(classes: list[dict]) -> list[dict]:
    """The classes marked default, newest first (Kubernetes takes the newest)."""
    marked = [c for c in classes if any(
        (c["metadata"].get("annotations") or {}).get(a) == "true" for a in DEFAULT_CLASS)]
    return sorted(marked, key=lambda c: c["metadata"].get("creationTimestamp") or "",
                  reverse=True)


def default_storage_class(classes: list[dict]) -> Check:
    """A default StorageClass: what the work-dir claim ``kctl train`` creates gets without
    ``--storage-class``."""
    defaults = _defaults(classes)
    if not defaults:
        if not classes:
            return Check(FAIL, STORAGE, "no StorageClass at all, so the work-dir claim kctl "
                                        "creates would stay Pending: pass --work-dir-pvc CLAIM, "
                                        "or ask a cluster admin for a default StorageClass")
        return Check(FAIL, STORAGE, f"no default StorageClass, so the work-dir claim kctl creates "
                                    f"would stay Pending: pass --storage-class CLASS (here: "
                                    f"{listed(c['metadata']['name'] for c in classes)}) or "
                                    "--work-dir-pvc CLAIM, or ask a cluster admin to mark a "
                                    "class default")
    more = f" (the newest of {len(defaults)} marked default)" if len(defaults) > 1 else ""
    return Check(OK, STORAGE, f"default StorageClass {_provisioned(defaults[0])}{more}")


def offers_read_write_many(provisioner: str) -> bool:
    """Whether ``provisioner`` is known to offer ReadWriteMany (:data:`RWX_PROVISIONERS`)."""
    return any(provisioner == p or provisioner.endswith(("." + p, "/" + p))
               for p in RWX_PROVISIONERS)


def read_write_many(classes: list[dict]) -> Check:
    """Whether a StorageClass offers ReadWriteMany, guessed from its provisioner: a multi-node
    TrainJob mounts its work-dir claim on every node; a PyTorchJob's Master alone mounts it."""
    shared = [c for c in classes if offers_read_write_many(c.get("provisioner", ""))]
    default = (_defaults(classes) or [None])[0]
    if default in shared:
        return Check(OK, RWX, f"the default StorageClass {_provisioned(default)} likely offers "
                              "it (a guess from its provisioner)")
    if shared:
        offering = ", ".join(map(_provisioned, shared[:MAX_NAMES]))
        return Check(OK, RWX, f"{offering} likely offer{'s' if len(shared) == 1 else ''} it (a "
                              "guess from the provisioner); for a multi-node TrainJob pass "
                              f"--storage-class {shared[0]['metadata']['name']}")
    provisioners = listed(sorted({c.get("provisioner", "?") for c in classes}))
    guess = f"a guess from the provisioners: {provisioners}" if classes else "no StorageClass"
    return Check(WARN, RWX, f"no StorageClass known to offer it ({guess}): a multi-node TrainJob "
                            "needs it (--storage-class CLASS of a class that offers it, or "
                            "--work-dir-pvc CLAIM); PyTorchJobs do not")


def kueue(cluster: Cluster) -> Check:
    """Kueue's LocalQueues in the namespace (information: Kueue is needed only for ``--queue``)."""
    from kubernetes import client

    namespace = cluster.namespace
    groups = cluster.call(client.ApisApi(cluster.api_client).get_api_versions,
                          op=Op("get", Resource("apis", "", "APIGroupList"), None))
    version = next((g["preferredVersion"]["version"] for g in groups.get("groups") or []
                    if g.get("name") == KUEUE_GROUP), None)
    if version is None:
        return Check(INFO, KUEUE, "not installed (only --queue needs it)")
    queues = Resource("localqueues", KUEUE_GROUP, "LocalQueue")
    try:
        reply = cluster.call(cluster.custom.list_namespaced_custom_object, KUEUE_GROUP, version,
                             namespace, queues.plural, op=Op("list", queues, namespace))
    except ApiError as err:
        if not forbidden(err):
            raise
        return Check(INFO, KUEUE, cannot_tell("list", queues, namespace))
    found = [f'{q["metadata"]["name"]} (ClusterQueue {(q.get("spec") or {}).get("clusterQueue")})'
             for q in reply.get("items") or []]
    if not found:
        return Check(INFO, KUEUE, f'installed, no LocalQueue in namespace "{namespace}" '
                                  "(--queue needs one; a cluster admin creates it)")
    return Check(OK, KUEUE, f'LocalQueues in "{namespace}": {listed(found)}; pass --queue NAME')


def pod_security(cluster: Cluster, served) -> Check:
    """The namespace's Pod Security ``enforce`` level, and what it rejects of the served kinds
    (``restricted``: each backend's ``restricted_rejects``). A namespace that does not exist
    fails."""
    namespace = cluster.namespace
    try:
        found = cluster.call(cluster.core.read_namespace, namespace,
                             op=Op("get", NAMESPACES, None, namespace))
    except ApiError as err:
        if err.status == 404:
            return Check(FAIL, POD_SECURITY, str(err))
        if not forbidden(err):
            raise
        return Check(WARN, POD_SECURITY, f'cannot tell: you may not get namespace "{namespace}" '
                                         f"(RBAC; check: kubectl auth can-i get namespace/"
                                         f"{namespace})")
    level = ((found.get("metadata") or {}).get("labels") or {}).get(ENFORCE_LABEL)
    if level is None:
        return Check(OK, POD_SECURITY, f'namespace "{namespace}" has no {ENFORCE_LABEL} label '
                                       "(the cluster's default applies, privileged unless set)")
    rejects = [k.restricted_rejects for k in served if k.restricted_rejects]
    if level != "restricted" or not rejects:
        return Check(OK, POD_SECURITY, f'namespace "{namespace}" enforces {level}')
    others = [k.kind for k in served if not k.restricted_rejects]
    instead = f", --kind {others[0]}" if others else ""
    return Check(WARN, POD_SECURITY, f'namespace "{namespace}" enforces restricted, which '
                                     f"{'; '.join(rejects)}: run one node{instead}, or use a "
                                     "namespace at baseline")


def permissions(cluster: Cluster, served, usable) -> Check:
    """SelfSubjectAccessReviews: may the user create the served job kinds, ConfigMaps and
    claims in the namespace? It fails when no usable kind, or ConfigMaps or claims, may be
    created."""
    namespace = cluster.namespace
    needed = [k.resource for k in served] + [CONFIGMAPS, PVCS]
    denied = [r for r in needed if not may(cluster, "create", r, namespace)]
    allowed = [r.qualified for r in needed if r not in denied]
    runnable = [k for k in usable if k.resource not in denied]
    if not denied:
        return Check(OK, PERMISSIONS, f'may create {", ".join(allowed)} in "{namespace}"')
    blocking = (CONFIGMAPS in denied or PVCS in denied or (usable and not runnable))
    may_too = f'may create {", ".join(allowed)}, but ' if allowed else ""
    return Check(FAIL if blocking else WARN, PERMISSIONS,
                 f"{may_too}may not create {', '.join(r.qualified for r in denied)} in "
                 f'"{namespace}" (RBAC): ask a cluster admin for a Role that allows it (see: '
                 f"kubectl auth can-i --list -n {namespace})")


def may(cluster: Cluster, verb: str, resource: Resource, namespace: str) -> bool:
    """A SelfSubjectAccessReview: may the current user ``verb`` ``resource`` in ``namespace``?"""
    from kubernetes import client

    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
              "spec": {"resourceAttributes": {"namespace": namespace, "verb": verb,
                                              "group": resource.group,
                                              "resource": resource.plural}}}
    reply = cluster.call(client.AuthorizationV1Api(cluster.api_client)
                         .create_self_subject_access_review, review,
                         op=Op("create", ACCESS_REVIEWS, None))
    return bool((reply.get("status") or {}).get("allowed"))
