"""An object's ``metadata`` (name, namespace, labels, annotations) as the API server checks it.

Field types are checked by the schema (``kctl/schemas/objectmeta.json``), not here; the rules for
each kind of name are in :mod:`kctl.validate.names`.
"""

from __future__ import annotations

from kctl.validate.names import NAME_RULES, dns1123_label_error, key_error, label_value_error
from kctl.validate.problems import Problem, join


def metadata_problems(meta, name_rule: str, path: str = "metadata",
                      top_level: bool = True) -> list[Problem]:
    """Syntax problems in an object's (or a pod template's) ``metadata``.

    Args:
        meta: The ``metadata`` map; anything else is left to the schema check.
        name_rule: A key of :data:`NAME_RULES`.
        path: Where ``meta`` is, for messages.
        top_level: An object's own metadata needs a name (or ``generateName``); a pod
            template's does not.
    """
    if not isinstance(meta, dict):
        if meta is None and top_level:
            return [Problem(path, "required field is missing")]
        return []  # a wrong type is the schema check's finding
    problems = []
    name = meta.get("name")
    if isinstance(name, str):
        error = NAME_RULES[name_rule](name)
        if error:
            problems.append(Problem(join(path, "name"), error))
    elif name is None and top_level and not meta.get("generateName"):
        problems.append(Problem(join(path, "name"), "required field is missing"))
    namespace = meta.get("namespace")
    if isinstance(namespace, str) and dns1123_label_error(namespace):
        problems.append(Problem(join(path, "namespace"), dns1123_label_error(namespace)))
    for field in ("labels", "annotations"):
        entries = meta.get(field)
        if not isinstance(entries, dict):
            continue
        for key, value in entries.items():
            where = join(join(path, field), str(key))
            error = key_error(str(key))
            if error is None and field == "labels" and isinstance(value, str):
                error = label_value_error(value)
            if error:
                problems.append(Problem(where, error))
    return problems
