"""TrainJobs: the API server's checks, the Trainer webhook's rules and what only kctl checks."""

from __future__ import annotations

import copy

import pytest

from kctl.validate.manifest import validate_object
from kctl.validate.trainjob import (api_problems, client_problems, default_runtime_object,
                                    domain_prefixed_path_error, webhook_problems)
from tests.support.fake_apiserver import trainjob as kctl_trainjob

from .conftest import node_pod

PATCH = "spec.runtimePatches[0]"
JOB = f"{PATCH}.trainingRuntimeSpec.template.spec.replicatedJobs[0]"
POD = f"{JOB}.template.spec.template.spec"


def _found(problems) -> dict:
    return {p.path: p.message for p in problems}


def _runtime(jobs: dict, name: str = "custom") -> dict:
    """A runtime object with these replicated jobs ({name: [container, ...]}), ``node`` the
    trainer's."""
    rjobs = []
    for rjob, containers in jobs.items():
        labels = {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"} if rjob == "node" \
            else {}
        rjobs.append({"name": rjob, "template": {"metadata": {"labels": labels}, "spec": {
            "template": {"spec": {"containers": [{"name": c} for c in containers]}}}}})
    return {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "ClusterTrainingRuntime",
            "metadata": {"name": name},
            "spec": {"mlPolicy": {"numNodes": 1, "torch": {}},
                     "template": {"spec": {"replicatedJobs": rjobs}}}}


def test_the_facts_example_passes(trainjob):
    assert validate_object(trainjob) == []


@pytest.mark.parametrize("options", [
    {"nodes": 1, "gpus": 8}, {"nodes": 4, "gpus": 8}, {"nodes": 2, "gpus": 0},
    {"nodes": 2, "claim": "work-dirs", "queue": "team-a"},
    {"runtime": "my-runtime", "runtime_kind": "TrainingRuntime"}])
def test_the_shape_kctl_renders_passes(options):
    assert validate_object(kctl_trainjob("resnet18-digits", **options)) == []


def test_api_version_must_be_v1alpha1(trainjob):
    trainjob["apiVersion"] = "trainer.kubeflow.org/v1"
    assert [str(p) for p in validate_object(trainjob)] == [
        "apiVersion: must be trainer.kubeflow.org/v1alpha1 for a TrainJob, got "
        "'trainer.kubeflow.org/v1'"]


# -- the API server (422) -----------------------------------------------------------------------


@pytest.mark.parametrize("mutate, path, message", [
    (lambda j: j["spec"].update(podTemplateOverrides=[]), "spec.podTemplateOverrides",
     "unknown field"),
    (lambda j: j["spec"]["trainer"].update(numProcPerNode="auto"), "spec.trainer.numProcPerNode",
     'must be an integer, got "auto"'),
    (lambda j: j["spec"].update(activeDeadlineSeconds=0), "spec.activeDeadlineSeconds",
     "must be at least 1, got 0"),
    (lambda j: j["spec"]["runtimePatches"].extend({"manager": f"x.io/{i}"} for i in range(16)),
     "spec.runtimePatches", "has 17 entries; at most 16 are allowed"),
    (lambda j: j["spec"]["runtimePatches"].append({"manager": "mycli.example.com/cli"}),
     "spec.runtimePatches[1]",
     'duplicate entry: manager="mycli.example.com/cli" is already at spec.runtimePatches[0]'),
    (lambda j: j["spec"]["runtimeRef"].pop("name"), "spec.runtimeRef.name",
     "required field is missing"),
    (lambda j: j["spec"]["trainer"]["resourcesPerNode"]["limits"].update(memory="64GB"),
     "spec.trainer.resourcesPerNode.limits.memory",
     '"64GB" is not a quantity (e.g. 500m, 4, 16Gi)'),
    (lambda j: j["spec"].update(managedBy="me"), "spec.managedBy",
     "ManagedBy must be trainer.kubeflow.org/trainjob-controller or kueue.x-k8s.io/multikueue "
     "if set"),
    (lambda j: j["metadata"].update(name="Llm-ft"), "metadata.name",
     "'Llm-ft' is not a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting "
     "and ending with a letter or digit"),
])
def test_what_the_api_server_refuses(trainjob, mutate, path, message):
    mutate(trainjob)
    assert _found(api_problems(trainjob))[path] == message


def test_a_pod_field_a_patch_cannot_set_says_what_it_can(trainjob):
    node_pod(trainjob)["priorityClassName"] = "high"
    node_pod(trainjob)["containers"][0]["resources"] = {"limits": {"cpu": 1}}
    node_pod(trainjob)["containers"][0]["volumeMount"] = []
    assert _found(api_problems(trainjob)) == {
        f"{POD}.priorityClassName":
            "unknown field: a runtime patch can set only affinity, containers, imagePullSecrets, "
            "initContainers, nodeSelector, schedulingGates, securityContext, serviceAccountName, "
            "terminationGracePeriodSeconds, tolerations, volumes of a pod; priorityClassName "
            "needs a custom (Cluster)TrainingRuntime",
        f"{POD}.containers[0].resources":
            "unknown field: a container patch can set only env, name, securityContext, "
            "volumeMounts; resources comes from spec.trainer or needs a custom "
            "(Cluster)TrainingRuntime",
        f"{POD}.containers[0].volumeMount": "unknown field (did you mean volumeMounts?)"}


# -- the Trainer's webhook (403) ---------------------------------------------------------------


@pytest.mark.parametrize("ref, message", [
    ({"kind": "TrainJobRuntime"}, "unsupported runtime: TrainJobRuntime.trainer.kubeflow.org"),
    ({"apiGroup": "kubeflow.org"}, "unsupported runtime: ClusterTrainingRuntime.kubeflow.org"),
])
def test_unsupported_runtime_kind_or_group(trainjob, ref, message):
    trainjob["spec"]["runtimeRef"].update(ref)
    assert _found(webhook_problems(trainjob)) == {
        "spec.runtimeRef": f"{message} (the Trainer runs ClusterTrainingRuntime or "
                           "TrainingRuntime of API group trainer.kubeflow.org)"}


def test_runtime_ref_defaults_to_a_cluster_training_runtime(trainjob):
    del trainjob["spec"]["runtimeRef"]["kind"], trainjob["spec"]["runtimeRef"]["apiGroup"]
    assert validate_object(trainjob) == []


@pytest.mark.parametrize("name", ["PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK",
                                  "PET_MASTER_ADDR", "PET_MASTER_PORT"])
def test_torchrun_variables_are_reserved(trainjob, name):
    trainjob["spec"]["trainer"]["env"].append({"name": name, "value": "1"})
    assert _found(webhook_problems(trainjob)) == {
        "spec.trainer.env[2].name": f"{name} is reserved: the Trainer sets PET_NNODES, "
                                    "PET_NPROC_PER_NODE, PET_NODE_RANK, PET_MASTER_ADDR, "
                                    "PET_MASTER_PORT for torchrun from numNodes and "
                                    "numProcPerNode; remove it"}


def test_other_pet_variables_are_torchrun_flags_and_allowed(trainjob):
    trainjob["spec"]["trainer"]["env"].append({"name": "PET_RDZV_BACKEND", "value": "c10d"})
    assert webhook_problems(trainjob) == []


@pytest.mark.parametrize("manager, message", [
    ("cli", "'cli' must be a domain-prefixed path such as mycli.example.com/cli (a domain you "
            "own, '/', a name)"),
    ("mycli.example.com/", "'mycli.example.com/' must be a domain-prefixed path such as "
                           "mycli.example.com/cli (a domain you own, '/', a name)"),
    ("My_CLI.com/cli", "the domain 'My_CLI.com' of 'My_CLI.com/cli' is not a DNS-1123 subdomain"),
    ("kctl.dev/a b", "the path 'a b' of 'kctl.dev/a b' may hold only letters, digits and "
                     "/-._~%!$&'()*+,;=:"),
    ("kctl.dev/kctl", None), ("trainer.kubeflow.org/kubeflow-sdk", None), ("a.b/c/d:e", None),
])
def test_patch_manager_is_a_domain_prefixed_path(trainjob, manager, message):
    assert domain_prefixed_path_error(manager) == message
    trainjob["spec"]["runtimePatches"][0]["manager"] = manager
    assert _found(webhook_problems(trainjob)) == ({} if message is None else
                                                  {f"{PATCH}.manager": message})


def test_patches_name_only_jobs_and_containers_the_runtime_has(trainjob):
    node_pod(trainjob)["containers"].append({"name": "trainer"})  # the Trainer docs' trap
    node_pod(trainjob)["initContainers"] = [{"name": "fetch"}]
    trainjob["spec"]["runtimePatches"].append({
        "manager": "kctl.dev/launcher", "trainingRuntimeSpec": {"template": {"spec": {
            "replicatedJobs": [{"name": "launcher"}]}}}})
    assert _found(webhook_problems(trainjob)) == {
        f"{POD}.containers[1].name":
            "the node job of runtime torch-distributed has no container 'trainer' (it has node); "
            "a patch changes containers, it cannot add one",
        f"{POD}.initContainers[0].name":
            "the node job of runtime torch-distributed has no container 'fetch' (it has node); a "
            "patch changes containers, it cannot add one",
        "spec.runtimePatches[1].trainingRuntimeSpec.template.spec.replicatedJobs[0].name":
            "runtime torch-distributed has no replicated job 'launcher' (it has node)"}


def test_no_env_on_the_node_container(trainjob):
    node_pod(trainjob)["containers"][0]["env"] = [{"name": "NCCL_DEBUG", "value": "INFO"}]
    assert _found(webhook_problems(trainjob)) == {
        f"{POD}.containers[0].env": "env cannot be patched into the node container: set "
                                    "spec.trainer.env"}


def test_initializers_need_a_runtime_that_has_them(trainjob):
    trainjob["spec"]["initializer"] = {"model": {"storageUri": "hf://org/model"}}
    assert _found(webhook_problems(trainjob)) == {
        "spec.initializer.model": "runtime torch-distributed has no model-initializer job: use "
                                  "a runtime with initializers, or leave spec.initializer.model "
                                  "out"}
    runtime = _runtime({"node": ["node"], "model-initializer": ["init"]})
    assert _found(webhook_problems(trainjob, runtime)) == {
        "spec.initializer.model": "the model-initializer job of runtime custom has no container "
                                  "named model-initializer"}
    runtime = _runtime({"node": ["node"], "model-initializer": ["model-initializer"]})
    assert webhook_problems(trainjob, runtime) == []


def test_rules_on_the_runtimes_jobs_follow_the_runtime_given(trainjob):
    trainjob["spec"]["runtimeRef"]["name"] = "mpi-distributed"
    node_pod(trainjob)["containers"][0]["name"] = "mpi"
    assert webhook_problems(trainjob) == []  # an unknown runtime: not checked offline
    assert _found(webhook_problems(trainjob, _runtime({"node": ["node"]}))) == {
        f"{POD}.containers[0].name": "the node job of runtime custom has no container 'mpi' (it "
                                     "has node); a patch changes containers, it cannot add one"}
    assert webhook_problems(trainjob, _runtime({"node": ["mpi"]})) == []


# -- what only kctl checks ----------------------------------------------------------------------


@pytest.mark.parametrize("nodes, limit", [(1, 48), (10, 48), (11, 47), (100, 47), (101, 46),
                                          (1000, 46)])
def test_name_length_follows_the_pod_names(trainjob, nodes, limit):
    trainjob["spec"]["trainer"]["numNodes"] = nodes
    trainjob["metadata"]["name"] = "a" * limit
    assert client_problems(trainjob) == []
    trainjob["metadata"]["name"] = "a" * (limit + 1)
    last = nodes - 1
    assert _found(client_problems(trainjob)) == {"metadata.name": (
        f"'{'a' * (limit + 1)}' is {limit + 1} characters; a TrainJob with {nodes} "
        f"node{'s' * (nodes > 1)} may have at most {limit}: its pods are named "
        f"<name>-node-0-{last}-<5 random characters>, at most 63 (a longer name is accepted, then "
        "no pod is ever created); choose a shorter name")}


def test_an_initializer_job_shortens_the_name_further(trainjob):
    trainjob["spec"]["initializer"] = {"dataset": {"storageUri": "hf://org/data"}}
    trainjob["metadata"]["name"] = "a" * 34
    assert list(_found(client_problems(trainjob)).values()) == [
        f"'{'a' * 34}' is 34 characters; a TrainJob with a dataset-initializer job may have at "
        "most 33: its pods are named <name>-dataset-initializer-0-0-<5 random characters>, at "
        "most 63 (a longer name is accepted, then no pod is ever created); choose a shorter name"]


def test_the_node_count_defaults_to_the_runtimes(trainjob):
    del trainjob["spec"]["trainer"]["numNodes"]
    trainjob["metadata"]["name"] = "a" * 48
    runtime = _runtime({"node": ["node"]})
    runtime["spec"]["mlPolicy"]["numNodes"] = 11
    assert client_problems(trainjob) == []
    assert list(_found(client_problems(trainjob, runtime))) == ["metadata.name"]


@pytest.mark.parametrize("field", ["numNodes", "numProcPerNode"])
def test_nodes_and_processes_at_least_one(trainjob, field):
    trainjob["spec"]["trainer"][field] = 0
    assert _found(client_problems(trainjob)) == {
        f"spec.trainer.{field}": "must be at least 1, got 0 (the API server accepts it, and the "
                                 "job never runs)"}


def test_mounts_need_a_volume_from_some_patch_or_the_runtime(trainjob):
    pod = node_pod(trainjob)
    moved = pod["volumes"].pop()  # dshm, into a second patch for the same job
    second = copy.deepcopy(trainjob["spec"]["runtimePatches"][0])
    second["manager"] = "kctl.dev/shm"
    node_pod({"spec": {"runtimePatches": [second]}}).clear()
    node_pod({"spec": {"runtimePatches": [second]}})["volumes"] = [moved]
    trainjob["spec"]["runtimePatches"].append(second)
    assert client_problems(trainjob) == []
    trainjob["spec"]["runtimePatches"].pop()
    assert _found(client_problems(trainjob)) == {
        f"{POD}.containers[0].volumeMounts[2].name": "no volume named 'dshm' in the pod"}
    trainjob["spec"]["runtimeRef"]["name"] = "mine"  # its volumes are unknown: not checked
    assert client_problems(trainjob) == []


def test_labels_in_patches_are_checked_before_the_pods_fail(trainjob):
    rjob = trainjob["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"][
        "replicatedJobs"][0]
    rjob["template"]["spec"]["template"]["metadata"] = {"labels": {"team": "a b"}}
    assert _found(client_problems(trainjob)) == {
        f"{JOB}.template.spec.template.metadata.labels.team":
            "label value 'a b' may hold only letters, digits, '-', '_' and '.', and must start "
            "and end with a letter or digit"}


def test_every_layer_reports_through_validate_object(trainjob):
    trainjob["metadata"]["name"] = "x" * 49
    trainjob["spec"]["trainer"]["env"].append({"name": "PET_MASTER_PORT", "value": "1"})
    trainjob["spec"]["trainer"]["numProcPerNode"] = "8"
    paths = [p.path for p in validate_object(trainjob)]
    assert paths == ["metadata.name", "spec.trainer.env[2].name", "spec.trainer.numProcPerNode"]


def test_the_vendored_runtime_is_torch_distributed():
    runtime = default_runtime_object()
    assert runtime["metadata"]["name"] == "torch-distributed"
    assert [j["name"] for j in runtime["spec"]["template"]["spec"]["replicatedJobs"]] == ["node"]
