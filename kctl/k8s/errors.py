"""The ``kubernetes`` client's exceptions as one line a user can act on.

The client raises ``ApiException`` (with the server's ``Status`` object as its body) for HTTP
errors and urllib3 exceptions when the server cannot be reached; both print pages of text.
:func:`api_errors` turns them into :class:`~kctl.errors.KctlError` that say what kctl was doing
and what to do next.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass

from kctl.errors import KctlError
from kctl.k8s import Resource


class ApiError(KctlError):
    """An error reply from the API server, as one line.

    Attributes:
        status: The HTTP code.
        type_missing: The server does not serve the requested type at all (a 404 that names no
            object), e.g. a job kind whose operator is not installed.
    """

    def __init__(self, status: int, message: str, type_missing: bool = False):
        super().__init__(message)
        self.status = status
        self.type_missing = type_missing


@dataclass(frozen=True)
class Op:
    """What a request does, for messages: ``create pytorchjobs.kubeflow.org "x" in "ns"``.

    Args:
        verb: The RBAC verb (get, list, create, delete, ...).
        resource: The resource acted on.
        namespace: The namespace, or ``None`` for all namespaces.
        name: The object's name, when the request names one.
    """

    verb: str
    resource: Resource
    namespace: str | None
    name: str | None = None


@contextmanager
def api_errors(op: Op, cluster, missing_ok: bool = False):
    """Re-raise the client's errors inside the block as a one-line :class:`KctlError`.

    With ``missing_ok``, "the named object does not exist" is swallowed instead (the block
    ends early; its caller decides what that means).
    """
    import urllib3
    from kubernetes.client.exceptions import ApiException

    try:
        yield
    except ApiException as err:
        if missing_ok and object_missing(err):
            return
        raise from_api_exception(err, op, cluster) from None
    except urllib3.exceptions.HTTPError as err:
        raise unreachable(err, cluster) from None


def from_api_exception(err, op: Op, cluster) -> ApiError:
    """The error for an HTTP error reply (``err`` is an ``ApiException``)."""
    details = _status(err.body).get("details") or {}
    return ApiError(err.status, _message(err, op, cluster),
                    type_missing=err.status == 404 and not details.get("name")
                    and details.get("kind") != "namespaces")


def _message(err, op: Op, cluster) -> str:
    status = _status(err.body)
    message = one_line(status.get("message") or err.reason or "")
    reason = status.get("reason") or ""
    details = status.get("details") or {}
    code = err.status
    res, ns, name = op.resource, op.namespace, op.name
    where = f' in namespace "{ns}"' if ns else " across all namespaces"

    if code == 0:  # the client's way of reporting a TLS failure
        return f"TLS error talking to {cluster.server}: {one_line(err.reason)}"
    if code == 401:
        return (f"the API server {cluster.server} rejected kctl's credentials (401 Unauthorized): "
                f'log in again or refresh the token of context "{cluster.context}"')
    if code == 403 and "admission webhook" in message and "denied the request" in message:
        return f'the cluster refused {res.kind} "{name}": {message}'
    if code == 403:
        target = f'{res.qualified} "{name}"' if name and op.verb != "create" else res.qualified
        return (f"forbidden: you may not {op.verb} {target}{where} (RBAC); ask a cluster admin "
                f"for a Role that allows it (check: kubectl auth can-i {op.verb} "
                f"{res.qualified}{_ns_flag(ns)})")
    if code == 404 and details.get("kind") == "namespaces":
        return (f'namespace "{details.get("name")}" not found (create it: kubectl create '
                f'namespace {details.get("name")})')
    if code == 404 and not details.get("name"):  # the type itself is unknown
        return res.missing or f"the API server does not serve {res.qualified}: {message}"
    if code == 404 and res.missing:  # a job
        return f'{res.kind} "{name}" not found{where} (see: kctl list{_ns_flag(ns)})'
    if code == 404:
        return f'{res.kind} "{name}" not found{where}'
    if code == 409 and reason == "AlreadyExists" and res.missing:
        return (f'a {res.kind} named "{name}" already exists{where}: choose another name with '
                f"--name, or delete it first: kctl delete {name}{_ns_flag(ns)}")
    if code == 409 and reason == "AlreadyExists":
        return f'{res.kind} "{name}" already exists{where}'
    if code == 422:
        return f'the API server rejected {res.kind} "{name}": {message}'
    return (f"cannot {op.verb} {res.qualified}{where}: {message or 'no message'} "
            f"({code} {reason or err.reason})")


def object_missing(err) -> bool:
    """Whether an ``ApiException`` says a named object is missing (not its type or namespace)."""
    details = _status(err.body).get("details") or {}
    return err.status == 404 and bool(details.get("name")) and details.get("kind") != "namespaces"


def unreachable(err, cluster) -> KctlError:
    """The message for a connection that failed (``err`` is a urllib3 exception)."""
    import urllib3.exceptions as u

    if isinstance(err, u.MaxRetryError) and err.reason is not None:
        err = err.reason
    connect_s, read_s = cluster.timeout
    if isinstance(err, u.NameResolutionError):
        why = "its host name does not resolve"
    elif isinstance(err, u.NewConnectionError):
        text = str(err)
        why = ("connection refused" if "refused" in text.lower()
               else text.split("Failed to establish a new connection: ")[-1])
    elif isinstance(err, u.ConnectTimeoutError):
        why = f"no connection within {connect_s:g}s"
    elif isinstance(err, u.ReadTimeoutError):
        why = f"no reply within {read_s:g}s (--request-timeout)"
    elif isinstance(err, u.SSLError):
        why = f"TLS error: {one_line(err)}"
    else:
        why = one_line(err)
    return KctlError(f'cannot reach the Kubernetes API server {cluster.server} (context '
                     f'"{cluster.context}"): {why}')


def one_line(text) -> str:
    """``text`` with all whitespace runs (newlines included) made single spaces."""
    return " ".join(str(text).split())


def _ns_flag(ns: str | None) -> str:
    return f" -n {ns}" if ns else " -A"


def _status(body) -> dict:
    """The ``Status`` object the API server sends with an error, or ``{}``."""
    if not body:
        return {}
    try:
        status = json.loads(body)
    except (TypeError, ValueError):
        return {"message": body}
    return status if isinstance(status, dict) else {}
