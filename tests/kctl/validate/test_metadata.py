"""An object's metadata: which field is wrong, and when a name is required."""

from __future__ import annotations

from kctl.validate.metadata import metadata_problems


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
