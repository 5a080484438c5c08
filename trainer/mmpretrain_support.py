"""MMPretrain as the trainer's model zoo: naming its configs, checking its stack, and data that would download.

- ``mmpretrain::resnet/resnet50_8xb32_in1k.py`` (mim's convention) names a config of the installed
  package's own tree, ``mmpretrain/.mim/configs`` (:func:`config_file`); the package is found without
  being imported.
- A config of another scope needs that scope's package: MMPretrain's comes with the ``[mmpretrain]``
  extra (:func:`check_installed`, before torch is imported). MMPretrain imports torchvision, which must
  load beside the installed torch (:func:`check_torchvision`).
- mmcv-lite has no compiled ops: a type only they register is named as such
  (:func:`mmcv_op_source`, :func:`compiled_mmcv_error`).
- MMPretrain's datasets that can download (``CIFAR10``, ``MNIST`` ...) never do: missing files are
  reported with where to put them (:func:`check_downloads`).

Every problem is a :class:`trainer.errors.UsageError` (one line, exit 2) raised before ``work_dir`` exists.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import inspect
import os
import os.path as osp
import warnings

from trainer.errors import UsageError

#: The trainer's optional extra that installs MMPretrain, and where its installation is described.
EXTRA = "the trainer's [mmpretrain] extra (see docs/mmpretrain.md)"
#: Where an installed OpenMMLab package keeps its config tree (what ``mim`` and ``pkg::`` names use).
CONFIG_TREE = osp.join(".mim", "configs")
#: What a package needs besides itself and its own requirements, as (module, how to install it).
NEEDS = {"mmpretrain": (("mmcv", "install mmcv-lite: pip install --no-deps -c constraints.txt mmcv-lite"),
                        ("torchvision", "install the torchvision built for your torch"))}

# What a correct install of the extra says on stderr in every process, and need not:
# mmcv-lite has no compiled ops (one that a config uses is reported: trainer.scope.check_types) ...
warnings.filterwarnings("ignore", message=r"Fail to import ``MultiScaleDeformableAttention``")
# ... and mmengine 0.10.7 resolves `pkg::` _base_ names with pkg_resources, which setuptools < 81 still has.
warnings.filterwarnings("ignore", message=r"pkg_resources is deprecated as an API")


def package_folder(package: str) -> str | None:
    """The folder of the installed top-level ``package``, found without importing it; None if absent."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec else []
    return locations[0] if locations else None


def not_installed(package: str) -> str:
    """Why ``package`` is missing and how to get it."""
    if package == "mmpretrain":
        return f"MMPretrain is not installed: it comes with {EXTRA}"
    return f"the package {package} is not installed here"


def config_file(name: str) -> str:
    """The file a config name means: ``<package>::<path>`` is ``<path>`` in the installed package's config
    tree; anything else is a file path. The ``_base_`` files a config names that way are checked too.

    Raises:
        UsageError: The package is not installed, or has no such config (the nearest names are given).
    """
    package, sep, relative = name.partition("::")
    if not sep:
        for base in package_bases(name):
            config_file(base)
        return name
    folder = package_folder(package)
    if folder is None:
        raise UsageError(f"{name}: {not_installed(package)}")
    configs = osp.join(folder, CONFIG_TREE)
    path = osp.join(configs, relative)
    if osp.isfile(path):
        return path
    known = [osp.relpath(osp.join(d, f), configs) for d, _, files in os.walk(configs) for f in files
             if f.endswith(".py")]
    nearest = difflib.get_close_matches(relative, known, n=3, cutoff=0.6)
    hint = f"; nearest: {', '.join(f'{package}::{n}' for n in nearest)}" if nearest else ""
    raise UsageError(f"{name}: no such config in {package}'s config tree {configs}{hint}")


def package_bases(path: str) -> list[str]:
    """The ``<package>::<path>`` entries of the ``_base_`` of the config file ``path`` (read, not run)."""
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return []  # load_config reports it
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_base_" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return []
            items = [value] if isinstance(value, str) else list(value)
            return [item for item in items if isinstance(item, str) and "::" in item]
    return []


def check_installed(cfg) -> None:
    """Fail when the config's ``default_scope`` names a package that is not installed, or one of what that
    package needs (MMPretrain: mmcv, torchvision).

    Raises:
        UsageError: Names the package and how to install it.
    """
    from mmengine.config.utils import MODULE2PACKAGE  # OpenMMLab's scopes and their distributions

    scope = cfg.get("default_scope")
    if scope not in MODULE2PACKAGE:
        return  # the trainer's, or one that a custom_imports module creates
    if package_folder(scope) is None:
        raise UsageError(f"default_scope={scope!r}: {not_installed(scope)}")
    for module, how in NEEDS.get(scope, ()):
        if package_folder(module) is None:
            raise UsageError(f"default_scope={scope!r}: {scope} needs {module}, which is not installed: {how} "
                             "(see docs/mmpretrain.md)")


