"""Fault injection in the fake API server, seen by the real ``kubernetes`` client: with and
without urllib3's retry machinery, and in the record of what was answered; watches, whole and
cut."""

from __future__ import annotations

import json
import threading
import time

import pytest
import urllib3
from kubernetes import client, config, watch

CONFIG_MAPS = "/api/v1/namespaces/default/configmaps"


def _api(fake, tmp_path, retries=None) -> client.ApiClient:
    """A client for ``fake``; ``retries`` (a urllib3 ``Retry``) as kctl would configure one."""
    configuration = client.Configuration()
    config.load_kube_config(str(fake.write_kubeconfig(tmp_path / "kc")),
                            client_configuration=configuration)
    configuration.retries = retries
    return client.ApiClient(configuration)


def _retry(**kwargs) -> urllib3.Retry:
    return urllib3.Retry(total=3, backoff_factor=0, status_forcelist=(429, 500, 503),
                         allowed_methods=None, raise_on_status=False, **kwargs)


def _config_map(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"a": "b"}}


def _answers(fake, path=CONFIG_MAPS) -> list:
    return [(r.method, r.status, r.injected) for r in fake.requests if r.path == path]


@pytest.mark.parametrize("code, reason", [(429, "TooManyRequests"), (500, "InternalError"),
                                          (503, "ServiceUnavailable")])
def test_an_error_answer_is_a_status_the_client_raises(fake_kube, tmp_path, code, reason):
    fake_kube.inject(code, path=CONFIG_MAPS, retry_after=2)
    core = client.CoreV1Api(_api(fake_kube, tmp_path, urllib3.Retry(0)))
    with pytest.raises(client.ApiException) as err:
        core.list_namespaced_config_map("default")
    assert (err.value.status, json.loads(err.value.body)["reason"]) == (code, reason)
    assert err.value.headers.get("Retry-After") == (None if code == 500 else "2")
    assert core.list_namespaced_config_map("default").items == []  # only the next request
    assert _answers(fake_kube) == [("GET", code, True), ("GET", 200, False)]


def test_the_default_client_retries_reads_on_429_and_503_with_retry_after(fake_kube, tmp_path):
    """urllib3's default Retry (3 tries) honours Retry-After on 429/503 for idempotent methods;
    500s, resets and creates it does not retry."""
    fake_kube.inject(429, path=CONFIG_MAPS, retry_after=0)
    fake_kube.inject(503, path=CONFIG_MAPS, retry_after=0)
    core = client.CoreV1Api(_api(fake_kube, tmp_path))
    assert core.list_namespaced_config_map("default").items == []
    assert _answers(fake_kube) == [("GET", 429, True), ("GET", 503, True), ("GET", 200, False)]
    fake_kube.inject(500, path=CONFIG_MAPS)
    with pytest.raises(client.ApiException):
        core.list_namespaced_config_map("default")
    fake_kube.inject(429, path=CONFIG_MAPS, method="POST", retry_after=0)
    with pytest.raises(client.ApiException):
        core.create_namespaced_config_map("default", _config_map("x"))
    assert fake_kube.list("configmaps") == []


def test_a_retrying_client_waits_retry_after_and_succeeds(fake_kube, tmp_path):
    fake_kube.inject(429, path=CONFIG_MAPS, retry_after=1)
    fake_kube.inject(500, path=CONFIG_MAPS)
    core = client.CoreV1Api(_api(fake_kube, tmp_path, _retry()))
    started = time.monotonic()
    assert core.list_namespaced_config_map("default").items == []
    assert time.monotonic() - started >= 1.0  # it honoured Retry-After
    assert _answers(fake_kube) == [("GET", 429, True), ("GET", 500, True), ("GET", 200, False)]


def test_a_reset_before_anything_happens(fake_kube, tmp_path):
    fake_kube.inject("reset", path=CONFIG_MAPS, method="POST")
    core = client.CoreV1Api(_api(fake_kube, tmp_path))
    with pytest.raises(urllib3.exceptions.ProtocolError):
        core.create_namespaced_config_map("default", _config_map("first"))
    assert fake_kube.list("configmaps") == []  # a failed create leaves nothing behind
    assert _answers(fake_kube) == [("POST", "reset", True)]
    core = client.CoreV1Api(_api(fake_kube, tmp_path, _retry()))
    fake_kube.inject("reset", path=CONFIG_MAPS, method="GET")
    assert core.list_namespaced_config_map("default").items == []  # read retried
    assert _answers(fake_kube)[1:] == [("GET", "reset", True), ("GET", 200, False)]


def test_a_reset_after_the_request_took_effect(fake_kube, tmp_path):
    fake_kube.inject("reset-mid", path=CONFIG_MAPS, method="POST")
    core = client.CoreV1Api(_api(fake_kube, tmp_path))
    with pytest.raises(urllib3.exceptions.ProtocolError):
        core.create_namespaced_config_map("default", _config_map("first"))
    assert [c["metadata"]["name"] for c in fake_kube.list("configmaps")] == ["first"]
    with pytest.raises(client.ApiException) as err:  # a blind retry of the create
        core.create_namespaced_config_map("default", _config_map("first"))
    assert err.value.status == 409
    assert _answers(fake_kube) == [("POST", "reset", True), ("POST", 409, False)]


