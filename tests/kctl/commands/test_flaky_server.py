"""The job commands against an API server that answers 429, 500/503 or drops connections: reads
are retried (urllib3's retry machinery) and succeed; a submit that fails part-way leaves nothing."""

from pathlib import Path

import pytest

from kctl.k8s import wait
from tests.support.fake_apiserver import KctlProcess

CONFIG = Path(__file__).resolve().parents[3] / "configs/resnet/resnet18_1xb64_digits.py"
RUNNING = [("Created", "True"), ("Running", "True")]
FAULTS = [429, 500, 503, "reset"]


def _injected(fake_kube) -> list:
    return [r.status for r in fake_kube.requests if r.injected]


@pytest.mark.parametrize("fault", FAULTS)
def test_status_and_list_survive(fake_kube, run_kctl, fault):
    fake_kube.add_job("llm", conditions=RUNNING)
    fake_kube.add_pod("llm", "master-0")
    fake_kube.inject(fault, path="/pytorchjobs", method="GET", times=2, retry_after=0)
    fake_kube.inject(fault, path="/pods", method="GET", times=1, retry_after=0)
    result = run_kctl("status", "llm")
    assert result.code == 0, result.err
    assert "State:     Running" in result.out
    fake_kube.inject(fault, path="/pytorchjobs", method="GET", times=1, retry_after=0)
    assert run_kctl("list").out.splitlines()[1].split()[:3] == ["llm", "PyTorchJob", "Running"]
    assert _injected(fake_kube) == [fault] * 4


def test_retry_after_is_respected(fake_kube, run_kctl):
    fake_kube.add_job("llm", conditions=RUNNING)
    fake_kube.inject(429, path="/pytorchjobs/llm", method="GET", times=1, retry_after=2)
    import time
    started = time.monotonic()
    assert run_kctl("status", "llm").code == 0
    assert time.monotonic() - started >= 2


def test_a_server_that_keeps_failing_is_one_line(fake_kube, run_kctl):
    fake_kube.add_job("llm", conditions=RUNNING)
    fake_kube.inject(500, path="/pytorchjobs/llm", method="GET", times=100, retry_after=0)
    result = run_kctl("status", "llm", "--kind", "PyTorchJob")
    assert result.code == 1
    (line,) = result.err.splitlines()
    assert line.startswith('kctl: error: cannot get pytorchjobs.kubeflow.org in namespace '
                           '"default": ') and line.endswith("(500 InternalError)")
    assert 1 < len(_injected(fake_kube)) < 10  # retried, then given up


def test_wait_survives(fake_kube, run_kctl, monkeypatch):
    monkeypatch.setattr(wait, "POLL_SECONDS", 0.05)
    fake_kube.add_job("llm", conditions=[("Created", "True"), ("Running", "False"),
                                         ("Succeeded", "True")])
    for fault in FAULTS:
        fake_kube.inject(fault, path="/pytorchjobs/llm", method="GET", times=1, retry_after=0)
    assert run_kctl("wait", "llm").code == 0
    assert len(_injected(fake_kube)) == 4


def test_logs_follow_reconnects_after_a_reset_mid_stream(fake_kube):
    fake_kube.add_job("llm", workers=0, conditions=RUNNING)
    fake_kube.add_pod("llm", "master-0", logs="step 1")
    follow = KctlProcess("logs", "llm", "-f")
    try:
        follow.wait_for_line("[master-0] step 1")
        fake_kube.inject("reset-mid", path=r"/log\?.*follow=true", method="GET", times=1)
        fake_kube.drop_log_streams("llm-master-0")  # the next stream is the one cut mid-way
        fake_kube.append_log("llm-master-0", "step 2")
        follow.wait_for_line("[master-0] step 2")
        fake_kube.inject(503, path="/pods", method="GET", times=2, retry_after=0)
        fake_kube.append_log("llm-master-0", "step 3")
        follow.wait_for_line("[master-0] step 3")
        fake_kube.set_conditions("llm", [("Created", "True"), ("Running", "False"),
                                         ("Succeeded", "True")])
        fake_kube.finish_pod("llm-master-0")
        result = follow.wait()
    finally:
        follow.kill()
    assert result.code == 0, result.err
    assert result.out.splitlines() == ["[master-0] step 1", "[master-0] step 2",
                                       "[master-0] step 3"]


@pytest.mark.parametrize("fault", [500, "reset", "reset-mid"])
def test_a_submit_interrupted_by_a_failure_leaves_nothing_behind(fake_kube, run_kctl, fault):
    fake_kube.inject(fault, path="/configmaps", method="POST", times=1)
    result = run_kctl("train", CONFIG, "--gpus", "0", "--name", "digits")
    assert result.code == 1
    (line,) = [ln for ln in result.err.splitlines() if not ln.startswith("kctl: warning:")]
    assert line.startswith("kctl: error: ")
    assert fake_kube.list("pytorchjobs") == []
    assert fake_kube.list("persistentvolumeclaims") == []
    assert [c for c in fake_kube.list("configmaps") if "ownerReferences" in c["metadata"]] == []
    assert run_kctl("train", CONFIG, "--gpus", "0", "--name", "digits").code == 0  # again: fine
