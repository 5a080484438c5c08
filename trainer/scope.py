"""Configs of any registry scope: the trainer's runtime in them, exact resume, and types no registry has.

mmengine looks a ``type`` up in the registry of the config's ``default_scope`` and then in mmengine's
own (the parent), never in a sibling scope. In a config of another library (``default_scope =
'mmpretrain'``) ``Runner``, ``EpochBasedTrainLoop``, ``CheckpointHook`` and ``Visualizer`` would silently
be mmengine's instead of the trainer's, and the hooks and optimizer wrapper the trainer adds
(``FinalWeightsHook``, ``CpuBf16OptimWrapper`` ...) would not be found at all. :func:`adapt_to_scope`,
called once the config is complete and before anything is built:

- makes mmengine find the trainer's runtime parts from any scope (:func:`qualify_runtime_types`);
- gives configs of other scopes the trainer's exact resume (:func:`make_resume_exact`);
- checks that every ``type`` is in some registry (:func:`check_types`): one line naming the type and
  the scopes searched, before ``work_dir`` exists. A pure-Python config that gives another library's
  types as classes (MMPretrain's ``mmpretrain/configs``) is refused the same way: the trainer cannot
  put its runtime parts into it.
"""

from __future__ import annotations

import importlib

from trainer.errors import UsageError
from trainer.registry import (DATA_SAMPLERS, DATASETS, HOOKS, LOOPS, OPTIM_WRAPPERS, RUNNERS, SCOPE,
                              VISUALIZERS)

#: mmengine's own scope: the parent of every other one.
ROOT_SCOPE = "mmengine"


def adapt_to_scope(cfg) -> None:
    """Prepare a complete config (flags applied, runtime hooks added) for the Runner, whatever its scope.

    Raises:
        UsageError: A ``type`` is in no registry, or a dataset would download (see
            :func:`trainer.mmpretrain_support.check_downloads`).
    """
    from trainer.mmpretrain_support import check_downloads

    scope = cfg.get("default_scope") or SCOPE
    scope_registry_module(scope)  # its registries join mmengine's tree
    if scope == "mmpretrain":
        importlib.import_module("trainer.visualization.universal")  # its UniversalVisualizer, figure made lazily
    qualify_runtime_types(cfg, scope)
    make_resume_exact(cfg, scope)
    check_types(cfg, scope)
    check_downloads(cfg, scope)


def scope_registry_module(scope: str):
    """``<scope>.registry``, the module of an OpenMMLab package's registries, imported; None if there is
    none (a scope whose registries a ``custom_imports`` module creates)."""
    try:
        return importlib.import_module(f"{scope}.registry")
    except ImportError:
        return None


def registry_of(registry, scope: str):
    """The registry a config of ``scope`` looks types of ``registry``'s kind up in: ``registry``'s sibling
    of that scope (mmengine's root registry where the scope has none of that kind)."""
    root = registry
    while root.parent is not None:
        root = root.parent
    return root if scope == ROOT_SCOPE else root.children.get(scope, root)


def resolve(registry, scope: str, spec: dict):
    """The class (or function) the config dict ``spec`` will be built from, or None if unknown; its
    ``_scope_`` wins over ``scope``."""
    kind = spec.get("type")
    if not isinstance(kind, str):
        return kind
    return registry_of(registry, spec.get("_scope_") or scope).get(kind)


# ---- the runtime's parts -------------------------------------------------------------------------------------

def _runtime_slots(cfg) -> list[tuple[dict, str, object]]:
    """``(dict, key, trainer registry)`` of every place where a config names a part of the runtime."""
    slots = [(cfg, "runner_type", RUNNERS)]
    for field, registry in (("train_cfg", LOOPS), ("optim_wrapper", OPTIM_WRAPPERS), ("visualizer", VISUALIZERS)):
        if isinstance(cfg.get(field), dict):
            slots.append((cfg[field], "type", registry))
    hooks = list((cfg.get("default_hooks") or {}).values()) + list(cfg.get("custom_hooks") or [])
    slots += [(hook, "type", HOOKS) for hook in hooks if isinstance(hook, dict)]
    loader = cfg.get("train_dataloader")
    if isinstance(loader, dict) and isinstance(loader.get("sampler"), dict):
        slots.append((loader["sampler"], "type", DATA_SAMPLERS))
    return [(holder, key, registry) for holder, key, registry in slots if isinstance(holder.get(key), str)]


def qualify_runtime_types(cfg, scope: str) -> None:
    """Name the trainer's runtime parts ``trainer.<Name>`` in a config of another scope.

    A type of the runner, train loop, hooks, optimizer wrapper, visualizer or train sampler that the
    trainer registers is qualified when the config's scope has none of that name (``FinalWeightsHook``) or
    only one the trainer's subclasses (``CheckpointHook``, which would otherwise be mmengine's). A type
    the scope implements itself in another way stays the scope's.
    """
    if scope == SCOPE:
        return
    for holder, key, registry in _runtime_slots(cfg):
        name = holder[key]
        ours = registry.module_dict.get(name)
        if ours is None or "." in name:
            continue
        theirs = registry_of(registry, scope).get(name)
        if theirs is None or (isinstance(theirs, type) and issubclass(ours, theirs)):
            holder[key] = f"{SCOPE}.{name}"


