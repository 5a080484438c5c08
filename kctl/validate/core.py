"""ConfigMap and PersistentVolumeClaim (core/v1), checked with kctl's hand-written schemas.

See kctl/schemas/README.md for what those schemas cover. On top of them: ConfigMap keys must be
valid file names (``[-._a-zA-Z0-9]+``, not ``.`` or ``..``), unique across ``data`` and
``binaryData``, and the whole ConfigMap must fit in 1 MiB.
"""

from __future__ import annotations

from kctl.validate.limits import CONFIG_MAP_LIMIT, config_map_key_error, data_size
from kctl.validate.problems import Problem, join
from kctl.validate.schema import schema_problems


def config_map_problems(obj: dict) -> list[Problem]:
    problems = schema_problems("configmap.json", obj)
    seen = set()
    for field in ("data", "binaryData"):
        entries = obj.get(field)
        if not isinstance(entries, dict):
            continue
        for key in entries:
            error = config_map_key_error(str(key))
            if error is None and key in seen:
                error = "key appears in both data and binaryData"
            if error:
                problems.append(Problem(join(field, str(key)), error))
            seen.add(key)
    size = data_size(obj)
    if size > CONFIG_MAP_LIMIT:
        problems.append(Problem("", f"is {size} bytes; a ConfigMap holds at most "
                                    f"{CONFIG_MAP_LIMIT} (1 MiB)"))
    return problems


def pvc_problems(obj: dict) -> list[Problem]:
    return schema_problems("persistentvolumeclaim.json", obj)
