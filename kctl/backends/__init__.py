"""Targets a :class:`~kctl.job.Job` renders to, one module each.

A backend module ``kctl.backends.<name>`` defines ``BACKEND``, an instance of
:class:`kctl.backends.base.Backend`, and renders with one template in ``kctl/templates``.
Adding a target means adding that module and that template; nothing here changes.
"""

from __future__ import annotations

import importlib

from kctl.backends.base import Backend


def load_backend(name: str) -> Backend:
    """Import ``kctl.backends.<name>`` and return its ``BACKEND``."""
    module = importlib.import_module(f"kctl.backends.{name}")
    return module.BACKEND


def kubernetes_backends() -> list:
    """The backend of every Kubernetes kind ``kctl train`` renders, the default first
    (:data:`kctl.options.KINDS`; kind ``TrainJob`` lives in ``kctl.backends.trainjob``)."""
    from kctl.options import KINDS

    return [load_backend(kind.lower()) for kind in KINDS]
