"""The fake API server's Trainer v2 resources and the endpoints ``kctl doctor`` reads, through the
real ``kubernetes`` client (typed models where kctl would use them)."""

from __future__ import annotations

import json
import re

import pytest
from kubernetes import client, config

from tests.support.fake_apiserver import JOBSET_LABEL, FakeKubeAPIServer, trainjob

TRAINER = ("trainer.kubeflow.org", "v1alpha1")


@pytest.fixture
def api(fake_kube, tmp_path) -> client.ApiClient:
    return config.new_client_from_config(str(fake_kube.write_kubeconfig(tmp_path / "kc")))


def _error(call, *args, **kwargs) -> tuple[int, dict]:
    with pytest.raises(client.ApiException) as err:
        call(*args, **kwargs)
    return err.value.status, json.loads(err.value.body)


def _create_trainjob(api, job: dict, namespace: str = "default") -> dict:
    return client.CustomObjectsApi(api).create_namespaced_custom_object(
        *TRAINER, namespace, "trainjobs", job)


# -- discovery -----------------------------------------------------------------------------------


def test_served_crds_decide_discovery_and_paths(fake_kube, api):
    custom = client.CustomObjectsApi(api)
    groups = lambda: {g.name for g in client.ApisApi(api).get_api_versions().groups}  # noqa: E731
    assert fake_kube.served == {"PyTorchJob"}
    assert "kubeflow.org" in groups() and "trainer.kubeflow.org" not in groups()
    status, body = _error(custom.list_namespaced_custom_object, *TRAINER, "default", "trainjobs")
    assert (status, body["message"]) == (404, "the server could not find the requested resource")

    fake_kube.served = {"TrainJob"}
    assert {"trainer.kubeflow.org", "jobset.x-k8s.io"} <= groups()
    assert "kubeflow.org" not in groups() and not fake_kube.crd_installed
    assert custom.list_namespaced_custom_object(*TRAINER, "default", "trainjobs")["items"] == []
    resources = {r.name: r.namespaced for r in custom.get_api_resources(*TRAINER).resources}
    assert resources == {"trainjobs": True, "trainingruntimes": True,
                         "clustertrainingruntimes": False}
    fake_kube.crd_installed = True
    assert fake_kube.served == {"TrainJob", "PyTorchJob"}


def test_served_is_checked_and_storing_an_object_installs_its_crd():
    with pytest.raises(ValueError, match="unknown CRDs"):
        FakeKubeAPIServer(served={"MPIJob"})
    fake = FakeKubeAPIServer(served=())
    fake.add_local_queue("team-a")
    assert fake.served == {"LocalQueue"}


def test_version(fake_kube, api):
    fake_kube.version = "v1.31.4"
    info = client.VersionApi(api).get_code()
    assert (info.git_version, info.major, info.minor) == ("v1.31.4", "1", "31")


# -- TrainJobs and runtimes ----------------------------------------------------------------------


def test_a_trainjob_needs_its_runtime(fake_kube, api):
    fake_kube.served.add("TrainJob")
    status, body = _error(_create_trainjob, api, trainjob("llm"))
    assert (status, body["reason"]) == (403, "Forbidden")
    assert body["message"] == (
        'admission webhook "validator.trainjob.trainer.kubeflow.org" denied the request: '
        'spec.RuntimeRef: Invalid value: {"name":"torch-distributed","apiGroup":'
        '"trainer.kubeflow.org","kind":"ClusterTrainingRuntime"}: ClusterTrainingRuntime.'
        'trainer.kubeflow.org "torch-distributed" not found: specified clusterTrainingRuntime '
        "must be created before the TrainJob is created")
    status, body = _error(_create_trainjob, api, trainjob(
        "llm", runtime="mine", runtime_kind="TrainingRuntime"))
    assert body["message"].endswith(
        'TrainingRuntime.trainer.kubeflow.org "mine" not found: specified trainingRuntime must be '
        "created before the TrainJob is created")
    assert "spec.runtimeRef: Invalid value" in body["message"]
    assert fake_kube.list("trainjobs") == []

    fake_kube.add_runtime("mine", kind="TrainingRuntime", namespace="team-a")
    assert _error(_create_trainjob, api, trainjob(
        "llm", runtime="mine", runtime_kind="TrainingRuntime"))[0] == 403  # another namespace
    created = _create_trainjob(api, trainjob("llm", "team-a", runtime="mine",
                                             runtime_kind="TrainingRuntime"), "team-a")
    assert created["metadata"]["uid"]


