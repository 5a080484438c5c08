"""One thing wrong in a manifest, and the path notation every check uses."""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True, order=True)
class Problem:
    """A finding inside one object.

    Args:
        path: Where, in kubectl's notation (``spec.pytorchReplicaSpecs.Master.replicas``,
            ``...containers[0].name``, ``metadata.labels[app.kubernetes.io/name]``); ``""`` for
            the object as a whole.
        message: What is wrong, starting lower-case, without a final full stop.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def join(path: str, key: str | int) -> str:
    """``path`` extended by a list index or a map key (bracketed unless it is a plain word)."""
    if isinstance(key, int) or not _WORD.match(key):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def join_all(path: str, keys) -> str:
    for key in keys:
        path = join(path, key)
    return path
