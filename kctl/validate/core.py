"""ConfigMap and PersistentVolumeClaim (core/v1), checked with kctl's hand-written schemas.

See kctl/schemas/README.md for what those schemas cover. On top of them: ConfigMap keys must be
valid file names (``[-._a-zA-Z0-9]+``, not ``.`` or ``..``), unique across ``data`` and
``binaryData``, and the whole ConfigMap must fit in 1 MiB.
"""

from __future__ import annotations

import re

from kctl.validate.problems import Problem, join
from kctl.validate.schema import schema_problems

#: The most a ConfigMap may hold (Kubernetes' documented limit).
CONFIG_MAP_LIMIT = 1024 * 1024

_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def config_map_key_error(key: str) -> str | None:
    """Why ``key`` cannot be a ConfigMap key, or ``None``."""
    if len(key) > 253:
        return f"key {key!r} is {len(key)} characters; at most 253 are allowed"
    if not _KEY.match(key) or key in (".", ".."):
        return f"key {key!r} may hold only letters, digits, '-', '_' and '.'"
    return None


def data_size(config_map: dict) -> int:
    """Bytes a ConfigMap holds as the API server counts them: every ``data`` value (UTF-8) and
    every decoded ``binaryData`` value."""
    data, binary = config_map.get("data"), config_map.get("binaryData")
    size = 0
    for value in data.values() if isinstance(data, dict) else ():
        size += len(str(value).encode("utf-8"))
    for value in binary.values() if isinstance(binary, dict) else ():
        text = str(value)
        size += len(text) * 3 // 4 - text.count("=")
    return size


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
