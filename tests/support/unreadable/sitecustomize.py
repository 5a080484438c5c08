"""A folder a Python process must not read, for tests of nodes that share no storage.

A process started with this folder first on ``PYTHONPATH`` and ``TEST_UNREADABLE=DIR`` in its
environment (its children inherit both) fails with PermissionError when it opens a file under DIR
or lists a folder there (Python's audit events ``open``, ``os.listdir``, ``os.scandir``): on one
machine, how a node without shared storage sees another node's work_dir. Python imports
``sitecustomize`` at start-up, from the first folder on ``sys.path`` that has one.
"""

import os
import sys

_FORBIDDEN = os.environ.get("TEST_UNREADABLE")


def _refuse(event: str, args: tuple) -> None:
    if event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.path.realpath(os.fsdecode(args[0]))
        if (path + os.sep).startswith(os.path.realpath(_FORBIDDEN) + os.sep):
            raise PermissionError(f"{event} {path}: this process may not read {_FORBIDDEN} (TEST_UNREADABLE)")


if _FORBIDDEN:
    sys.addaudithook(_refuse)