def check_torchvision() -> None:
    """Fail when torchvision is installed but cannot be imported beside the installed torch.

    PyPI's torchvision wheels are CUDA builds: beside a CPU-only torch, ``import torchvision`` raises, and
    mmengine, which imports it to log the environment, would stop every run with a traceback.

    Raises:
        UsageError: Names both versions and the way out.
    """
    if package_folder("torchvision") is None:
        return
    try:
        import torchvision  # noqa: F401
    except Exception as err:  # RuntimeError: operator torchvision::nms does not exist, ImportError ...
        import torch

        from trainer.checkpoint import one_line

        try:
            from importlib.metadata import version

            installed = f"torchvision {version('torchvision')}"
        except Exception:
            installed = "torchvision"
        raise UsageError(
            f"{installed} cannot be imported beside torch {torch.__version__} ({one_line(err)}): install the "
            "torchvision built for this torch (PyPI's are CUDA builds, which need a CUDA build of torch), or "
            "uninstall torchvision if no config needs it") from None


# ---- mmcv's compiled ops -------------------------------------------------------------------------------------

def mmcv_op_source(name: str) -> str | None:
    """``mmcv/ops/<file>.py`` if mmcv's ops register a type called ``name`` (read from the sources, which
    cannot be imported without mmcv's compiled extension); else None."""
    folder = package_folder("mmcv")
    ops = osp.join(folder, "ops") if folder else None
    if not ops or not osp.isdir(ops):
        return None
    for filename in sorted(os.listdir(ops)):
        if filename.endswith(".py") and name in _registered_names(osp.join(ops, filename)):
            return f"mmcv/ops/{filename}"
    return None


def _registered_names(path: str) -> set[str]:
    """Names registered in ``path`` by ``register_module(...)``: its ``name`` argument, else the class."""
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return set()
    names = set()
    for node in ast.walk(tree):
        calls = [d for d in getattr(node, "decorator_list", []) if isinstance(d, ast.Call)]
        if isinstance(node, ast.Call):
            calls.append(node)
        for call in calls:
            if getattr(call.func, "attr", None) != "register_module":
                continue
            values = list(call.args[:1]) + [k.value for k in call.keywords if k.arg == "name"]
            named = [v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
            names.update(named or ([node.name] if isinstance(node, ast.ClassDef) else []))
    return names


def compiled_mmcv_error(err: BaseException) -> UsageError | None:
    """The error to report for an import that failed (``err`` or what it was raised from) because mmcv has
    no compiled extension; None for another failure."""
    while err is not None:
        if isinstance(err, ImportError) and err.name == "mmcv._ext":
            return UsageError("an import needs mmcv's compiled ops (mmcv._ext: mmcv.ops), which the mmcv-lite of "
                              "the [mmpretrain] extra does not have: ops that need compiled mmcv are not supported")
        err = err.__cause__ or err.__context__
    return None


# ---- datasets that would download ----------------------------------------------------------------------------

def check_downloads(cfg, scope: str) -> None:
    """Make the datasets that can download (a ``download`` argument: MMPretrain's ``CIFAR10``,
    ``MNIST`` ...) never do so, and fail when the files they would fetch are missing.

    Raises:
        UsageError: Names the dataset, the folder and the files to put there.
    """
    from trainer.registry import DATASETS
    from trainer.scope import resolve

    for field in ("train_dataloader", "val_dataloader", "test_dataloader"):
        loader = cfg.get(field)
        dataset = loader.get("dataset") if isinstance(loader, dict) else None
        if not isinstance(dataset, dict):
            continue
        built = resolve(DATASETS, scope, dataset)
        if not (inspect.isclass(built) and "download" in inspect.signature(built.__init__).parameters):
            continue
        dataset["download"] = False
        prefix = dataset.get("data_prefix") if isinstance(dataset.get("data_prefix"), str) else ""
        folder = osp.join(dataset.get("data_root") or "", prefix, getattr(built, "base_folder", ""))
        names = [entry[0] for entry in getattr(built, "train_list", []) + getattr(built, "test_list", [])]
        names = [n[:-3] if n.endswith(".gz") else n for n in names]  # kept extracted
        names += [built.meta["filename"]] if isinstance(getattr(built, "meta", None), dict) else []
        missing = [n for n in names if not osp.exists(osp.join(folder, n))]
        if missing:
            source = getattr(built, "url", None) or getattr(built, "url_prefix", None)
            raise UsageError(
                f"{field}.dataset: {built.__name__} is missing {', '.join(missing)} in {folder or '.'}; the "
                f"trainer never downloads: put {', '.join(names)} there" + (f" (from {source})" if source else ""))
