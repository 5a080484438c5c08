"""Whole manifests: YAML loading, kinds, Lists, and the self-check of rendered output."""

from __future__ import annotations

import json

import pytest

from kctl.errors import KctlError
from kctl.validate.manifest import (ManifestError, check_rendered, describe, is_known,
                                    load_documents, validate_object)

from .conftest import GOLDEN


def test_every_kind_of_the_golden_manifests_is_known_and_valid():
    for case in ("cpu_1x0", "gpu_4x8_queue_gang"):
        for obj in load_documents((GOLDEN / f"{case}.yaml").read_text()):
            assert is_known(obj)
            assert validate_object(obj) == []


def test_a_trainjob_is_known_and_its_problems_come_sorted(trainjob):
    assert is_known(trainjob) and describe(trainjob) == "TrainJob/llm-ft"
    trainjob["spec"]["trainer"]["numNodes"] = 0
    trainjob["spec"]["managedBy"] = "me"
    trainjob["metadata"]["name"] = "Llm"
    assert [p.path for p in validate_object(trainjob)] == [
        "", "metadata.name", "spec.managedBy", "spec.trainer.numNodes"]


def test_problems_from_every_check_come_together_sorted(job):
    job["metadata"]["name"] = "Digits_2x8"
    job["spec"]["nprocPerNode"] = 8
    del job["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"]
    job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0][
        "name"] = "main"
    paths = [p.path for p in validate_object(job)]
    assert paths == sorted(paths)
    assert set(paths) == {"metadata.name", "spec.nprocPerNode",
                          "spec.pytorchReplicaSpecs.Master.replicas",
                          "spec.pytorchReplicaSpecs.Master.template.spec.containers"}


def test_a_job_name_over_63_characters_is_refused(job):
    job["metadata"]["name"] = "a" * 64
    assert [str(p) for p in validate_object(job)] == [
        f"metadata.name: job name '{'a' * 64}' is 64 characters; at most 63 are allowed"]


@pytest.mark.parametrize("obj, expected", [
    ([1, 2], ": is not a Kubernetes object"),
    ({"kind": "PyTorchJob", "metadata": {"name": "x"}}, "apiVersion: required field is missing"),
    ({"apiVersion": "v1", "metadata": {"name": "x"}}, "kind: required field is missing"),
    ({"apiVersion": "kubeflow.org/v2", "kind": "PyTorchJob", "metadata": {"name": "x"}},
     "apiVersion: must be kubeflow.org/v1 for a PyTorchJob, got 'kubeflow.org/v2'"),
])
def test_objects_that_are_not_what_they_claim(obj, expected):
    found = [f"{p.path}: {p.message}" for p in validate_object(obj)]
    assert any(line.startswith(expected) for line in found), found


def test_unknown_kinds_are_not_checked_but_not_wrong():
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}}
    assert not is_known(service)
    assert validate_object(service) == []
    assert describe(service) == "Service/x"


def test_lists_are_expanded_and_json_is_read(job, config_map):
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": [config_map, job]})
    assert [describe(o) for o in load_documents(text)] == [
        "ConfigMap/resnet18-1xb64-digits-config", "PyTorchJob/resnet18-1xb64-digits"]


def test_empty_documents_are_dropped():
    assert load_documents("---\n---\napiVersion: v1\nkind: ConfigMap\n---\n") == [
        {"apiVersion": "v1", "kind": "ConfigMap"}]


@pytest.mark.parametrize("text, message", [
    ("a: 1\nb: [\n", "line 3: not valid YAML"),
    ("spec:\n  replicas: 1\n  replicas: 2\n", "line 3: not valid YAML: duplicate key 'replicas'"),
])
def test_yaml_errors_name_the_line(text, message):
    with pytest.raises(ManifestError, match=message.replace("[", r"\[")):
        load_documents(text)


def test_check_rendered_refuses_with_the_first_problem(job, config_map):
    check_rendered([config_map, job])
    job["spec"]["nprocPerNode"] = 8
    job["metadata"]["name"] = "Bad"
    with pytest.raises(KctlError, match=r"bug in kctl; please report it: PyTorchJob/Bad: "
                                        r"metadata.name: .* \(and 1 more\)$"):
        check_rendered([config_map, job])
