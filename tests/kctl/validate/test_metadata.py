"""Names, namespaces, labels and annotations."""

from __future__ import annotations

import pytest

from kctl.validate.metadata import (dns1035_error, dns1123_label_error, dns1123_subdomain_error,
                                    key_error, label_value_error, metadata_problems)


@pytest.mark.parametrize("name, ok", [("digits", True), ("d-2x8", True), ("a" * 63, True),
                                      ("a" * 64, False), ("2x8", False), ("Digits", False),
                                      ("digits-", False), ("dig.its", False), ("dig_its", False)])
def test_job_names_are_dns1035_labels_of_at_most_63(name, ok):
    assert (dns1035_error(name) is None) is ok


@pytest.mark.parametrize("value, label_ok, subdomain_ok", [
    ("team-a", True, True), ("2team", True, True), ("a.b", False, True), ("A", False, False),
    ("-a", False, False), ("a" * 64, False, True), ("a..b", False, False)])
def test_dns1123_labels_and_subdomains(value, label_ok, subdomain_ok):
    assert (dns1123_label_error(value) is None) is label_ok
    assert (dns1123_subdomain_error(value) is None) is subdomain_ok


@pytest.mark.parametrize("value, ok", [("", True), ("resnet18_1xb64_digits", True),
                                       ("v1.2", True), ("_x", False), ("a b", False),
                                       ("x" * 64, False)])
def test_label_values(value, ok):
    assert (label_value_error(value) is None) is ok


@pytest.mark.parametrize("key, ok", [("app", True), ("app.kubernetes.io/name", True),
                                     ("kctl.dev/config", True), ("Bad_Prefix/x", False),
                                     ("a/", False), ("a/b/c", False), ("x" * 64, False)])
def test_label_keys(key, ok):
    assert (key_error(key) is None) is ok


def test_metadata_problems_name_the_field():
    meta = {"name": "Digits", "namespace": "Research",
            "labels": {"ok": "yes", "bad value": "x", "team": "a b"},
            "annotations": {"note/x/y": "free text is fine"}}
    found = {p.path: p.message for p in metadata_problems(meta, "dns1035")}
    assert set(found) == {"metadata.name", "metadata.namespace", "metadata.labels[bad value]",
                          "metadata.labels.team", "metadata.annotations[note/x/y]"}
    assert "DNS-1035" in found["metadata.name"]
    assert "DNS-1123 label" in found["metadata.namespace"]


def test_an_object_needs_a_name_or_generate_name_but_a_pod_template_does_not():
    assert [str(p) for p in metadata_problems({}, "dns1035")] == [
        "metadata.name: required field is missing"]
    assert metadata_problems({"generateName": "digits-"}, "dns1035") == []
    assert [str(p) for p in metadata_problems(None, "dns1035")] == [
        "metadata: required field is missing"]
    assert metadata_problems(None, "dns1123-subdomain", "x.metadata", top_level=False) == []