def test_a_created_trainjob_is_defaulted_and_stamped(fake_kube, api):
    fake_kube.install_trainer()
    job = trainjob("llm")
    del job["spec"]["runtimeRef"]["kind"], job["spec"]["runtimeRef"]["apiGroup"]
    created = _create_trainjob(api, job)
    assert created["spec"]["runtimeRef"] == {"name": "torch-distributed",
                                             "kind": "ClusterTrainingRuntime",
                                             "apiGroup": "trainer.kubeflow.org"}
    assert (created["spec"]["suspend"], created["spec"]["managedBy"]) == (
        False, "trainer.kubeflow.org/trainjob-controller")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                        created["spec"]["runtimePatches"][0]["time"])
    assert fake_kube.get("trainjobs", "llm") == created


def test_the_api_server_refuses_with_422_and_the_webhook_with_403(fake_kube, api):
    fake_kube.install_trainer()
    job = trainjob("llm")
    job["spec"]["managedBy"] = "me"
    status, body = _error(_create_trainjob, api, job)
    assert (status, body["reason"]) == (422, "Invalid")
    assert body["message"] == ('TrainJob.trainer.kubeflow.org "llm" is invalid: spec.managedBy: '
                               "ManagedBy must be trainer.kubeflow.org/trainjob-controller or "
                               "kueue.x-k8s.io/multikueue if set")
    assert body["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "spec.managedBy",
                                          "message": "ManagedBy must be trainer.kubeflow.org/"
                                                     "trainjob-controller or kueue.x-k8s.io/"
                                                     "multikueue if set"}]
    job = trainjob("llm")
    pod = job["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"][
        "replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    pod["containers"].append({"name": "trainer"})
    job["spec"]["trainer"]["env"].append({"name": "PET_MASTER_PORT", "value": "23456"})
    status, body = _error(_create_trainjob, api, job)
    assert status == 403
    assert body["message"].startswith(  # two errors: Go's Aggregate brackets them
        'admission webhook "validator.trainjob.trainer.kubeflow.org" denied the request: '
        "[spec.trainer.env[1].name: PET_MASTER_PORT is reserved: ")
    assert body["message"].endswith("containers[1].name: the node job of runtime "
                                    "torch-distributed has no container 'trainer' (it has "
                                    "node); a patch changes containers, it cannot add one]")
    assert fake_kube.list("trainjobs") == []


def test_what_no_server_checks_is_accepted_as_on_a_cluster(fake_kube, api):
    fake_kube.install_trainer()
    long_name = "a" * 60  # fails only when the JobSet is built; kctl must refuse it itself
    job = trainjob(long_name)
    job["spec"]["trainer"]["numNodes"] = 0
    assert _create_trainjob(api, job)["metadata"]["name"] == long_name


def test_runtimes_cluster_scoped_and_namespaced(fake_kube, api):
    fake_kube.install_trainer(runtimes=("torch-distributed", "old"))
    fake_kube.add_runtime("old", deprecated=True)  # replaces it, labelled
    fake_kube.add_runtime("team-runtime", kind="TrainingRuntime", namespace="team-a")
    custom = client.CustomObjectsApi(api)
    runtime = custom.get_cluster_custom_object(*TRAINER, "clustertrainingruntimes",
                                               "torch-distributed")
    assert runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["name"] == "node"
    assert "namespace" not in runtime["metadata"]
    listed = custom.list_cluster_custom_object(*TRAINER, "clustertrainingruntimes")["items"]
    assert [(r["metadata"]["name"], r["metadata"]["labels"].get("trainer.kubeflow.org/support"))
            for r in listed] == [("old", "deprecated"), ("torch-distributed", None)]
    team = custom.list_namespaced_custom_object(*TRAINER, "team-a", "trainingruntimes")["items"]
    assert [r["kind"] for r in team] == ["TrainingRuntime"]
    assert custom.list_namespaced_custom_object(*TRAINER, "default",
                                                "trainingruntimes")["items"] == []


def test_the_trainer_version_probe(fake_kube, api):
    core = client.CoreV1Api(api)
    assert _error(core.read_namespaced_config_map, "kubeflow-trainer-public",
                  "kubeflow-system")[0] == 404  # v2.1 or older, or no Trainer
    fake_kube.install_trainer(version="v2.3.0")
    probe = core.read_namespaced_config_map("kubeflow-trainer-public", "kubeflow-system")
    assert probe.data == {"kubeflow_trainer_version": "v2.3.0"}


def test_trainjob_status(fake_kube, api):
    fake_kube.add_runtime()
    fake_kube.add_trainjob("llm", conditions=[("Suspended", "False")],
                           jobs_status={"node": {"active": 1, "ready": 1}})
    fake_kube.set_trainjob_status("llm", [("Suspended", "False"), ("Failed", "True")],
                                  {"node": {"failed": 1}})
    status = client.CustomObjectsApi(api).get_namespaced_custom_object(
        *TRAINER, "default", "trainjobs", "llm")["status"]
    assert [(c["type"], c["status"], c["reason"], c["message"]) for c in status["conditions"]] == [
        ("Suspended", "False", "Resumed", "TrainJob is resumed"),
        ("Failed", "True", "FailedJobs", "jobset failed due to one or more job failures (first "
                                         "failed job: llm-node-0)")]
    assert status["jobsStatus"] == [{"name": "node", "ready": 0, "succeeded": 0, "failed": 1,
                                     "active": 0, "suspended": 0}]
    fake_kube.set_trainjob_status("llm", [("Complete", "True", "AllJobsCompleted", "done")])
    assert fake_kube.get("trainjobs", "llm")["status"]["conditions"][0]["message"] == "done"


def test_trainjob_pods_carry_the_jobset_labels(fake_kube, api):
    fake_kube.add_trainjob("llm", nodes=2)
    node0 = fake_kube.add_pod("llm", "node-0", logs="rank 0\n")
    node1 = fake_kube.add_pod("llm", "node-1", phase="Pending")
    assert re.fullmatch(r"llm-node-0-1-[bcdfghjklmnpqrstvwxz2456789]{5}", node1["metadata"]["name"])
    core = client.CoreV1Api(api)
    selector = "jobset.sigs.k8s.io/jobset-name=llm,jobset.sigs.k8s.io/replicatedjob-name=node"
    pods = core.list_namespaced_pod("default", label_selector=selector).items
    assert [p.metadata.name for p in pods] == [node0["metadata"]["name"], node1["metadata"]["name"]]
    (pod,) = core.list_namespaced_pod(
        "default", label_selector=selector + ",batch.kubernetes.io/job-completion-index=0").items
    assert pod.metadata.labels["batch.kubernetes.io/job-name"] == "llm-node-0"
    assert pod.metadata.annotations["batch.kubernetes.io/job-completion-index"] == "0"
    assert (pod.spec.containers[0].name, pod.spec.hostname, pod.spec.subdomain) == (
        "node", "llm-node-0-0", "llm")
    sdk = core.list_namespaced_pod("default", label_selector=(
        "jobset.sigs.k8s.io/jobset-name=llm,jobset.sigs.k8s.io/replicatedjob-name in "
        "(dataset-initializer,model-initializer,launcher,node)")).items
    assert len(sdk) == 2  # the Kubeflow SDK's set-based selector
    assert core.read_namespaced_pod_log(pod.metadata.name, "default", container="node") == \
        "rank 0\n"
    (batch_job,) = client.BatchV1Api(api).list_namespaced_job("default").items
    assert (batch_job.spec.completions, batch_job.metadata.owner_references[0].kind) == (2, "JobSet")


def test_trainjob_pods_restart_and_are_replaced_like_pytorchjob_pods(fake_kube, api):
    fake_kube.add_trainjob("llm")
    first = fake_kube.add_pod("llm", "node-1", logs="epoch 1\n")["metadata"]["name"]
    fake_kube.restart_container(first, logs="resumed\n", last_exit=(137, "OOMKilled"))
    core = client.CoreV1Api(api)
    assert core.read_namespaced_pod_log(first, "default", previous=True) == "epoch 1\n"
    assert core.read_namespaced_pod(first, "default").status.container_statuses[0] \
        .last_state.terminated.exit_code == 137
    second = fake_kube.replace_pod("llm", "node-1", logs="new pod\n")["metadata"]["name"]
    assert second != first and fake_kube.get("pods", first) is None
    assert fake_kube.replica_pod("llm", "node-1")["metadata"]["name"] == second
    fake_kube.finish_pod(second, exit_code=0)
    assert core.read_namespaced_pod(second, "default").status.phase == "Succeeded"


def test_create_admits_an_object_as_a_post_does(fake_kube, api):
    with pytest.raises(Exception, match="must be created before the TrainJob is created"):
        fake_kube.create(trainjob("llm"))
    fake_kube.install_trainer()
    created = fake_kube.create(trainjob("llm"))
    assert created["spec"]["runtimePatches"][0]["time"]  # the defaulting webhook's stamp
    assert client.CustomObjectsApi(api).get_namespaced_custom_object(
        *TRAINER, "default", "trainjobs", "llm") == created


def test_a_pod_named_by_its_job_and_deleted_in_two_steps(fake_kube, api):
    fake_kube.add_trainjob("llm")
    fake_kube.add_pod("llm", "node-1", name="llm-node-0-1-bcdfg", labels={"team": "a"})
    core = client.CoreV1Api(api)
    pod = core.read_namespaced_pod("llm-node-0-1-bcdfg", "default")
    assert (pod.metadata.labels["team"], pod.metadata.labels[JOBSET_LABEL]) == ("a", "llm")
    assert pod.metadata.deletion_timestamp is None
    fake_kube.delete_pod("llm-node-0-1-bcdfg", stopping=True)  # the kubelet stops it
    assert core.read_namespaced_pod("llm-node-0-1-bcdfg", "default").metadata.deletion_timestamp
    fake_kube.delete_pod("llm-node-0-1-bcdfg")
    assert core.list_namespaced_pod("default").items == []


def test_deleting_a_trainjob_collects_jobset_job_and_pods(fake_kube, api):
    fake_kube.add_runtime()
    fake_kube.add_trainjob("llm")
    fake_kube.add_pod("llm", "node-0")
    fake_kube.add_pod("llm", "node-1")
    fake_kube.add_event("llm", "TrainJobResourcesCreationFailed", "pod name too long",
                        kind="TrainJob")
    assert fake_kube.list("events")[0]["involvedObject"]["uid"] == \
        fake_kube.get("trainjobs", "llm")["metadata"]["uid"]
    client.CustomObjectsApi(api).delete_namespaced_custom_object(*TRAINER, "default",
                                                                 "trainjobs", "llm")
    assert [fake_kube.list(p) for p in ("trainjobs", "jobsets", "jobs", "pods")] == [[]] * 4
    assert fake_kube.get("clustertrainingruntimes", "torch-distributed")


# -- what kctl doctor reads ----------------------------------------------------------------------


def test_nodes_with_allocatable_gpus(fake_kube, api):
    fake_kube.add_node("gpu-1", gpus=8, labels={"nvidia.com/gpu.product": "H100"})
    fake_kube.add_node("cpu-1", ready=False)
    nodes = client.CoreV1Api(api).list_node().items
    assert [(n.metadata.name, n.status.allocatable.get("nvidia.com/gpu"),
             n.status.conditions[0].status) for n in nodes] == [
        ("cpu-1", None, "False"), ("gpu-1", "8", "True")]


def test_storage_classes_and_the_claims_they_can_serve(fake_kube, api):
    fake_kube.add_storage_class("local", default=True)
    fake_kube.add_storage_class("nfs", provisioner="nfs.csi.k8s.io",
                                access_modes=("ReadWriteOnce", "ReadWriteMany"))
    classes = client.StorageV1Api(api).list_storage_class().items
    assert [(c.metadata.name, c.provisioner, (c.metadata.annotations or {}).get(
        "storageclass.kubernetes.io/is-default-class")) for c in classes] == [
        ("local", "rancher.io/local-path", "true"), ("nfs", "nfs.csi.k8s.io", None)]

    core = client.CoreV1Api(api)

    def claim(name, mode, storage_class=None):
        spec = {"accessModes": [mode], "resources": {"requests": {"storage": "10Gi"}}}
        if storage_class:
            spec["storageClassName"] = storage_class
        body = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
                "spec": spec}
        core.create_namespaced_persistent_volume_claim("default", body)
        return core.read_namespaced_persistent_volume_claim(name, "default")

    bound = claim("shared", "ReadWriteMany", "nfs")
    assert (bound.status.phase, bound.status.capacity) == ("Bound", {"storage": "10Gi"})
    default = claim("mine", "ReadWriteOnce")
    assert (default.spec.storage_class_name, default.status.phase) == ("local", "Bound")
    assert claim("rwx", "ReadWriteMany").status.phase == "Pending"
    assert claim("gone", "ReadWriteOnce", "fast").status.phase == "Pending"
    events = {e.involved_object.name: (e.reason, e.message)
              for e in core.list_namespaced_event("default").items}
    assert events == {
        "rwx": ("ProvisioningFailed", 'failed to provision volume with StorageClass "local": '
                                      "rancher.io/local-path does not support access mode "
                                      "ReadWriteMany"),
        "gone": ("ProvisioningFailed", 'storageclass.storage.k8s.io "fast" not found')}


