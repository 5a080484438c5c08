"""JSON-Schema checks: the vendored CRDs and kctl's hand-written core schemas.

Schemas are closed before use (:func:`close`): an object schema that lists ``properties`` and says
nothing about other fields gets ``additionalProperties: false``, so a typo such as
``restartPolcy`` is reported instead of being pruned silently by the API server. ``jsonschema``
errors become :class:`~kctl.validate.problems.Problem` s with kubectl-style paths.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
from importlib import resources

import yaml

from kctl.errors import KctlError
from kctl.validate.limits import QUANTITY_PATTERN
from kctl.validate.problems import Problem, join, join_all

#: kind -> (vendored CRD file, the version whose schema is used); see kctl/schemas/README.md.
CRDS = {
    "PyTorchJob": ("kubeflow.org_pytorchjobs.yaml", "v1"),
    "TrainJob": ("trainer.kubeflow.org_trainjobs.yaml", "v1alpha1"),
}

_INT_RANGES = {"int32": (-2 ** 31, 2 ** 31 - 1), "int64": (-2 ** 63, 2 ** 63 - 1)}

_TYPE_WORDS = {"string": "a string", "integer": "an integer", "boolean": "a boolean (true/false)",
               "object": "a map", "array": "a list", "number": "a number", "null": "null"}


def _read(name: str) -> str:
    return resources.files("kctl").joinpath("schemas").joinpath(name).read_text(encoding="utf-8")


def load_yaml(name: str):
    """A YAML file of kctl/schemas, parsed with libyaml where present (0.04 s instead of 1 s for
    a CRD)."""
    return yaml.load(_read(name), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@functools.lru_cache(maxsize=None)
def object_meta_schema() -> dict:
    """``kctl/schemas/objectmeta.json``: the fields of ``metadata`` and their types."""
    return json.loads(_read("objectmeta.json"))


@functools.lru_cache(maxsize=None)
def crd_schema(kind: str) -> dict:
    """The vendored CRD's ``openAPIV3Schema`` for ``kind`` (a key of :data:`CRDS`), as
    published (not closed)."""
    name, wanted = CRDS[kind]
    for version in load_yaml(name)["spec"]["versions"]:
        if version["name"] == wanted:
            return version["schema"]["openAPIV3Schema"]
    raise KctlError(f"kctl's vendored {name} has no {wanted} version")


@functools.lru_cache(maxsize=None)
def core_schema(name: str) -> dict:
    """A hand-written schema from kctl/schemas, with ``metadata`` filled in, closed."""
    schema = json.loads(_read(name))
    schema["properties"]["metadata"] = object_meta_schema()
    return close(schema)


@functools.lru_cache(maxsize=None)
def job_schema(kind: str) -> dict:
    """``kind``'s CRD schema, closed, with the top-level ``metadata`` (an open object there)
    typed."""
    schema = close(crd_schema(kind))
    schema["properties"]["metadata"] = object_meta_schema()
    return schema


def along(schema: dict, instance, path: str = ""):
    """Every ``(schema, value, path)`` of ``instance`` that ``schema`` describes, parents first.

    Follows ``properties`` (or an ``additionalProperties`` schema) into maps and ``items`` into
    lists, as the API server does for the ``x-kubernetes-*`` extensions plain JSON Schema
    ignores; values the schema does not describe are skipped.
    """
    if not isinstance(schema, dict):
        return
    yield schema, instance, path
    if isinstance(instance, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, value in instance.items():
            child = properties.get(key, extra if isinstance(extra, dict) else None)
            if child is not None:
                yield from along(child, value, join(path, key))
    elif isinstance(instance, list):
        for index, item in enumerate(instance):
            yield from along(schema.get("items", {}), item, join(path, index))


def close(schema: dict) -> dict:
    """A copy of ``schema`` where every object schema with ``properties`` is closed.

    Schemas that already set ``additionalProperties`` or carry
    ``x-kubernetes-preserve-unknown-fields`` are left open as they are.
    """
    schema = copy.deepcopy(schema)
    _close(schema)
    return schema


def _close(node) -> None:
    if isinstance(node, list):
        for item in node:
            _close(item)
        return
    if not isinstance(node, dict):
        return
    if ("properties" in node and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        node["additionalProperties"] = False
    for key in ("properties", "definitions"):
        for child in node.get(key, {}).values():
            _close(child)
    for key in ("items", "additionalProperties", "anyOf", "allOf", "oneOf", "not"):
        if key in node:
            _close(node[key])


def _validator(schema: dict):
    try:
        import jsonschema
    except ImportError:
        raise KctlError("validating manifests needs the jsonschema package: "
                        "pip install 'jsonschema>=4.18'") from None
    formats = jsonschema.FormatChecker(formats=())
    for name, (low, high) in _INT_RANGES.items():
        formats.checks(name)(
            lambda value, low=low, high=high: not isinstance(value, int) or low <= value <= high)
    return jsonschema.Draft7Validator(schema, format_checker=formats)


@functools.lru_cache(maxsize=None)
def _cached_validator(kind: str):
    if kind in CRDS:
        return _validator(job_schema(kind))
    return _validator(core_schema(kind))


def schema_problems(kind: str, instance) -> list[Problem]:
    """Validate ``instance`` against the closed schema for ``kind``.

    Args:
        kind: A key of :data:`CRDS` (``"TrainJob"``) or the file name of a core schema
            (``"configmap.json"``).
        instance: The object, as loaded from YAML.
    """
    validator = _cached_validator(kind)
    problems: set[Problem] = set()
    for error in validator.iter_errors(instance):
        problems.update(_explain(error))
    return sorted(problems)


def _explain(error) -> list[Problem]:
    """One jsonschema error as problems a person can act on."""
    path = join_all("", error.absolute_path)
    instance, value = error.instance, error.validator_value
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = list(error.schema.get("properties", {}))
        return [Problem(join(path, extra), "unknown field" + _did_you_mean(extra, known))
                for extra in instance if extra not in known]
    if error.validator == "required" and isinstance(instance, dict):
        return [Problem(join(path, field), "required field is missing")
                for field in value if field not in instance]
    if error.validator == "type":
        wanted = value if isinstance(value, list) else [value]
        return [Problem(path, f"must be {' or '.join(_TYPE_WORDS.get(t, t) for t in wanted)}, "
                              f"got {_show(instance)}")]
    if error.validator == "pattern" and value == QUANTITY_PATTERN:
        return [Problem(path, f"{_show(instance)} is not a quantity (e.g. 500m, 4, 16Gi)")]
    if error.validator == "format" and value in _INT_RANGES:
        return [Problem(path, f"{instance} is out of range for {value}")]
    if error.validator in _BOUNDS and isinstance(value, int):
        return [Problem(path, _BOUNDS[error.validator](instance, value))]
    if error.validator in ("enum", "const"):
        allowed = value if error.validator == "enum" else [value]
        return [Problem(path, f"must be {' or '.join(_show(a) for a in allowed)}, "
                              f"got {_show(instance)}")]
    return [Problem(path, error.message)]


#: jsonschema's size and range keywords, told the way kubectl would (its own messages print the
#: whole value, e.g. a list of 17 runtime patches).
_BOUNDS = {
    "maxItems": lambda got, limit: f"has {len(got)} entries; at most {limit} are allowed",
    "minItems": lambda got, limit: f"has {len(got)} entries; at least {limit} are needed",
    "maxLength": lambda got, limit: f"is {len(got)} characters; at most {limit} are allowed",
    "minLength": lambda got, limit: ("must not be empty" if limit == 1 else
                                     f"is {len(got)} characters; at least {limit} are needed"),
    "minimum": lambda got, limit: f"must be at least {limit}, got {got}",
    "maximum": lambda got, limit: f"must be at most {limit}, got {got}",
}


def _did_you_mean(word: str, known: list[str]) -> str:
    close_ = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean {close_[0]}?)" if close_ else ""


def _show(value) -> str:
    """A short JSON rendering of a value for a message."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