def test_a_followed_log_is_cut_mid_stream(fake_kube, tmp_path):
    fake_kube.add_job("llm", workers=0)
    fake_kube.add_pod("llm", "master-0", logs="epoch 1\nepoch 2\n")
    fake_kube.inject("reset-mid", path=r"/pods/llm-master-0/log\?.*follow=true")
    core = client.CoreV1Api(_api(fake_kube, tmp_path))
    stream = core.read_namespaced_pod_log("llm-master-0", "default", follow=True,
                                          _preload_content=False)
    received = b""
    with pytest.raises(urllib3.exceptions.ProtocolError):
        for chunk in stream.stream(64):
            received += chunk
    assert received == b"epoch 1\nepoch 2\n"  # what the log had, then no final chunk
    log = "/api/v1/namespaces/default/pods/llm-master-0/log"
    assert _answers(fake_kube, log) == [("GET", "reset", True)]
    fake_kube.finish_pod("llm-master-0")
    again = core.read_namespaced_pod_log("llm-master-0", "default", follow=True)
    assert again == "epoch 1\nepoch 2\n"  # the follower reconnects and gets the whole log


def test_faults_match_method_path_and_count(fake_kube, tmp_path):
    fault = fake_kube.inject(503, path="configmaps", method="post", times=2)
    core = client.CoreV1Api(_api(fake_kube, tmp_path))
    assert core.list_namespaced_config_map("default").items == []  # a GET: not matched
    for _ in range(2):
        with pytest.raises(client.ApiException):
            core.create_namespaced_config_map("default", _config_map("x"))
    core.create_namespaced_config_map("default", _config_map("x"))
    assert fault.times == 0
    assert [a[1] for a in _answers(fake_kube)] == [200, 503, 503, 201]
    with pytest.raises(ValueError, match="cannot inject 404"):
        fake_kube.inject(404)


def test_every_answer_is_recorded(fake_kube, tmp_path):
    core = client.CoreV1Api(_api(fake_kube, tmp_path))
    with pytest.raises(client.ApiException):
        core.read_namespaced_config_map("missing", "default")
    core.create_namespaced_config_map("default", _config_map("x"))
    assert [(r.method, r.path, r.status, r.injected) for r in fake_kube.requests] == [
        ("GET", f"{CONFIG_MAPS}/missing", 404, False), ("POST", CONFIG_MAPS, 201, False)]


def test_a_watch_streams_changes_and_can_be_cut(fake_kube, tmp_path):
    fake_kube.add_runtime()
    fake_kube.add_trainjob("llm")
    custom = client.CustomObjectsApi(_api(fake_kube, tmp_path))
    args = ("trainer.kubeflow.org", "v1alpha1", "default", "trainjobs")
    listed = custom.list_namespaced_custom_object(*args)
    version = listed["metadata"]["resourceVersion"]

    def controller():
        time.sleep(0.3)
        fake_kube.set_trainjob_status("llm", [("Complete", "True")])

    threading.Thread(target=controller, daemon=True).start()
    seen = []
    for event in watch.Watch().stream(custom.list_namespaced_custom_object, *args,
                                      resource_version=version, timeout_seconds=5):
        seen.append((event["type"], [c["type"] for c in
                                     event["object"].get("status", {}).get("conditions", [])]))
        if seen[-1][1] == ["Complete"]:
            break
    assert seen == [("MODIFIED", ["Complete"])]

    fake_kube.inject("reset-mid", path=r"/trainjobs\?.*watch=true")
    stream = custom.list_namespaced_custom_object(*args, watch=True, _preload_content=False)
    lines = []
    with pytest.raises(urllib3.exceptions.ProtocolError):
        for line in stream.stream(1024):
            lines.append(line)
    (added,) = [json.loads(line) for line in b"".join(lines).splitlines()]
    assert (added["type"], added["object"]["metadata"]["name"]) == ("ADDED", "llm")
    assert [r.status for r in fake_kube.requests if r.query.get("watch") == "true"][-1] == "reset"


def test_a_watch_replays_changes_after_its_resource_version_and_ends_on_time(fake_kube, tmp_path):
    core = client.CoreV1Api(_api(fake_kube, tmp_path))
    version = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", _config_map("a"))
    fake_kube.add_job("llm")  # another resource: not in this watch
    core.delete_namespaced_config_map("a", "default")
    stream = core.list_namespaced_config_map("default", watch=True, resource_version=version,
                                             timeout_seconds=1, _preload_content=False)
    started = time.monotonic()
    events = [json.loads(line) for line in stream.data.splitlines()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"), ("DELETED", "a")]
    assert 0.9 <= time.monotonic() - started < 5
