"""Read mmengine config files without importing mmengine.

Two things kctl needs before it starts anything: every file a config pulls in through
``_base_`` (so the whole tree can travel, e.g. in a ConfigMap), and a few plain values
(per-GPU batch size, ``auto_scale_lr.base_batch_size``) for checks. Both are read from the
syntax tree; nothing in the config is executed.

A config can also be named inside an installed OpenMMLab package, as ``mim`` does:
``mmpretrain::resnet/resnet50_8xb32_in1k.py`` is that file of the package's own config tree
(``mmpretrain/.mim/configs``), found without importing the package (:func:`resolve_config`). Such a
config is collected like any other (its relative ``_base_`` files lie in the same tree); a
``_base_`` written ``mmpretrain::...`` in a config of your own is checked but not collected: the
trainer reads it from the package installed where it runs.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
import sys
from pathlib import Path
from typing import NamedTuple

from kctl.errors import UsageError


class _Unknown:
    """A value that cannot be known without running the config."""

    def __repr__(self):
        return "<unknown>"


UNKNOWN = _Unknown()


def _parse(path: Path) -> ast.Module:
    """The file's syntax tree; parsed once per version of the file (a command reads each file
    for its ``_base_`` files and again for its values)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise UsageError(f"config file not found: {path}") from None
    except OSError as err:
        raise UsageError(f"cannot read config {path}: {err.strerror}") from None
    return _parse_version(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _parse_version(path: Path, mtime_ns: int, size: int) -> ast.Module:
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"config file not found: {path}") from None
    except OSError as err:
        raise UsageError(f"cannot read config {path}: {err.strerror}") from None
    try:
        return ast.parse(source, filename=str(path))
    except SyntaxError as err:
        raise UsageError(f"syntax error in config {path}, line {err.lineno}: {err.msg}") from None


#: Where an installed OpenMMLab package keeps its config tree (what ``<package>::<path>`` names).
PACKAGE_CONFIGS = Path(".mim", "configs")


def resolve_config(name: str, relative_to: str | os.PathLike | None = None) -> Path:
    """The file a config name means: ``<package>::<path>`` is ``<path>`` in the installed package's
    config tree (:data:`PACKAGE_CONFIGS`), anything else a path (under ``relative_to`` if given and
    the path is relative). Only the package's folder is looked up: nothing is imported.

    Raises:
        UsageError: The package is not installed in kctl's Python, or has no such config (the
            nearest names are given).
    """
    package, sep, relative = name.partition("::")
    if not sep:
        return Path(relative_to or "", name)
    spec = importlib.util.find_spec(package) if package.isidentifier() else None
    if spec is None or not spec.submodule_search_locations:
        extra = (": it comes with the trainer's [mmpretrain] extra (see docs/mmpretrain.md)"
                 if package == "mmpretrain" else "")
        raise UsageError(f"{name}: {package} is not installed in kctl's Python "
                         f"({sys.executable}){extra}")
    configs = Path(list(spec.submodule_search_locations)[0], PACKAGE_CONFIGS)
    if (configs / relative).is_file():
        return configs / relative
    known = [p.relative_to(configs).as_posix() for p in configs.rglob("*.py")]
    import difflib  # only for the error's suggestions: keeps every dry run's start-up short

    nearest = difflib.get_close_matches(relative, known, n=3, cutoff=0.6)
    hint = f"; nearest: {', '.join(f'{package}::{n}' for n in nearest)}" if nearest else ""
    raise UsageError(f"{name}: no such config in {package}'s config tree {configs}{hint}")


def _base_paths(path: Path, tree: ast.Module, packaged: bool = True) -> list[Path]:
    """The files ``path`` inherits from, in order, as mmengine resolves them; with ``packaged``
    False, without those named ``<package>::<path>`` (which are checked all the same)."""
    bases: list[Path] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "_base_" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                raise UsageError(f"{path}, line {node.lineno}: _base_ must be a string or a list "
                                 "of strings") from None
            for item in [value] if isinstance(value, str) else list(value):
                if "::" in item:
                    base = resolve_config(item)
                    bases += [base] if packaged else []
                else:
                    bases.append((path.parent / item).resolve())
        elif isinstance(node, ast.With) and _is_read_base(node):
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom):
                    bases.append(_module_file(path, stmt))
    return bases


