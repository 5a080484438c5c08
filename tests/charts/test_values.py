"""charts/kctl/values.yaml and values.schema.json against kctl's option table.

Every row of :data:`kctl.options.OPTIONS` has its chart value (``Option.value``; dotted for a
nested one such as ``image.pullSecrets``), documented with a ``# --`` comment that names the
``kctl train`` flag, in the schema, and with kctl's default. The values without an option, and the
defaults that differ, are listed below with their reasons.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from kctl.options import DEFAULT_IMAGE, OPTIONS
from tests.charts.conftest import CHART

#: Options the chart spells as several values: kctl's one flag value is their combination.
SPLIT_VALUES = {
    "image": ("image.repository", "image.tag"),  # --image REPOSITORY:TAG (tag: the appVersion)
    "data_pvc": ("dataPvc", "dataMountPath"),    # --data-pvc CLAIM:MOUNT
}
#: Chart values that are no option of the table, with what they stand for.
NOT_OPTIONS = {
    "kind": "kctl train's --kind, which chooses the backend rather than configuring it",
    "config": "CONFIG, the config file's text",
    "configName": "CONFIG's path inside its config tree",
    "configFiles": "the _base_ files kctl train finds by itself",
    "trainerArgs": "the arguments after --",
    "nameOverride": "chart only (Helm convention): the job name instead of the release name",
    "affinity": "chart only (Kubeflow chart convention): kctl train has no affinity flag",
}
#: Chart defaults that are not kctl's, and why.
OTHER_DEFAULTS = {
    "gpus": (0, "kctl train requires --gpus; a chart value has a default: CPU training"),
    "max_restarts": (None, "unset, so that a TrainJob can refuse a value given; a PyTorchJob "
                           "then gets kctl's 3 (test_parity's default cases compare backoffLimit)"),
}


def _values_docs() -> dict[str, str]:
    """Each leaf of values.yaml by dotted path -> its ``# --`` comment ('' when it has none)."""
    docs, parents = {}, []
    lines = (CHART / "values.yaml").read_text().splitlines()
    for number, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][A-Za-z0-9]*):(.*)$", line)
        if not match:
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3)
        parents = [(i, k) for i, k in parents if i < indent]
        path = ".".join([k for _, k in parents] + [key])
        if rest.strip() == "":  # a parent map (image:), documented by its children
            parents.append((indent, key))
            continue
        comment = []
        for above in range(number - 1, -1, -1):
            text = lines[above].strip()
            if not text.startswith("#"):
                break
            comment.insert(0, text)
            if text.startswith("# --"):
                break
        docs[path] = " ".join(comment) if comment and comment[0].startswith("# --") else ""
    return docs


DOCS = _values_docs()
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def _lookup(tree: dict, path: str, step=lambda node, key: node[key]):
    for key in path.split("."):
        tree = step(tree, key)
    return tree


def _has(tree: dict, path: str) -> bool:
    for key in path.split("."):
        if not isinstance(tree, dict) or key not in tree:
            return False
        tree = tree[key]
    return True


def _schema(path: str) -> dict:
    return _lookup(SCHEMA, path, lambda node, key: node["properties"][key])


def _paths(option) -> tuple[str, ...]:
    return SPLIT_VALUES.get(option.name, (option.value,))


def test_every_value_is_documented_camel_case_and_in_the_schema():
    assert DOCS, "no values found"
    for path, doc in DOCS.items():
        assert doc, f"{path} has no '# --' comment"
        assert all(re.fullmatch(r"[a-z][a-zA-Z0-9]*", key) for key in path.split(".")), path
        assert "type" in _schema(path) or "enum" in _schema(path), path


def test_the_schema_has_no_value_values_yaml_lacks():
    def leaves(node, prefix=""):
        for key, sub in node["properties"].items():
            if "properties" in sub:
                yield from leaves(sub, f"{prefix}{key}.")
            else:
                yield prefix + key
    assert set(leaves(SCHEMA)) - {"global"} == set(DOCS)


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.name)
def test_every_option_is_a_documented_value_in_the_schema(option):
    assert _has(VALUES, option.value), f"{option.flag}: no value {option.value} in values.yaml"
    _schema(option.value)
    for path in _paths(option):
        assert path in DOCS, f"{option.flag}: no value {path} in values.yaml"
        assert option.flag in DOCS[path], f"{path}'s comment does not name {option.flag}"
        _schema(path)


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.name)
def test_every_option_has_kctls_default(option):
    if option.name in OTHER_DEFAULTS:
        assert _lookup(VALUES, option.value) == OTHER_DEFAULTS[option.name][0]
    elif option.name == "image":
        image = VALUES["image"]
        chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
        assert f"{image['repository']}:{image['tag'] or chart['appVersion']}" == DEFAULT_IMAGE
    elif option.name == "data_pvc":
        assert option.default is None and VALUES["dataPvc"] == ""
    elif option.default is None:
        assert _lookup(VALUES, option.value) in ("", None), "kctl has no default"
    else:
        assert _lookup(VALUES, option.value) == option.default


def test_every_value_is_an_option_or_says_what_it_is():
    options = {path for option in OPTIONS for path in _paths(option)}
    assert set(DOCS) - options == set(NOT_OPTIONS)
