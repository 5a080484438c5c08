"""The TrainJob emulator's arithmetic and container view: the JobSet it builds from a TrainJob and
its runtime, the PET_ variables (trainjob-facts.md sections 2 and 3), volumes, refusals. Nothing
here starts a process."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.kctl.emulated.conftest import training_runtime, trainjob
from tests.support.operator_emulator import REPO, EmulatorError
from tests.support.trainjob_emulator import (DEFAULT_RUNTIME, build_jobset, find_runtime,
                                             nproc_per_node)

DATA = REPO / "tests" / "support" / "data" / "trainjob"
PET = ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT")


def test_jobset_of_the_facts_example():
    """The JobSet built from the reference's 2 x 8-GPU TrainJob and the vendored torch-distributed
    runtime is the one worked out from the v2.3.0 controller's code (webhook defaults included)."""
    job = yaml.safe_load((DATA / "trainjob-2x8gpu.yaml").read_text())
    expected = yaml.safe_load((DATA / "jobset-2x8gpu.derived.yaml").read_text())
    del expected["metadata"]["ownerReferences"]  # the TrainJob's uid, set by the API server
    assert find_runtime(job, [job]) == yaml.safe_load(DEFAULT_RUNTIME.read_text())
    assert build_jobset(job, find_runtime(job, [job])) == expected


def test_pet_env_names_and_ranks_per_node(emulate):
    objects = [trainjob("llm", numNodes=3, numProcPerNode=2, image="python",
                        command=["torchrun", "train.py"])]
    emulator = emulate(objects, seed=1)
    kept = emulate(objects, master_port="manifest")
    for index in range(3):
        pod = emulator.prepare(index)
        assert re.fullmatch(rf"llm-node-0-{index}-[bcdfghjklmnpqrstvwxz2456789]{{5}}", pod.name)
        assert pod.name == emulator.pod_name(index)
        on_cluster = dict(emulator.container_env(pod))  # before the local replacements
        assert {name: on_cluster[name] for name in PET} == {
            "PET_NNODES": "3", "PET_NPROC_PER_NODE": "2", "PET_NODE_RANK": str(index),
            "PET_MASTER_ADDR": "llm-node-0-0.llm", "PET_MASTER_PORT": "29500"}
        assert on_cluster["JOB_COMPLETION_INDEX"] == str(index)
        assert (pod.labels["batch.kubernetes.io/job-completion-index"],
                pod.labels["jobset.sigs.k8s.io/jobset-name"],
                pod.labels["jobset.sigs.k8s.io/replicatedjob-name"]) == (str(index), "llm", "node")
        local = pod.process.env  # what the local process gets: node 0 on loopback, a free port
        assert {name for name in on_cluster if local[name] != on_cluster[name]} == {
            "PET_MASTER_ADDR", "PET_MASTER_PORT"}
        assert local["PET_MASTER_ADDR"] == "127.0.0.1"
        assert local["PET_MASTER_PORT"] == str(emulator.local_port) != "29500"
        assert local["HOSTNAME"] == f"llm-node-0-{index}"
        assert kept.prepare(index).process.env["PET_MASTER_PORT"] == "29500"
    assert emulator.jobs_status == [{"name": "node", "active": 0, "ready": 0, "succeeded": 0,
                                     "failed": 0, "suspended": 0}]


@pytest.mark.parametrize("trainer,runtime_resources,expected", [
    ({"numProcPerNode": 4, "resourcesPerNode": {"limits": {"nvidia.com/gpu": 8}}}, {}, "4"),
    ({"resourcesPerNode": {"limits": {"nvidia.com/gpu": 8}}}, {}, "auto"),  # torchrun counts
    ({"resourcesPerNode": {"requests": {"cpu": "3.7"}, "limits": {"cpu": "8"}}}, {}, "4"),
    ({"resourcesPerNode": {"limits": {"cpu": 2}}}, {}, "2"),
    ({"resourcesPerNode": {"requests": {"cpu": "500m"}}}, {}, "1"),
    ({"resourcesPerNode": {"limits": {"nvidia.com/mig-1g.5gb": 1, "cpu": 3}}}, {}, "3"),
    ({}, {"requests": {"cpu": "6"}}, "6"),  # the runtime's node container
    ({}, {"limits": {"example.com/gpu": 1}}, "auto"),
    ({}, {}, "1"),
])
def test_nproc_per_node(trainer, runtime_resources, expected):
    assert nproc_per_node(trainer, {"name": "node", "resources": runtime_resources}) == expected


