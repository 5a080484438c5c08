"""kctl list against the fake API server."""

from tests.support.fake_apiserver import ago


def _rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


def _seed(fake_kube):
    fake_kube.add_job("resnet", created=ago(minutes=15), workers=1, gpus=8,
                      conditions=[("Created", "True"), ("Running", "True")])
    fake_kube.add_job("digits", created=ago(hours=3, minutes=2), workers=0, gpus=0,
                      conditions=[("Created", "True"), ("Running", "False"),
                                  ("Succeeded", "True")])
    fake_kube.add_job("llm", namespace="team-a", created=ago(days=2, hours=1), workers=3, gpus=4,
                      conditions=[("Created", "True"), ("Running", "False"), ("Failed", "True")])


def test_lists_the_current_namespace(fake_kube, run_kctl):
    _seed(fake_kube)
    result = run_kctl("list")
    assert result.code == 0, result.err
    assert _rows(result.out) == [["NAME", "KIND", "STATE", "AGE", "NODESxGPUS"],
                                 ["digits", "PyTorchJob", "Succeeded", "3h2m", "1x0"],
                                 ["resnet", "PyTorchJob", "Running", "15m", "2x8"]]


def test_all_namespaces(fake_kube, run_kctl):
    _seed(fake_kube)
    result = run_kctl("list", "-A")
    assert _rows(result.out) == [["NAMESPACE", "NAME", "KIND", "STATE", "AGE", "NODESxGPUS"],
                                 ["default", "digits", "PyTorchJob", "Succeeded", "3h2m", "1x0"],
                                 ["default", "resnet", "PyTorchJob", "Running", "15m", "2x8"],
                                 ["team-a", "llm", "PyTorchJob", "Failed", "2d1h", "4x4"]]
    assert "/apis/kubeflow.org/v1/pytorchjobs" in [r.path for r in fake_kube.requests]


def test_other_namespace_and_empty(fake_kube, run_kctl):
    _seed(fake_kube)
    assert _rows(run_kctl("list", "-n", "team-a").out)[1][0] == "llm"
    result = run_kctl("list", "-n", "empty")
    assert (result.code, result.out) == (0, "")
    assert result.err == "No PyTorchJobs or TrainJobs found in namespace empty.\n"


def test_forbidden_across_namespaces(fake_kube, run_kctl):
    fake_kube.forbid("list", "pytorchjobs")
    result = run_kctl("list", "-A")
    assert result.code == 1
    assert result.err == ("kctl: error: forbidden: you may not list pytorchjobs.kubeflow.org "
                          "across all namespaces (RBAC); ask a cluster admin for a Role that "
                          "allows it (check: kubectl auth can-i list pytorchjobs.kubeflow.org "
                          "-A)\n")
