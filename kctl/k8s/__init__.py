"""Talking to a Kubernetes cluster, for any kind of job a backend describes.

The official ``kubernetes`` client is imported only inside functions of this package, so importing
``kctl.k8s`` or any of its modules stays cheap; only commands that reach a cluster pay for it. What
is kind-specific (API group, version, plural, pod labels, container, state) comes from the job's
backend (:class:`kctl.backends.kubernetes.KubernetesBackend`); nothing here knows a job kind.

Modules:
    cluster: connecting (kubeconfig and ``--context``, or in-cluster config) with short timeouts.
    errors: the client's exceptions turned into one-line :class:`~kctl.errors.KctlError` messages.
    discovery: which job kinds the cluster serves.
    apply: ``create(cluster, backend, objects)``, used by ``kctl train`` to submit.
    jobs: reading, listing, finding and deleting jobs of a backend's kind.
    pods: a pod's containers, status and events, as kubectl shows them.
    status: what ``kctl status`` prints.
    logs: what ``kctl logs`` prints, following restarted and recreated pods.
    doctor: the checks of ``kctl doctor`` (can a job run here, and what to fix).
"""

from __future__ import annotations

import argparse
from typing import NamedTuple

#: Default seconds for one API request (connect and read); ``--request-timeout`` changes it.
DEFAULT_REQUEST_TIMEOUT = 30.0


class Resource(NamedTuple):
    """One kind of API object, named the way error messages and RBAC name it.

    Args:
        plural: The resource, as in RBAC rules (``pods``, ``pods/log``, ``pytorchjobs``).
        group: The API group; ``""`` for the core group.
        kind: The object's kind.
        missing: For a job kind: what to say when the cluster does not serve it (how to install
            its operator); empty for the built-in kinds.
    """

    plural: str
    group: str
    kind: str
    missing: str = ""

    @property
    def qualified(self) -> str:
        """``pytorchjobs.kubeflow.org``, or ``pods`` for the core group (kubectl's spelling)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


PODS = Resource("pods", "", "Pod")
POD_LOGS = Resource("pods/log", "", "Pod")
EVENTS = Resource("events", "", "Event")
CONFIGMAPS = Resource("configmaps", "", "ConfigMap")
PVCS = Resource("persistentvolumeclaims", "", "PersistentVolumeClaim")
SECRETS = Resource("secrets", "", "Secret")
STORAGE_CLASSES = Resource("storageclasses", "storage.k8s.io", "StorageClass")


def add_cluster_arguments(parser: argparse.ArgumentParser, all_namespaces: bool = False) -> None:
    """Add kubectl's ``-n/--namespace``, ``--context`` and ``--request-timeout`` (and ``-A``)."""
    parser.add_argument("-n", "--namespace", metavar="NS",
                        help="namespace (default: the context's namespace, else 'default')")
    if all_namespaces:
        parser.add_argument("-A", "--all-namespaces", action="store_true",
                            help="jobs in every namespace")
    parser.add_argument("--context", metavar="CTX",
                        help="kubeconfig context to use (default: the current context)")
    parser.add_argument("--request-timeout", metavar="SECONDS", type=_positive_seconds,
                        default=DEFAULT_REQUEST_TIMEOUT,
                        help=f"give up on a request after this long (default: "
                             f"{DEFAULT_REQUEST_TIMEOUT:g})")


def add_kind_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--kind`` for commands that name a job: which kind, where several share the name."""
    from kctl.options import KINDS

    parser.add_argument("--kind", choices=KINDS,
                        help="the job's kind, where jobs of several kinds have the name")


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {value!r}")
    return seconds