def test_runtime_trainer_and_patches_merge_in_order():
    runtime = training_runtime("custom", backoff_limit=3)
    pod_spec = runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"][
        "template"]
    pod_spec["metadata"] = {"labels": {"from-runtime": "yes"}}
    pod_spec["spec"].update(
        volumes=[{"name": "cache", "emptyDir": {}}], nodeSelector={"zone": "a", "pool": "gpu"},
        securityContext={"runAsUser": 5, "fsGroup": 5})
    pod_spec["spec"]["containers"][0].update(
        image="runtime-image", command=["runtime-cmd"], args=["x"],
        env=[{"name": "A", "value": "runtime"}, {"name": "KEEP", "value": "1"}],
        resources={"limits": {"memory": "4Gi", "cpu": "2"}})

    def patch(manager, spec, labels):
        return {"manager": manager, "trainingRuntimeSpec": {"template": {"spec": {
            "replicatedJobs": [{"name": "node", "template": {"spec": {"template": {
                "metadata": {"labels": labels}, "spec": spec}}}}]}}}}

    job = trainjob("t", runtime="custom", numNodes=2, image="mine", command=["python"],
                   env=[{"name": "A", "value": "trainjob"}, {"name": "B", "value": "2"}],
                   resourcesPerNode={"limits": {"cpu": "4", "nvidia.com/gpu": 1}})
    job["spec"]["runtimePatches"] = [
        patch("a.example.com/one", {
            "volumes": [{"name": "cache", "emptyDir": {"medium": "Memory"}},
                        {"name": "data", "persistentVolumeClaim": {"claimName": "first"}}],
            "securityContext": {"runAsUser": 1000}, "nodeSelector": {"zone": None},
            "tolerations": [{"key": "one", "operator": "Exists"}],
            "containers": [{"name": "node", "volumeMounts": [
                {"name": "data", "mountPath": "/data"}]}]}, {"kctl": "a"}),
        patch("b.example.com/two", {
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "second"}}],
            "tolerations": [{"key": "two", "operator": "Exists"}]}, {"kctl": "b"})]

    jobset = build_jobset(job, find_runtime(job, [job, runtime]))
    (node,) = jobset["spec"]["replicatedJobs"]
    job_spec = node["template"]["spec"]
    pod = job_spec["template"]
    container = pod["spec"]["containers"][0]
    assert (job_spec["parallelism"], job_spec["completions"], job_spec["backoffLimit"],
            job_spec["completionMode"], pod["spec"]["restartPolicy"]) == (2, 2, 3, "Indexed",
                                                                          "OnFailure")
    # trainer.image and command replace the runtime's; args stay; env merged by name
    assert (container["image"], container["command"], container["args"]) == (
        "mine", ["python"], ["x"])
    assert [(e["name"], e.get("value")) for e in container["env"]][:3] == [
        ("A", "trainjob"), ("KEEP", "1"), ("B", "2")]
    assert [e["name"] for e in container["env"]][3:] == list(PET)
    assert container["resources"] == {"limits": {"memory": "4Gi", "cpu": "4", "nvidia.com/gpu": 1}}
    assert container["ports"] == [{"containerPort": 29500}]
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    # patches in list order: lists merged by name, maps key by key, other lists replaced
    assert pod["spec"]["volumes"] == [
        {"name": "cache", "emptyDir": {"medium": "Memory"}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "second"}}]
    assert pod["spec"]["securityContext"] == {"runAsUser": 1000, "fsGroup": 5}
    assert pod["spec"]["nodeSelector"] == {"pool": "gpu"}
    assert pod["spec"]["tolerations"] == [{"key": "two", "operator": "Exists"}]
    assert pod["metadata"]["labels"] == {"from-runtime": "yes", "kctl": "b"}
    # PET_NPROC_PER_NODE: numProcPerNode is unset and a resource names a GPU
    assert {e["name"]: e.get("value") for e in container["env"]}["PET_NPROC_PER_NODE"] == "auto"


