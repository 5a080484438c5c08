"""The CRDs' CEL rules (x-kubernetes-validations), evaluated with cel-python."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kctl.validate.cel import cel_problems
from kctl.validate.schema import crd_schema
from tests.support.fake_apiserver import REPO_ROOT


def _found(job) -> dict:
    return {p.path: p.message for p in cel_problems(crd_schema("TrainJob"), job)}


def test_the_example_passes_every_rule(trainjob):
    assert _found(trainjob) == {}


@pytest.mark.parametrize("name, messages", [
    ("1st-job", ["metadata.name must match RFC 1035 DNS label format"]),
    ("llm_ft", ["metadata.name must match RFC 1035 DNS label format"]),
    ("a" * 64, ["metadata.name must be no more than 63 characters"]),
    ("a" * 63, []),
])
def test_name_rules_on_the_object(trainjob, name, messages):
    trainjob["metadata"]["name"] = name
    assert [p.message for p in cel_problems(crd_schema("TrainJob"), trainjob)] == messages


def test_managed_by_must_be_one_of_two_controllers(trainjob):
    trainjob["spec"]["managedBy"] = "kueue.x-k8s.io/multikueue"
    assert _found(trainjob) == {}
    trainjob["spec"]["managedBy"] = "me.example.com/controller"
    assert _found(trainjob) == {"spec.managedBy": "ManagedBy must be "
                                "trainer.kubeflow.org/trainjob-controller or "
                                "kueue.x-k8s.io/multikueue if set"}


@pytest.mark.parametrize("uri, ok", [("hf://meta-llama/Llama-3.2-1B", True), ("", True),
                                     ("s3://bucket/data", True), ("bucket/data", False),
                                     ("3s://x", False)])
def test_storage_uri_is_empty_or_a_uri(trainjob, uri, ok):
    trainjob["spec"]["initializer"] = {"dataset": {"storageUri": uri}, "model": {"storageUri": uri}}
    message = "storageUri may be empty, or it must be a valid URI (scheme://...)"
    assert _found(trainjob) == ({} if ok else {"spec.initializer.dataset.storageUri": message,
                                               "spec.initializer.model.storageUri": message})


def test_status_rule_applies_to_status_too(trainjob):
    trainjob["status"] = {"trainerStatus": {"progressPercentage": 10}}
    assert _found(trainjob) == {"status.trainerStatus": "lastUpdatedTime is required when "
                                                        "trainerStatus is present"}


def test_transition_rules_are_not_evaluated_on_create():
    schema = {"type": "object", "properties": {"spec": {
        "type": "object", "x-kubernetes-validations": [
            {"rule": "self == oldSelf", "message": "field is immutable"}]}}}
    assert cel_problems(schema, {"spec": {"a": 1}}) == []


def test_a_rule_without_message_and_one_that_cannot_be_evaluated():
    schema = {"type": "object", "properties": {"spec": {
        "type": "object", "x-kubernetes-validations": [
            {"rule": "self.size > 1"},
            {"rule": "self.missing == 1", "message": "missing must be 1"}]}}}
    found = [p.message for p in cel_problems(schema, {"spec": {"size": 0}})]
    assert found[0] == "failed rule: self.size > 1"
    assert found[1].startswith("missing must be 1 (the rule 'self.missing == 1' cannot be "
                               "evaluated: ")


def test_rules_on_the_object_wait_for_a_name(trainjob):
    del trainjob["metadata"]["name"]  # reported by the metadata check; the server would name it
    assert _found(trainjob) == {}


def _imported_after(code: str) -> bool:
    script = f"import sys\n{code}\nprint('celpy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    return done.stdout.split()[-1] == "True"


def test_cel_python_is_imported_only_to_evaluate_a_rule():
    pytorchjob = ("from kctl.validate.manifest import validate_object, load_documents\n"
                  "for obj in load_documents(open('tests/kctl/golden/pytorchjob/gpu_2x8.yaml')"
                  ".read()):\n    assert validate_object(obj) == []")
    assert not _imported_after("import kctl.validate.manifest, kctl.validate.trainjob")
    assert not _imported_after(pytorchjob)  # the PyTorchJob CRD has only a transition rule
    trainjob = ("from kctl.validate.manifest import validate_object, load_documents\n"
                "assert validate_object(load_documents(open("
                "'tests/kctl/validate/data/trainjob-2x8gpu.yaml').read())[0]) == []")
    assert _imported_after(trainjob)