def _is_read_base(node: ast.With) -> bool:
    return any(isinstance(i.context_expr, ast.Call) and getattr(i.context_expr.func, "id", "")
               == "read_base" for i in node.items)


def _module_file(path: Path, stmt: ast.ImportFrom) -> Path:
    """``from .._base_.models.resnet18 import *`` inside ``read_base()`` -> the file."""
    if stmt.level == 0:
        raise UsageError(f"{path}, line {stmt.lineno}: read_base() imports from a package "
                         f"({stmt.module}); kctl ships local files only")
    folder = path.parent
    for _ in range(stmt.level - 1):
        folder = folder.parent
    return (folder / Path(*stmt.module.split("."))).with_suffix(".py").resolve()


class ConfigTree(NamedTuple):
    """A config and every file it inherits from.

    Attributes:
        root: The deepest folder holding all the files.
        main: The config's path relative to ``root``.
        files: Every file's path relative to ``root`` (``main`` first) mapped to its absolute path.
    """

    root: Path
    main: str
    files: dict[str, Path]


def collect(config: str | os.PathLike) -> ConfigTree:
    """Find ``config`` and every file it pulls in through ``_base_``, recursively (not those of an
    installed package named ``<package>::<path>``, which the trainer reads where it runs)."""
    start = Path(config).resolve()
    order: list[Path] = []
    pending = [(start, None)]
    while pending:
        path, parent = pending.pop(0)
        if path in order:
            continue
        if not path.is_file():
            where = f" (a _base_ of {parent})" if parent else ""
            raise UsageError(f"config file not found: {path}{where}")
        order.append(path)
        pending.extend((base, path) for base in _base_paths(path, _parse(path), packaged=False))
    root = Path(os.path.commonpath([p.parent for p in order]))
    files = {p.relative_to(root).as_posix(): p for p in order}
    return ConfigTree(root=root, main=start.relative_to(root).as_posix(), files=files)


def _evaluate(node: ast.AST, names: dict):
    """Evaluate literals, ``dict(...)`` calls and names bound earlier; else :data:`UNKNOWN`."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return names.get(node.id, UNKNOWN)
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_evaluate(e, names) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            return UNKNOWN
        return {_evaluate(k, names): _evaluate(v, names) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "dict" and not node.args:
        return {kw.arg: _evaluate(kw.value, names) for kw in node.keywords if kw.arg}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _evaluate(node.operand, names)
        return -value if isinstance(value, (int, float)) else UNKNOWN
    return UNKNOWN


def _merge(base, child):
    """mmengine's inheritance: dicts merge key by key unless the child says ``_delete_=True``."""
    if isinstance(base, dict) and isinstance(child, dict) and not child.get("_delete_"):
        merged = dict(base)
        for key, value in child.items():
            merged[key] = _merge(base.get(key), value)
        return merged
    if isinstance(child, dict):
        return {k: v for k, v in child.items() if k != "_delete_"}
    return child


def read_values(config: str | os.PathLike) -> dict:
    """The config's top-level variables after inheritance, as far as they can be known.

    Values computed by code come back as :data:`UNKNOWN`.
    """
    path = Path(config).resolve()
    tree = _parse(path)
    inherited: dict = {}
    for base in _base_paths(path, tree):
        inherited = _merge(inherited, read_values(base))
    own: dict = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            value = _evaluate(node.value, {**inherited, **own})
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id != "_base_":
                    own[target.id] = value
    return _merge(inherited, own)


def lookup(values: dict, dotted: str):
    """``lookup(values, 'train_dataloader.batch_size')``; ``None`` where a key is absent."""
    node = values
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node
