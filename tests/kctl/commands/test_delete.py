"""kctl delete against the fake API server."""

from kctl.backends.pytorchjob import BACKEND as PYTORCHJOB
from kctl.k8s.apply import create
from kctl.k8s.cluster import connect
from tests.support.fake_apiserver import pytorchjob


def test_deletes_the_job_its_pods_and_its_config_map(fake_kube, run_kctl):
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "llm-config"},
                  "data": {"job.py": "x = 1\n"}}
    with connect() as cluster:
        create(cluster, PYTORCHJOB, [pytorchjob("llm"), config_map], "default")
        fake_kube.add_pod("llm", "master-0")
        create(cluster, PYTORCHJOB,
               [pytorchjob("other"), dict(config_map, metadata={"name": "other-config"})],
               "default")

    result = run_kctl("delete", "llm")
    assert (result.code, result.out, result.err) == (
        0, 'pytorchjob.kubeflow.org "llm" deleted\n', "")
    assert [j["metadata"]["name"] for j in fake_kube.list("pytorchjobs")] == ["other"]
    assert [c["metadata"]["name"] for c in fake_kube.list("configmaps")] == ["other-config"]
    assert fake_kube.list("pods") == []
    delete = [r for r in fake_kube.requests if r.method == "DELETE"]
    assert [r.path for r in delete] == ["/apis/kubeflow.org/v1/namespaces/default/pytorchjobs/llm"]


def test_kept_claims_are_named(fake_kube, run_kctl):
    fake_kube.add_job("llm", claim="llm-work-dir")
    result = run_kctl("delete", "llm", "-n", "default")
    assert result.out.splitlines()[1] == (
        'kept persistentvolumeclaim "llm-work-dir" (work_dir; a job using it again resumes from '
        "its checkpoints). To remove it: kubectl delete pvc llm-work-dir -n default")


def test_missing_job(fake_kube, run_kctl):
    result = run_kctl("delete", "nope")
    assert (result.code, result.out) == (1, "")
    assert result.err == ('kctl: error: PyTorchJob "nope" not found in namespace "default" '
                          "(see: kctl list -n default)\n")


def test_forbidden_delete(fake_kube, run_kctl):
    fake_kube.add_job("llm")
    fake_kube.forbid("delete", "pytorchjobs")
    result = run_kctl("delete", "llm")
    assert result.code == 1
    assert result.err.startswith('kctl: error: forbidden: you may not delete '
                                 'pytorchjobs.kubeflow.org "llm" in namespace "default" (RBAC)')
    assert fake_kube.get("pytorchjobs", "llm") is not None
