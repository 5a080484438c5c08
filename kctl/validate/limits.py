"""Rules the API server applies to single values, used twice: by the backends while they build
objects from the user's flags (a bad value is a usage error naming the flag) and by the validators
(a bad value is a problem at its path). Plain ``re`` only: the render path imports this.
"""

from __future__ import annotations

import re

#: Kubernetes' quantity syntax (``500m``, ``2``, ``8Gi``), as the CRD writes it.
QUANTITY_PATTERN = (r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
                    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$")

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
