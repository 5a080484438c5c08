"""Connecting to a cluster the way kubectl does.

Configuration comes from the kubeconfig files named by ``KUBECONFIG`` (``:``-separated, merged),
else ``~/.kube/config``, using ``--context`` or the current context. With no kubeconfig at all and
``KUBERNETES_SERVICE_HOST`` set (kctl running in a pod), the pod's service account is used.

Requests have short timeouts. Reads (GET: get, list, watch, logs) that meet a busy or failing API
server are retried by urllib3's own machinery (:func:`read_retries`): on 429 and 5xx answers
(waiting what ``Retry-After`` asks, else backing off) and on connections dropped after they were
made. Connecting is not retried, so an unreachable cluster still fails in seconds, and writes
(create, delete) are not retried, so a submit that fails part-way is taken back whole
(:func:`kctl.k8s.apply.create`) instead of being repeated in part.
"""

from __future__ import annotations

import json
import os
from typing import Any

from kctl.errors import KctlError, UsageError
from kctl.k8s import DEFAULT_REQUEST_TIMEOUT
from kctl.k8s.errors import Op, api_errors

#: Seconds to wait for a TCP connection; a request's whole timeout may be shorter.
CONNECT_TIMEOUT = 10.0

#: Seconds a followed log stream may stay silent before it is read again from a new request;
#: that also notices connections that died without closing.
FOLLOW_READ_TIMEOUT = 600.0

#: Connections kept open to the API server at most (see :func:`connect`).
MAX_CONNECTIONS = 256

#: Answers after which a read is tried again (too many requests, server-side failures).
RETRY_STATUSES = (429, 500, 502, 503, 504)

#: How often a read is tried again, and the first back-off in seconds (then 2x, 4x, ... up to
#: :data:`RETRY_BACKOFF_MAX`) where the server does not say how long to wait.
READ_RETRIES = 5
RETRY_BACKOFF = 0.5
RETRY_BACKOFF_MAX = 8.0

