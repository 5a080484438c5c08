"""The uniqueness the API server enforces through ``x-kubernetes-list-type``.

Plain JSON Schema ignores these extensions, so two containers (or env entries, ports, volumes,
volume mounts...) with the same name pass it; the API server refuses them. This walks an object
along its schema and reports duplicates in every list marked ``map`` (by its
``x-kubernetes-list-map-keys``, with the keys' schema defaults applied, e.g. a port's protocol
``TCP``) or ``set``.
"""

from __future__ import annotations

import json

from kctl.validate.problems import Problem, join
from kctl.validate.schema import along


def list_problems(schema: dict, instance, path: str = "") -> list[Problem]:
    """Duplicates in ``instance``'s map- and set-type lists, found through ``schema``."""
    problems: list[Problem] = []
    for node, value, where in along(schema, instance, path):
        if not isinstance(value, list):
            continue
        list_type = node.get("x-kubernetes-list-type")
        if list_type == "map":
            _duplicates(node, value, where, problems)
        elif list_type == "set":
            _set_duplicates(value, where, problems)
    return problems


def _duplicates(schema: dict, items: list, path: str, problems: list[Problem]) -> None:
    keys = schema.get("x-kubernetes-list-map-keys", [])
    item_properties = schema.get("items", {}).get("properties", {})
    seen: dict[tuple, int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        values = tuple(item.get(k, item_properties.get(k, {}).get("default")) for k in keys)
        if any(v is None for v in values):
            continue  # a missing key is the schema's "required" problem, not a duplicate
        if values in seen:
            described = ", ".join(f"{k}={_show(v)}" for k, v in zip(keys, values))
            problems.append(Problem(join(path, index),
                                    f"duplicate entry: {described} is already at "
                                    f"{join(path, seen[values])}"))
        else:
            seen[values] = index


def _set_duplicates(items: list, path: str, problems: list[Problem]) -> None:
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        key = json.dumps(item, sort_keys=True)
        if key in seen:
            problems.append(Problem(join(path, index), f"duplicate value {_show(item)} "
                                                       f"(already at {join(path, seen[key])})"))
        else:
            seen[key] = index


def _show(value) -> str:
    return json.dumps(value, ensure_ascii=False)
