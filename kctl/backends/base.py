"""The seam every target implements, after TorchX's schedulers.

``render`` turns a job into a :class:`DryRun` whose text is exactly what would run or be applied;
``submit`` is render + apply. Nothing here imports torch, mmengine or kubernetes.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

import jinja2

from kctl.job import Job


@dataclass
class DryRun:
    """What a backend would do, without doing it.

    Args:
        backend: The backend's name.
        text: The manifest, script or command line, exactly as it would be applied or run.
        request: The same in structured form (argv list, manifest dicts, ...), for ``submit``.
    """

    backend: str
    text: str
    request: Any = None
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return self.text


class Backend:
    """A target. Subclasses set ``name``, ``template`` and ``capabilities`` and implement
    :meth:`render`; those that can start work implement :meth:`submit`.

    Capabilities are plain words a caller (or a test) can check, e.g. ``"multi_node"``, ``"gpu"``,
    ``"cpu"``, ``"submit"``, ``"status"``, ``"logs"``, ``"delete"``, ``"list"``.
    """

    name: str = ""
    template: str = ""
    capabilities: frozenset[str] = frozenset()

    def render(self, job: Job, **options: Any) -> DryRun:
        raise NotImplementedError

    def submit(self, dryrun: DryRun) -> Any:
        raise NotImplementedError(f"the {self.name} backend cannot submit")


_ENV = None


def _environment() -> jinja2.Environment:
    global _ENV
    if _ENV is None:
        _ENV = jinja2.Environment(
            loader=jinja2.PackageLoader("kctl", "templates"),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,
        )
        _ENV.filters["shquote"] = lambda value: shlex.quote(str(value))
        _ENV.filters["shjoin"] = lambda values: " ".join(shlex.quote(str(v)) for v in values)
        # JSON is valid YAML: a safe way to put any string or list into a YAML manifest.
        _ENV.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False)
    return _ENV


def render_template(name: str, **context: Any) -> str:
    """Render ``kctl/templates/<name>`` with StrictUndefined: a missing variable is an error."""
    return _environment().get_template(name).render(**context)
