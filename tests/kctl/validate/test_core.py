"""ConfigMaps and PersistentVolumeClaims against kctl's hand-written schemas."""

from __future__ import annotations

import pytest

from kctl.validate.core import config_map_problems, pvc_problems
from kctl.validate.limits import CONFIG_MAP_LIMIT, data_size


def _found(problems) -> dict:
    return {p.path: p.message for p in problems}


def test_the_rendered_config_map_is_valid(config_map):
    assert config_map_problems(config_map) == []


@pytest.mark.parametrize("mutate, path, message", [
    (lambda cm: cm["data"].update({"a/b.py": "x"}), "data[a/b.py]",
     "key 'a/b.py' may hold only letters, digits, '-', '_' and '.'"),
    (lambda cm: cm["data"].update({"n.py": 3}), "data[n.py]", "must be a string, got 3"),
    (lambda cm: cm.update(date={}), "date", "unknown field (did you mean data?)"),
    (lambda cm: cm.update(data={"n.py": "x"}, binaryData={"n.py": "eA=="}), "binaryData[n.py]",
     "key appears in both data and binaryData"),
    (lambda cm: cm.update(apiVersion="v2"), "apiVersion", 'must be "v1", got "v2"'),
])
def test_config_map_problems(config_map, mutate, path, message):
    mutate(config_map)
    assert _found(config_map_problems(config_map)) == {path: message}


def test_config_map_over_one_mebibyte(config_map):
    config_map["data"] = {"big.py": "x" * CONFIG_MAP_LIMIT, "small.py": "y"}
    assert data_size(config_map) == CONFIG_MAP_LIMIT + 1
    assert _found(config_map_problems(config_map)) == {
        "": f"is {CONFIG_MAP_LIMIT + 1} bytes; a ConfigMap holds at most {CONFIG_MAP_LIMIT} "
            "(1 MiB)"}


def test_a_claim_is_valid(pvc):
    assert pvc_problems(pvc) == []


@pytest.mark.parametrize("mutate, path", [
    (lambda p: p["spec"].update(acessModes=["ReadWriteMany"]), "spec.acessModes"),
    (lambda p: p["spec"].update(accessModes=["ReadWriteAll"]), "spec.accessModes[0]"),
    (lambda p: p["spec"]["resources"]["requests"].update(storage="100GB"),
     "spec.resources.requests.storage"),
    (lambda p: p.pop("spec"), "spec"),
])
def test_claim_problems(pvc, mutate, path):
    mutate(pvc)
    assert list(_found(pvc_problems(pvc))) == [path]