def test_local_queues(fake_kube, api):
    custom = client.CustomObjectsApi(api)
    assert _error(custom.list_namespaced_custom_object, "kueue.x-k8s.io", "v1beta1", "default",
                  "localqueues")[0] == 404
    fake_kube.add_local_queue("team-a", cluster_queue="gpus")
    (queue,) = custom.list_namespaced_custom_object("kueue.x-k8s.io", "v1beta1", "default",
                                                    "localqueues")["items"]
    assert (queue["metadata"]["name"], queue["spec"]["clusterQueue"]) == ("team-a", "gpus")


def test_namespaces_with_pod_security(fake_kube, api):
    fake_kube.add_namespace("team-a", pod_security="restricted")
    core = client.CoreV1Api(api)
    labels = core.read_namespace("team-a").metadata.labels
    assert labels == {"kubernetes.io/metadata.name": "team-a",
                      "pod-security.kubernetes.io/enforce": "restricted"}
    assert [n.metadata.name for n in core.list_namespace().items] == [
        "default", "kube-system", "team-a"]
    assert _error(core.read_namespace, "nowhere")[0] == 404


def test_self_subject_access_review_follows_forbid(fake_kube, api):
    fake_kube.forbid("create", "trainjobs")
    fake_kube.forbid("get", "pods/log")
    auth = client.AuthorizationV1Api(api)

    def allowed(verb, resource, group="", subresource=None):
        review = auth.create_self_subject_access_review({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": "default", "verb": verb, "group": group,
                                            "resource": resource, "subresource": subresource}}})
        return review.status.allowed

    assert not allowed("create", "trainjobs", "trainer.kubeflow.org")
    assert allowed("create", "configmaps") and allowed("list", "trainjobs")
    assert not allowed("get", "pods", subresource="log")
    assert allowed("get", "pods")


def test_claims_and_secrets_by_name(fake_kube, api):
    fake_kube.add_secret("registry-pull")
    core = client.CoreV1Api(api)
    secret = core.read_namespaced_secret("registry-pull", "default")
    assert secret.type == "kubernetes.io/dockerconfigjson" and ".dockerconfigjson" in secret.data
    assert _error(core.read_namespaced_secret, "other", "default")[1]["message"] == \
        'secrets "other" not found'
    assert _error(core.read_namespaced_persistent_volume_claim, "work", "default")[1][
        "message"] == 'persistentvolumeclaims "work" not found'
