"""Connecting: kubeconfig and --context, in-cluster config, and one-line connection errors."""

import socket

import pytest

from tests.support.fake_apiserver import kctl_subprocess


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_kubeconfig_is_one_line_usage_error(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": "/nonexistent"}
    result = kctl_subprocess("list", env=env)
    assert result.code == 2
    assert result.err == ("kctl: error: no Kubernetes configuration: KUBECONFIG=/nonexistent not "
                          "found and not running in a cluster; set KUBECONFIG or create "
                          "~/.kube/config\n")


def test_home_kube_config_is_the_default(fake_kube, run_kctl, tmp_path, monkeypatch):
    (tmp_path / ".kube").mkdir()
    fake_kube.write_kubeconfig(tmp_path / ".kube" / "config", namespace="team-a")
    monkeypatch.delenv("KUBECONFIG")
    fake_kube.add_job("in-team-a", namespace="team-a")
    result = run_kctl("list")
    assert result.code == 0, result.err
    assert "in-team-a" in result.out


def test_refused_connection_is_one_line(tmp_path, monkeypatch):
    port = _closed_port()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""\
apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "http://127.0.0.1:{port}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: gone, context: {{cluster: c, user: u}}}}]
current-context: gone
""")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(kubeconfig)}
    result = kctl_subprocess("status", "some-job", env=env)
    assert result.code == 1
    assert result.err == (f"kctl: error: cannot reach the Kubernetes API server "
                          f'http://127.0.0.1:{port} (context "gone"): connection refused\n')


def test_silent_server_times_out_after_request_timeout(fake_kube, run_kctl, tmp_path):
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        kubeconfig = fake_kube.write_kubeconfig(tmp_path / "kubeconfig")
        kubeconfig.write_text(kubeconfig.read_text().replace(
            fake_kube.url, f"http://127.0.0.1:{silent.getsockname()[1]}"))
        result = run_kctl("list", "--request-timeout", "0.5")
    assert result.code == 1
    assert result.err.endswith("no reply within 0.5s (--request-timeout)\n")
    assert result.err.count("\n") == 1


def test_unknown_context_lists_the_known_ones(fake_kube, run_kctl):
    result = run_kctl("list", "--context", "prod")
    assert result.code == 2
    assert result.err.startswith("kctl: error: context 'prod' not found in KUBECONFIG=")
    assert result.err.endswith("(available: fake)\n")


def test_context_flag_picks_a_context_and_its_namespace(fake_kube, run_kctl, tmp_path,
                                                        monkeypatch):
    other = fake_kube.write_kubeconfig(tmp_path / "other", context="team-a", namespace="team-a")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'kubeconfig'}:{other}")
    fake_kube.add_job("job-a", namespace="team-a")
    fake_kube.add_job("job-default")
    assert "job-default" in run_kctl("list").out
    listed = run_kctl("list", "--context", "team-a").out
    assert "job-a" in listed and "job-default" not in listed


def test_rejected_token_is_one_line(fake_kube, run_kctl):
    fake_kube.token = "another-token"
    result = run_kctl("list")
    assert result.code == 1
    assert result.err == (f"kctl: error: the API server {fake_kube.url} rejected kctl's "
                          f"credentials (401 Unauthorized): log in again or refresh the token of "
                          f'context "fake"\n')


def test_in_cluster_config_when_there_is_no_kubeconfig(run_kctl, tmp_path, monkeypatch):
    from kubernetes.config import incluster_config

    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text("not a certificate")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    port = _closed_port()
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(port))
    result = run_kctl("list")
    assert result.code == 1
    # The service account's API server (https, from the environment) is the one tried.
    assert result.err.startswith(f"kctl: error: cannot reach the Kubernetes API server "
                                 f'https://127.0.0.1:{port} (context "in-cluster")')


def test_in_cluster_without_service_account_is_one_line(run_kctl, tmp_path, monkeypatch):
    from kubernetes.config import incluster_config

    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "no-token"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    result = run_kctl("list")
    assert result.code == 1
    assert result.err == (f"kctl: error: no kubeconfig (KUBECONFIG={tmp_path / 'none'} not found) "
                          "and the in-cluster service account is unusable: Service token file "
                          "does not exist.\n")


def test_context_flag_needs_a_kubeconfig_in_cluster(run_kctl, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    result = run_kctl("list", "--context", "prod")
    assert result.code == 2
    assert "--context prod needs a kubeconfig" in result.err


@pytest.mark.parametrize("bad", ["0", "-1", "soon"])
def test_request_timeout_must_be_positive_seconds(run_kctl, bad):
    result = run_kctl("list", "--request-timeout", bad)
    assert result.code == 2
    assert "--request-timeout" in result.err