def test_a_namespaced_runtime_from_the_manifest(emulate):
    runtime = training_runtime("mine", backoff_limit=3)
    runtime.update(kind="TrainingRuntime")
    runtime["metadata"]["namespace"] = "team"
    job = trainjob("t", runtime="mine", numNodes=1, image="python", command=["true"])
    job["metadata"]["namespace"] = "team"
    job["spec"]["runtimeRef"]["kind"] = "TrainingRuntime"
    assert emulate([job, runtime]).backoff_limit == 3
    assert emulate([trainjob("t", numNodes=1, image="python")]).backoff_limit == 6  # the default
    job["metadata"]["namespace"] = "other"
    with pytest.raises(EmulatorError, match="TrainingRuntime 'mine' is not in the manifest"):
        emulate([job, runtime])


def test_configmap_items_and_claims_at_their_paths(emulate, tmp_path):
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "t-config"},
                  "data": {"resnet__main.py": "_base_ = ['../_base_/x.py']\n",
                           "_base___x.py": "x = 1\n"}}
    items = [{"key": "resnet__main.py", "path": "resnet/main.py"},
             {"key": "_base___x.py", "path": "_base_/x.py"}]
    job = trainjob("t", numNodes=2, image="python",
                   command=["python", "/config/resnet/main.py", "--work-dir", "/work_dirs/t"],
                   pod_spec={"volumes": [
                       {"name": "config", "configMap": {"name": "t-config", "items": items}},
                       {"name": "work-dir", "persistentVolumeClaim": {"claimName": "shared"}},
                       {"name": "dshm", "emptyDir": {"medium": "Memory"}}]},
                   mounts=[{"name": "config", "mountPath": "/config", "readOnly": True},
                           {"name": "work-dir", "mountPath": "/work_dirs"},
                           {"name": "dshm", "mountPath": "/dev/shm"}])
    emulator = emulate([config_map, job])
    nodes = [emulator.prepare(index).process for index in range(2)]
    for local in nodes:
        for item in items:
            with open(local.local_path(f"/config/{item['path']}")) as f:
                assert f.read() == config_map["data"][item["key"]]
        assert local.argv[1] == local.local_path("/config/resnet/main.py")
        assert local.argv[3] == str(tmp_path / "pvc" / "shared" / "t")  # the claim, shared
    assert nodes[0].local_path("/dev/shm") != nodes[1].local_path("/dev/shm")  # each pod's own


def _long_name(job):
    job["metadata"]["name"] = "n" * 49


def _runtime_missing(job):
    job["spec"]["runtimeRef"]["name"] = "nope"


def _runtime_kind(job):
    job["spec"]["runtimeRef"]["kind"] = "Foo"


def _reserved_env(job):
    job["spec"]["trainer"]["env"] = [{"name": "PET_NNODES", "value": "3"}]


def _patch_env_on_node(job):
    job["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"][
        "replicatedJobs"][0]["template"]["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "X", "value": "1"}]


def _patch_a_sidecar(job):
    job["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"][
        "replicatedJobs"][0]["template"]["spec"]["template"]["spec"]["containers"][0][
        "name"] = "sidecar"


def _suspended(job):
    job["spec"]["suspend"] = True


def _no_nodes(job):
    job["spec"]["trainer"]["numNodes"] = 0


@pytest.mark.parametrize("change,message", [
    (_long_name, "is 49 characters: its JobSet's pod names would exceed 63"),
    (_runtime_missing, "ClusterTrainingRuntime 'nope' is not in the manifest"),
    (_runtime_kind, "unsupported runtime: Foo.trainer.kubeflow.org"),
    (_reserved_env, r"must not have reserved envs, invalid envs configured: \['PET_NNODES'\]"),
    (_patch_env_on_node, "env must not be set on container 'node'"),
    (_patch_a_sidecar, "containers 'sidecar' does not exist in the runtime's job 'node'"),
    (_suspended, r"suspend: true \(a TrainJob waiting for Kueue\) is not emulated"),
    (_no_nodes, "numNodes 0: a TrainJob needs at least one node"),
])
def test_refused(emulate, change, message):
    job = trainjob("t", numNodes=2, image="python", command=["true"],
                   mounts=[{"name": "scratch", "mountPath": "/scratch"}],
                   pod_spec={"volumes": [{"name": "scratch", "emptyDir": {}}]})
    emulate([job])  # accepted as it is
    change(job)
    with pytest.raises(EmulatorError, match=message):
        emulate([job])
