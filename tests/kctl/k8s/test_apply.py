"""kctl.k8s.apply.create: what `kctl train` submits, against the fake API server."""

import copy

import pytest

from kctl.backends.pytorchjob import BACKEND as PYTORCHJOB
from kctl.errors import KctlError
from kctl.k8s import apply
from kctl.k8s.cluster import connect
from tests.support.fake_apiserver import pytorchjob


def create(objects, namespace):
    """:func:`kctl.k8s.apply.create` of PyTorchJob objects, on a connection to the fake server."""
    with connect() as cluster:
        return apply.create(cluster, PYTORCHJOB, objects, namespace)


def _config_map(name="llm-train-config"):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"job.py": "_base_ = []\n"}}


def _claim(name="llm-train-work-dir"):
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteMany"],
                     "resources": {"requests": {"storage": "10Gi"}}}}


def test_creates_the_job_and_a_config_map_it_owns(fake_kube):
    objects = [_config_map(), pytorchjob("llm-train", namespace="ignored")]
    before = copy.deepcopy(objects)
    assert create(objects, "default") == "llm-train"
    job = fake_kube.get("pytorchjobs", "llm-train")
    config_map = fake_kube.get("configmaps", "llm-train-config")
    assert config_map["metadata"]["ownerReferences"] == [{
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "name": "llm-train",
        "uid": job["metadata"]["uid"]}]
    assert job["spec"] == objects[1]["spec"]
    assert objects == before  # the caller's dicts are left alone
    creates = [r.path for r in fake_kube.requests if r.method == "POST"]
    assert creates == ["/apis/kubeflow.org/v1/namespaces/default/pytorchjobs",
                       "/api/v1/namespaces/default/configmaps"]


def test_namespace_defaults_to_the_contexts(fake_kube, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(fake_kube.write_kubeconfig(
        tmp_path / "team", namespace="team-a")))
    fake_kube.namespaces.add("team-a")
    create([pytorchjob("llm-train"), _config_map()], None)
    assert fake_kube.get("pytorchjobs", "llm-train", "team-a")
    assert fake_kube.get("configmaps", "llm-train-config", "team-a")


def test_second_submit_is_a_conflict_and_changes_nothing(fake_kube):
    create([pytorchjob("llm-train"), _config_map()], "default")
    uid = fake_kube.get("pytorchjobs", "llm-train")["metadata"]["uid"]
    with pytest.raises(KctlError) as err:
        create([pytorchjob("llm-train"), _config_map()], "default")
    assert str(err.value) == (
        'a PyTorchJob named "llm-train" already exists in namespace "default": choose another '
        "name with --name, or delete it first: kctl delete llm-train -n default")
    assert fake_kube.get("pytorchjobs", "llm-train")["metadata"]["uid"] == uid
    assert len(fake_kube.list("configmaps")) == 1


def test_missing_crd_says_how_to_install_it(fake_kube):
    fake_kube.crd_installed = False
    with pytest.raises(KctlError) as err:
        create([pytorchjob("llm-train"), _config_map()], "default")
    assert str(err.value) == PYTORCHJOB.install
    assert str(err.value).startswith("the PyTorchJob CRD (kubeflow.org/v1) is not installed: "
                                     "install the Kubeflow training-operator v1.9 (kubectl apply "
                                     "--server-side -k \"github.com/kubeflow/training-operator.git/"
                                     "manifests/overlays/standalone?ref=v1.9.0\")")
    assert fake_kube.list("configmaps") == []


def test_rbac_refusal_names_verb_and_resource(fake_kube):
    fake_kube.forbid("create", "pytorchjobs")
    with pytest.raises(KctlError) as err:
        create([pytorchjob("llm-train"), _config_map()], "default")
    assert str(err.value) == (
        'forbidden: you may not create pytorchjobs.kubeflow.org in namespace "default" (RBAC); '
        "ask a cluster admin for a Role that allows it (check: kubectl auth can-i create "
        "pytorchjobs.kubeflow.org -n default)")


def test_failing_config_map_takes_the_job_back(fake_kube):
    fake_kube.forbid("create", "configmaps")
    with pytest.raises(KctlError, match="you may not create configmaps in namespace"):
        create([pytorchjob("llm-train"), _config_map()], "default")
    assert fake_kube.list("pytorchjobs") == []  # nothing half-written


def test_server_side_validation_error_is_reported(fake_kube):
    job = pytorchjob("llm-train")
    job["spec"]["nprocPerNode"] = 8  # the CRD wants a string
    with pytest.raises(KctlError) as err:
        create([job, _config_map()], "default")
    message = str(err.value)
    assert message.startswith('the API server rejected PyTorchJob "llm-train": '
                              'PyTorchJob.kubeflow.org "llm-train" is invalid: ')
    assert "spec.nprocPerNode" in message and "\n" not in message


def test_missing_namespace_is_named(fake_kube):
    with pytest.raises(KctlError) as err:
        create([pytorchjob("llm-train"), _config_map()], "nowhere")
    assert str(err.value) == ('namespace "nowhere" not found (create it: kubectl create '
                              "namespace nowhere)")


def test_claims_come_first_are_not_owned_and_are_reused(fake_kube, run_kctl):
    objects = [_claim(), pytorchjob("llm-train", claim="llm-train-work-dir"), _config_map()]
    create(objects, "default")
    claim = fake_kube.get("persistentvolumeclaims", "llm-train-work-dir")
    assert "ownerReferences" not in claim["metadata"]
    creates = [r.path.rsplit("/", 1)[-1] for r in fake_kube.requests if r.method == "POST"]
    assert creates == ["persistentvolumeclaims", "pytorchjobs", "configmaps"]

    assert run_kctl("delete", "llm-train").code == 0
    assert fake_kube.get("persistentvolumeclaims", "llm-train-work-dir") == claim
    assert create(objects, "default") == "llm-train"  # resubmitted on the same claim
    assert fake_kube.get("persistentvolumeclaims", "llm-train-work-dir") == claim


def test_a_claim_created_for_a_refused_job_is_removed(fake_kube):
    fake_kube.forbid("create", "pytorchjobs")
    with pytest.raises(KctlError):
        create([_claim(), pytorchjob("llm-train", claim="llm-train-work-dir")], "default")
    assert fake_kube.list("persistentvolumeclaims") == []


def test_objects_must_hold_one_job_of_the_kind():
    with pytest.raises(ValueError, match="exactly one PyTorchJob"):
        apply.create(None, PYTORCHJOB, [_config_map()], "default")
    with pytest.raises(ValueError, match="cannot create Secret"):
        apply.create(None, PYTORCHJOB, [pytorchjob("x"),
                                        {"kind": "Secret", "metadata": {"name": "s"}}], "default")
