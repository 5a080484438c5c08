"""Talking to a Kubernetes cluster: submit, status, logs, delete and list PyTorchJobs.

The official ``kubernetes`` client is imported only inside functions of this package, so importing
``kctl.k8s`` or any of its modules stays cheap; only commands that reach a cluster pay for it.

Modules:
    cluster: connecting (kubeconfig and ``--context``, or in-cluster config) with short timeouts.
    errors: the client's exceptions turned into one-line :class:`~kctl.errors.KctlError` messages.
    apply: ``create(objects, namespace, context)``, used by ``kctl train`` to submit.
    jobs: reading, listing and deleting PyTorchJobs; a job's state, age and size.
    status: what ``kctl status`` prints.
    logs: what ``kctl logs`` prints, following restarted and recreated pods.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

#: The Kubeflow training-operator's API (v1.9).
GROUP = "kubeflow.org"
VERSION = "v1"
PLURAL = "pytorchjobs"
KIND = "PyTorchJob"
API_VERSION = f"{GROUP}/{VERSION}"

#: Labels the training-operator puts on every pod of a job.
JOB_NAME_LABEL = "training.kubeflow.org/job-name"
REPLICA_TYPE_LABEL = "training.kubeflow.org/replica-type"
REPLICA_INDEX_LABEL = "training.kubeflow.org/replica-index"

#: The container every replica runs the trainer in (the operator requires this name).
CONTAINER = "pytorch"

CRD_MISSING = (
    "the PyTorchJob CRD (kubeflow.org/v1) is not installed: install the Kubeflow training-operator "
    "v1.9 (kubectl apply --server-side -k "
    "\"github.com/kubeflow/training-operator.git/manifests/overlays/standalone?ref=v1.9.0\")")

#: Default seconds for one API request (connect and read); ``--request-timeout`` changes it.
DEFAULT_REQUEST_TIMEOUT = 30.0


@dataclass(frozen=True)
class Resource:
    """One kind of API object, named the way error messages and RBAC name it.

    Args:
        plural: The resource, as in RBAC rules (``pods``, ``pods/log``, ``pytorchjobs``).
        group: The API group; ``""`` for the core group.
        kind: The object's kind.
    """

    plural: str
    group: str
    kind: str

    @property
    def qualified(self) -> str:
        """``pytorchjobs.kubeflow.org``, or ``pods`` for the core group (kubectl's spelling)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


PYTORCHJOBS = Resource(PLURAL, GROUP, KIND)
PODS = Resource("pods", "", "Pod")
POD_LOGS = Resource("pods/log", "", "Pod")
EVENTS = Resource("events", "", "Event")
CONFIGMAPS = Resource("configmaps", "", "ConfigMap")
PVCS = Resource("persistentvolumeclaims", "", "PersistentVolumeClaim")


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


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {value!r}")
    return seconds
