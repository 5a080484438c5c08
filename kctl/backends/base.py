"""The seam every target implements, after TorchX's schedulers.

``render`` turns a job into a :class:`DryRun` whose text is exactly what would run or be applied;
``submit`` applies a dry run (render + submit = run). Nothing here imports torch, mmengine or
kubernetes.
"""

from __future__ import annotations

import json
import os
import shlex
from typing import Any, Callable

import jinja2

from kctl.job import Job

#: Where compiled templates are kept between runs (like ``__pycache__``), so a command does not
#: parse and compile its template every time: ``$XDG_CACHE_HOME/kctl/templates``, by default
#: ``~/.cache/kctl/templates``. ``KCTL_CACHE_DIR`` names another folder; an empty value turns
#: the cache off.
CACHE_ENV = "KCTL_CACHE_DIR"


class DryRun:
    """What a backend would do, without doing it.

    Args:
        backend: The backend's name.
        text: The manifest, script or command line, exactly as it would be applied or run.
        request: The same in structured form (argv list, manifest dicts, ...), for ``submit``.
            Defaults to None.
        warnings: What the user should know before it runs. Defaults to none.
        parse: Instead of ``request``: a function of ``text`` that makes it, called on the first
            use of :attr:`request` (a dry run that only prints never pays for it).
            Defaults to None.
    """

    def __init__(self, backend: str, text: str, request: Any = None,
                 warnings: list[str] | None = None,
                 parse: Callable[[str], Any] | None = None) -> None:
        self.backend = backend
        self.text = text
        self.warnings = list(warnings or [])
        self._request = request
        self._parse = parse

    @property
    def request(self) -> Any:
        if self._parse is not None:
            self._request, self._parse = self._parse(self.text), None
        return self._request

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"DryRun(backend={self.backend!r}, text={self.text!r})"


class Backend:
    """A target. Subclasses set ``name`` and ``template`` and implement :meth:`render` and
    :meth:`submit`. Targets that run jobs a cluster keeps (Kubernetes kinds,
    :class:`kctl.backends.kubernetes.KubernetesBackend`) also describe, list, stream the logs of
    and cancel them.
    """

    name: str = ""
    template: str = ""

    def render(self, job: Job, **options: Any) -> DryRun:
        raise NotImplementedError

    def submit(self, dryrun: DryRun) -> Any:
        raise NotImplementedError(f"the {self.name} backend cannot submit")


def cache_dir() -> str | None:
    """The folder for compiled templates (see :data:`CACHE_ENV`), or None when turned off."""
    if CACHE_ENV in os.environ:
        return os.environ[CACHE_ENV] or None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "kctl", "templates")


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Jinja2's file cache, keyed by template name and source checksum (an edited template is
    compiled again); None where the folder cannot be made, so rendering never fails on it."""
    directory = cache_dir()
    if directory is None:
        return None
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError:
        return None
    return _QuietCache(directory)


class _QuietCache(jinja2.FileSystemBytecodeCache):
    """A cache that cannot be written is a slower render, not an error."""

    def dump_bytecode(self, bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass


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
            bytecode_cache=_bytecode_cache(),
        )
        _ENV.filters["shquote"] = lambda value: shlex.quote(str(value))
        _ENV.filters["shjoin"] = lambda values: " ".join(shlex.quote(str(v)) for v in values)
        # JSON is valid YAML: a safe way to put any string or list into a YAML manifest.
        _ENV.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False)
    return _ENV


def render_template(name: str, **context: Any) -> str:
    """Render ``kctl/templates/<name>`` with StrictUndefined: a missing variable is an error."""
    return _environment().get_template(name).render(**context)
