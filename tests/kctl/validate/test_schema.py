"""The vendored CRD and the closed JSON-Schema check built from it."""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest

from kctl.validate.schema import close, crd_schema, job_schema, schema_problems

#: The vendored files and their sha256 (kctl/schemas/README.md says where each comes from).
VENDORED = {
    "kubeflow.org_pytorchjobs.yaml":
        "eb80e57a984cdc7ceefaaf3fc561e21b673c30cbb58589f2389528d2b2760d22",
    "trainer.kubeflow.org_trainjobs.yaml":
        "a742cafc5b5582640c7e0b7467c024fc237256fbca5ba0a9f0531dfb66d64416",
    "torch_distributed.yaml": "c4520df54615d481831d402e644dbeaf77a7a521eae87b2e80fd5f789aac5df2",
}


@pytest.mark.parametrize("name", sorted(VENDORED))
def test_vendored_files_are_unchanged(name):
    data = resources.files("kctl").joinpath("schemas").joinpath(name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == VENDORED[name]


def test_each_crd_gives_the_version_kctl_validates():
    assert crd_schema("PyTorchJob")["properties"]["spec"]["required"] == ["pytorchReplicaSpecs"]
    assert crd_schema("TrainJob")["properties"]["spec"]["required"] == ["runtimeRef"]


def test_close_adds_additional_properties_false_only_where_fields_are_listed():
    schema = {"type": "object", "properties": {
        "a": {"type": "object", "properties": {"x": {"type": "string"}}},
        "open": {"type": "object", "additionalProperties": {"type": "string"}},
        "free": {"type": "object", "properties": {"y": {}},
                 "x-kubernetes-preserve-unknown-fields": True},
        "list": {"type": "array", "items": {"type": "object", "properties": {"z": {}}}},
        "plain": {"type": "object"}}}
    closed = close(schema)
    assert closed["additionalProperties"] is False
    assert closed["properties"]["a"]["additionalProperties"] is False
    assert closed["properties"]["open"]["additionalProperties"] == {"type": "string"}
    assert "additionalProperties" not in closed["properties"]["free"]
    assert closed["properties"]["list"]["items"]["additionalProperties"] is False
    assert "additionalProperties" not in closed["properties"]["plain"]
    assert "additionalProperties" not in schema  # the original is untouched


def test_the_published_schema_stays_open_and_ours_is_closed():
    assert "additionalProperties" not in crd_schema("PyTorchJob")["properties"]["spec"]
    assert job_schema("PyTorchJob")["properties"]["spec"]["additionalProperties"] is False
    assert job_schema("PyTorchJob")["properties"]["metadata"]["additionalProperties"] is False


def test_a_valid_job_has_no_schema_problem(job):
    assert schema_problems("PyTorchJob", job) == []


def _paths(problems) -> dict:
    return {p.path: p.message for p in problems}


def test_unknown_field_is_reported_with_a_suggestion(job):
    master = job["spec"]["pytorchReplicaSpecs"]["Master"]
    master["restartPolcy"] = master.pop("restartPolicy")
    assert _paths(schema_problems("PyTorchJob", job)) == {
        "spec.pytorchReplicaSpecs.Master.restartPolcy":
            "unknown field (did you mean restartPolicy?)"}


def test_unknown_metadata_field(job):
    job["metadata"]["lables"] = job["metadata"].pop("labels")
    assert _paths(schema_problems("PyTorchJob", job)) == {
        "metadata.lables": "unknown field (did you mean labels?)"}


@pytest.mark.parametrize("mutate, path, message", [
    (lambda j: j["spec"].update(nprocPerNode=8), "spec.nprocPerNode", "must be a string, got 8"),
    (lambda j: j["spec"].pop("pytorchReplicaSpecs"), "spec.pytorchReplicaSpecs",
     "required field is missing"),
    (lambda j: j["metadata"]["labels"].update(team=True), "metadata.labels.team",
     "must be a string, got true"),
    (lambda j: j["spec"]["runPolicy"].update(backoffLimit=2 ** 31), "spec.runPolicy.backoffLimit",
     "2147483648 is out of range for int32"),
    (lambda j: j["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0][
        "resources"]["limits"].update(memory="64GB"),
     "spec.pytorchReplicaSpecs.Master.template.spec.containers[0].resources.limits.memory",
     '"64GB" is not a quantity (e.g. 500m, 4, 16Gi)'),
    (lambda j: j["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
     .pop("name"), "spec.pytorchReplicaSpecs.Master.template.spec.containers[0].name",
     "required field is missing"),
])
def test_schema_problems_name_the_path(job, mutate, path, message):
    mutate(job)
    assert _paths(schema_problems("PyTorchJob", job)) == {path: message}