#: Where a pod's service account keeps its namespace (in-cluster configuration).
IN_CLUSTER_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class Cluster:
    """One authenticated connection to the API server; close it (or use ``with``) when done.

    Args:
        api_client: A configured ``kubernetes.client.ApiClient``.
        namespace: The namespace commands use when none is given: the context's, else
            ``default``.
        server: The API server's URL, for messages.
        context: The kubeconfig context's name, or ``in-cluster``.
        timeout: Seconds for one request. Defaults to 30.
    """

    def __init__(self, api_client, namespace: str, server: str, context: str,
                 timeout: float = DEFAULT_REQUEST_TIMEOUT):
        from kubernetes import client

        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.storage = client.StorageV1Api(api_client)
        self.namespace = namespace
        self.server = server
        self.context = context
        self.timeout = (min(CONNECT_TIMEOUT, timeout), timeout)

    def call(self, method, *args: Any, op: Op, missing_ok: bool = False, **kwargs: Any):
        """Call a client method and return the server's JSON reply as plain dicts.

        API and connection errors become one-line :class:`~kctl.errors.KctlError` s that
        describe ``op``. With ``missing_ok``, a named object that does not exist gives ``None``.
        """
        with api_errors(op, self, missing_ok=missing_ok):
            reply = method(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
            try:
                return json.loads(reply.data)
            finally:
                reply.release_conn()
        return None  # api_errors swallowed a "not found" (missing_ok)

    def open_stream(self, method, *args: Any, op: Op, follow: bool = False, **kwargs: Any):
        """Call a client method that streams (pod logs) and return the open urllib3 response.

        A followed stream may rightly stay silent for long while a job computes, so it waits up
        to :data:`FOLLOW_READ_TIMEOUT` for the next bytes (a caller resumes after that).
        """
        timeout = (self.timeout[0], FOLLOW_READ_TIMEOUT) if follow else self.timeout
        with api_errors(op, self):
            return method(*args, follow=follow, _preload_content=False, _request_timeout=timeout,
                          **kwargs)

    def close(self) -> None:
        self.api_client.close()

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def kubeconfig_files() -> tuple[list[str], str]:
    """The kubeconfig files that exist, and where kctl looked (for messages)."""
    env = os.environ.get("KUBECONFIG")
    if env:
        candidates, looked = [p for p in env.split(os.pathsep) if p], f"KUBECONFIG={env}"
    else:
        candidates, looked = [os.path.expanduser("~/.kube/config")], "~/.kube/config"
    return [p for p in candidates if os.path.isfile(p)], looked


def connect(context: str | None = None, namespace: str | None = None,
            timeout: float = DEFAULT_REQUEST_TIMEOUT) -> Cluster:
    """Open a :class:`Cluster` for ``context`` (default: the current one).

    Args:
        context: A kubeconfig context name. Defaults to the kubeconfig's current context.
        namespace: Overrides the context's namespace as :attr:`Cluster.namespace`.
        timeout: Seconds for one request. Defaults to 30.

    Raises:
        UsageError: no kubeconfig and not in a cluster, or an unknown context.
        KctlError: a kubeconfig that cannot be used (bad file, missing credentials).
    """
    from kubernetes import client, config

    files, looked = kubeconfig_files()
    configuration = client.Configuration()
    if files:
        path = os.pathsep.join(files)
        context_name, default_ns = _pick_context(path, context, looked)
        try:
            config.load_kube_config(config_file=path, context=context_name,
                                    client_configuration=configuration, persist_config=False)
        except (config.ConfigException, OSError, ValueError) as err:
            raise KctlError(f"cannot use context {context_name!r} from {looked}: "
                            f"{_one_line(err)}") from None
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        if context:
            raise UsageError(f"--context {context} needs a kubeconfig, and none was found "
                             f"({looked}); inside a pod kctl uses its service account")
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException as err:
            raise KctlError(f"no kubeconfig ({looked} not found) and the in-cluster "
                            f"service account is unusable: {_one_line(err)}") from None
        context_name, default_ns = "in-cluster", _in_cluster_namespace()
    else:
        raise UsageError(f"no Kubernetes configuration: {looked} not found and not running in a "
                         "cluster; set KUBECONFIG or create ~/.kube/config")
    configuration.retries = read_retries()
    # ``kctl logs -f`` holds a connection per replica. The pool only keeps as many connections as
    # were in use at once, so a high cap costs nothing and avoids urllib3's "pool is full".
    configuration.connection_pool_maxsize = max(MAX_CONNECTIONS,
                                                configuration.connection_pool_maxsize or 0)
    return Cluster(client.ApiClient(configuration), namespace=namespace or default_ns,
                   server=configuration.host, context=context_name, timeout=timeout)


def read_retries():
    """urllib3's retry policy for every request (see the module docstring): reads only, on
    :data:`RETRY_STATUSES` and dropped connections; never on connecting or for writes. When the
    retries run out, the last answer is reported as it came."""
    from urllib3.util.retry import Retry

    return Retry(total=READ_RETRIES, connect=0, read=2, status=READ_RETRIES, other=0,
                 allowed_methods=frozenset({"GET", "HEAD"}), status_forcelist=RETRY_STATUSES,
                 backoff_factor=RETRY_BACKOFF, backoff_max=RETRY_BACKOFF_MAX,
                 respect_retry_after_header=True, raise_on_status=False)


def _pick_context(path: str, wanted: str | None, looked: str) -> tuple[str, str]:
    """The context to use and its namespace, with one-line errors for the usual mistakes."""
    import yaml
    from kubernetes import config

    try:
        contexts, _ = config.list_kube_config_contexts(config_file=path)
        # kubectl's merge rule: the first file that sets current-context wins (the client's
        # merge lets the last one win).
        current = next(filter(None, (_read_yaml(p).get("current-context")
                                     for p in path.split(os.pathsep))), None)
    except (config.ConfigException, OSError, ValueError, yaml.YAMLError) as err:
        raise KctlError(f"cannot read kubeconfig ({looked}): {_one_line(err)}") from None
    by_name = {c["name"]: c for c in contexts or []}
    names = ", ".join(sorted(by_name)) or "none"
    if wanted is None and not current:
        raise UsageError(f"no current context in {looked}: pass --context (available: {names})")
    chosen = by_name.get(wanted or current)
    if chosen is None:
        raise UsageError(f"context {wanted or current!r} not found in {looked} (available: "
                         f"{names})")
    return chosen["name"], (chosen.get("context") or {}).get("namespace") or "default"


def _read_yaml(path: str) -> dict:
    import yaml

    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    return data if isinstance(data, dict) else {}


def _in_cluster_namespace() -> str:
    try:
        with open(IN_CLUSTER_NAMESPACE_FILE, encoding="utf-8") as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__
