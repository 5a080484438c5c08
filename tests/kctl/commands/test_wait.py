"""kctl wait (and the end of kctl train --follow) against the fake API server."""

import threading
import time

import pytest

from kctl.k8s import wait
from kctl.k8s.wait import parse_duration

RUNNING = [("Created", "True"), ("Running", "True")]


@pytest.fixture
def quick(monkeypatch):
    monkeypatch.setattr(wait, "POLL_SECONDS", 0.05)


def _later(action, delay=0.3):
    thread = threading.Thread(target=lambda: (time.sleep(delay), action()), daemon=True)
    thread.start()
    return thread


def test_exit_0_once_the_job_succeeded(fake_kube, run_kctl, quick):
    fake_kube.add_job("llm", conditions=RUNNING)
    _later(lambda: fake_kube.set_conditions("llm", [("Created", "True"), ("Running", "False"),
                                                    ("Succeeded", "True")]))
    result = run_kctl("wait", "llm", "--timeout", "30s")
    assert (result.code, result.out) == (0, "")
    assert result.err == ("kctl: PyTorchJob llm Succeeded (PyTorchJobSucceeded: PyTorchJob llm "
                          "is succeeded.)\n")


def test_exit_1_with_the_reason_when_it_ended_otherwise(fake_kube, run_kctl, quick):
    fake_kube.add_job("llm", conditions=RUNNING)
    _later(lambda: fake_kube.set_conditions("llm", [
        ("Created", "True"), ("Running", "False"),
        ("Failed", "True", "BackoffLimitExceeded", "PyTorchJob llm has failed because it has "
                                                   "reached the specified backoff limit")]))
    result = run_kctl("wait", "llm")
    assert result.code == 1
    assert result.err == ("kctl: error: PyTorchJob llm ended Failed (BackoffLimitExceeded: "
                          "PyTorchJob llm has failed because it has reached the specified "
                          "backoff limit), not succeeded\n")
    assert run_kctl("wait", "llm", "--for", "failed").code == 0


def test_running_and_a_deleted_job(fake_kube, run_kctl, quick):
    fake_kube.add_job("llm", conditions=[("Created", "True")])
    _later(lambda: fake_kube.set_conditions("llm", RUNNING))
    result = run_kctl("wait", "llm", "--for", "running")
    assert (result.code, result.err) == (0, "kctl: PyTorchJob llm is Running\n")
    _later(lambda: run_kctl("delete", "llm"))
    result = run_kctl("wait", "llm")
    assert (result.code, result.err) == (1, "kctl: error: PyTorchJob llm was deleted\n")


def test_exit_124_when_time_runs_out(fake_kube, run_kctl, quick):
    fake_kube.add_job("llm", conditions=RUNNING)
    started = time.monotonic()
    result = run_kctl("wait", "llm", "--timeout", "500ms")
    assert result.code == 124
    assert time.monotonic() - started < 5
    assert result.err == ("kctl: error: timed out waiting for PyTorchJob llm to be succeeded "
                          "(state: Running)\n")


def test_a_job_that_does_not_exist(fake_kube, run_kctl):
    result = run_kctl("wait", "nope")
    assert (result.code, result.err) == (1, 'kctl: error: PyTorchJob "nope" not found in '
                                            'namespace "default" (see: kctl list -n default)\n')


@pytest.mark.parametrize("timeout", ["30", "soon", "1x", "-5m", "0s"])
def test_a_timeout_that_is_not_a_duration_is_a_usage_error(fake_kube, run_kctl, timeout):
    result = run_kctl("wait", "llm", "--timeout", timeout)
    assert result.code == 2
    (line,) = result.err.splitlines()
    assert line.startswith("kctl wait: error: argument --timeout: ")


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("1h30m", 5400),
                                           ("1.5h", 5400), ("250ms", 0.25)])
def test_durations_are_kubectls(text, seconds):
    assert parse_duration(text) == seconds