def make_resume_exact(cfg, scope: str) -> None:
    """Give the train dataloader of a config of another scope what exact resume needs.

    - mmengine's ``DefaultSampler`` becomes :class:`trainer.datasets.ResumableSampler` (same arguments,
      same order), which can start an epoch part-way and hands every index on with its seed and epoch;
    - the pipeline of a dataset that is not one of the trainer's starts with
      :class:`trainer.datasets.transforms.SeedSampleRandomness`: its random transforms draw from the
      global generators, which that step seeds from (seed, epoch, sample).

    Other samplers, and datasets wrapped in another (``RepeatDataset`` ...), stay as they are: a run
    stopped mid-epoch then restarts that epoch (:meth:`trainer.loops.EpochBasedTrainLoop.mid_epoch_problem`).
    """
    from mmengine.dataset import DefaultSampler

    from trainer.datasets import BaseDataset

    loader = cfg.get("train_dataloader")
    if scope == SCOPE or not isinstance(loader, dict):
        return
    sampler, dataset = loader.get("sampler"), loader.get("dataset")
    if isinstance(sampler, dict) and resolve(DATA_SAMPLERS, scope, sampler) is DefaultSampler:
        sampler["type"] = f"{SCOPE}.ResumableSampler"
        sampler.pop("_scope_", None)
    if isinstance(dataset, dict) and isinstance(dataset.get("pipeline"), list):
        built = resolve(DATASETS, scope, dataset)
        if not (isinstance(built, type) and issubclass(built, BaseDataset)):
            dataset["pipeline"] = [dict(type=f"{SCOPE}.SeedSampleRandomness"), *dataset["pipeline"]]


# ---- types no registry has -----------------------------------------------------------------------------------

#: Packages whose classes a pure-Python config (``with read_base():``, types given as classes) may name:
#: the trainer can put its runtime in such a config only where its types are names.
CLASS_TYPES_FROM = ("trainer", "mmengine", "torch")


def _types(node, where: str, scope: str):
    """``(config key, type, scope)`` of every ``type`` in ``node`` (a name, or a class in a pure-Python
    config); a dict's ``_scope_`` is the scope of its type and of the types inside it."""
    if isinstance(node, dict):
        scope = node.get("_scope_") or scope
        if node.get("type") is not None:
            yield f"{where}.type", node["type"], scope
        for key, value in node.items():
            yield from _types(value, f"{where}.{key}" if where else str(key), scope)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _types(value, f"{where}.{index}", scope)


def _registries(scope: str) -> list:
    """Every registry a config of ``scope`` finds types in: mmengine's root registries as seen from the
    scope, and the roots the scope's package defines of its own (MMPretrain's ``BATCH_AUGMENTS``)."""
    from mmengine import registry as mmengine_registry
    from mmengine.registry import Registry

    modules = [mmengine_registry, scope_registry_module(scope) if scope != ROOT_SCOPE else None]
    found = []
    for module in filter(None, modules):
        for value in vars(module).values():
            if isinstance(value, Registry) and value.parent is None:
                found.append(registry_of(value, scope))
    return found


def _scopes_having(name: str, registries: list) -> list[str]:
    """The scopes (other than those searched) whose registries of these kinds have ``name``."""
    roots = {id(r): r for r in (registry_of(r, ROOT_SCOPE) for r in registries)}
    return sorted({scope for root in roots.values() for scope, child in root.children.items()
                   if name in child.module_dict})


def check_types(cfg, scope: str) -> None:
    """Fail when a ``type`` of the config is in no registry of its scope or of mmengine's.

    The message names the type, where the config has it and the scopes searched, and what to do where
    that is known: a type only mmcv's compiled ops register (:func:`trainer.mmpretrain_support.mmcv_op_source`),
    or one another scope has (``type='<scope>.<Name>'``).

    Raises:
        UsageError: The first type no registry has.
    """
    from trainer.mmpretrain_support import mmcv_op_source

    cache: dict[str, list] = {}
    for where, name, type_scope in _types(dict(cfg.items()), "", scope):
        if not isinstance(name, str):
            package = getattr(name, "__module__", "").partition(".")[0]
            if package not in CLASS_TYPES_FROM:
                raise UsageError(f"{where}: {getattr(name, '__name__', name)} is given as a class of {package}: "
                                 f"pure-Python configs of {package} (types as classes) are not supported; use a "
                                 f"config of its tree, whose types are names ({package}::FAMILY/NAME.py)")
            continue
        registries = cache.get(type_scope) or cache.setdefault(type_scope, _registries(type_scope))
        if any(registry.get(name) is not None for registry in registries):
            continue
        prefix, dot, bare = name.rpartition(".")
        searched = [prefix] if dot else list(dict.fromkeys([type_scope, ROOT_SCOPE]))
        message = f"{where}: type {name!r} is in no registry (scopes searched: {', '.join(searched)})"
        source = mmcv_op_source(bare)
        if source:
            message += (f"; it is one of mmcv's compiled ops ({source}), which the mmcv-lite of the "
                        "[mmpretrain] extra does not have: ops that need compiled mmcv are not supported")
        elif not dot:
            others = [s for s in _scopes_having(bare, registries) if s not in searched]
            if others:
                message += "; " + ", ".join(f"scope {s} has it: type='{s}.{bare}'" for s in others)
        raise UsageError(message)
