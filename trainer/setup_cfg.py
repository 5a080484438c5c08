"""Config loading and the command-line flags applied to it, the way MMPretrain's tools/train.py does.

Nothing here imports torch or writes a file: a bad config or flag is reported before anything starts.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import os.path as osp

from trainer.errors import TrainerError, UsageError

#: Dataloader settings every dataloader gets unless its config says otherwise (as MMPretrain).
DATALOADER_DEFAULTS = dict(pin_memory=True, persistent_workers=True, collate_fn=dict(type="default_collate"))
DATALOADER_FIELDS = ("train_dataloader", "val_dataloader", "test_dataloader")
#: The package each of mmengine's optional visualization backends needs.
VIS_BACKEND_PACKAGES = {"TensorboardVisBackend": "tensorboard", "WandbVisBackend": "wandb",
                        "MLflowVisBackend": "mlflow", "ClearMLVisBackend": "clearml",
                        "NeptuneVisBackend": "neptune", "DVCLiveVisBackend": "dvclive", "AimVisBackend": "aim"}


def load_config(path: str):
    """Read an mmengine Python config (with ``_base_``); its ``custom_imports`` are not imported yet
    (see :func:`import_custom_modules`).

    Args:
        path (str): The config file.

    Returns:
        mmengine.config.Config: The config.

    Raises:
        UsageError: The file does not exist.
        TrainerError: The file (or one of its ``_base_`` files) cannot be read; a syntax error
            names the file and line.
    """
    from mmengine.config import Config

    if not osp.isfile(path):
        raise UsageError(f"config file not found: {path}")
    try:
        return Config.fromfile(path, import_custom_modules=False)
    except SyntaxError as err:
        where = _find_syntax_error(path, set()) or (path, err.lineno, err.msg)
        raise TrainerError("syntax error in config {}, line {}: {}".format(*where)) from None
    except Exception as err:  # mmengine raises many kinds (missing _base_, bad import, ...)
        message = " ".join(str(err).split())
        raise TrainerError(f"cannot load config {path}: {type(err).__name__}: {message}") from None


def _find_syntax_error(path: str, seen: set) -> tuple | None:
    """``(file, line, message)`` of the first syntax error in ``path`` or its ``_base_`` files."""
    path = osp.abspath(path)
    if path in seen or not osp.isfile(path):
        return None
    seen.add(path)
    with open(path, encoding="utf-8") as f:
        source = f.read()
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as err:
        return path, err.lineno, err.msg
    here = osp.dirname(path)
    for node in ast.walk(tree):
        bases: list = []
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_base_" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            bases = [value] if isinstance(value, str) else list(value)
        elif isinstance(node, ast.ImportFrom) and node.level:  # new-style `with read_base(): from .x import *`
            up = osp.join(here, *[".."] * (node.level - 1))
            bases = [osp.join(up, *(node.module or "").split(".")) + ".py"]
        for base in bases:
            found = _find_syntax_error(osp.join(here, base), seen)
            if found:
                return found
    return None


def import_custom_modules(cfg) -> None:
    """Import the modules named by the config's ``custom_imports`` (what ``Config.fromfile`` would do).

    Raises:
        TrainerError: A module cannot be imported.
    """
    from mmengine.utils import import_modules_from_strings

    custom = cfg.get("custom_imports", None)
    if not custom:
        return
    try:
        import_modules_from_strings(**custom)
    except ImportError as err:
        from trainer.mmpretrain_support import compiled_mmcv_error

        raise compiled_mmcv_error(err) or TrainerError(f"custom_imports: {err} (is the module on PYTHONPATH?)") \
            from None


def apply_args(cfg, args, rank: int = 0) -> None:
    """Apply the command-line flags to ``cfg`` in place, in MMPretrain's order; ``--cfg-options`` last.

    Args:
        cfg (mmengine.config.Config): The loaded config.
        args (argparse.Namespace): Parsed flags of :func:`trainer.cli.build_parser`.
        rank (int): This process' rank. Only rank 0 reads ``--resume PATH`` (the other ranks receive the
            checkpoint from it), so only there must the file exist. Defaults to 0.

    Raises:
        UsageError: A flag does not fit the config (``--auto-scale-lr`` without ``auto_scale_lr``,
            ``--amp`` with a custom optimizer wrapper, ``--resume PATH`` that does not exist,
            ``--gpu-decode`` without image files to decode).
    """
    from mmengine.config import ConfigDict

    cfg.setdefault("default_scope", "trainer")
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    cfg.launcher = args.launcher

    # work_dir is determined in this priority: CLI > segment in file > filename
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir", None) is None:
        cfg.work_dir = osp.join("./work_dirs", osp.splitext(osp.basename(args.config))[0])

    if args.resume == "auto":
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if rank == 0 and "://" not in args.resume and not osp.isfile(args.resume):
            raise UsageError(f"--resume: checkpoint not found: {args.resume}")
        cfg.resume = True
        cfg.load_from = args.resume

    if args.auto_scale_lr and isinstance(cfg.get("auto_scale_lr"), dict):
        cfg.auto_scale_lr.enable = True

    for field in DATALOADER_FIELDS:
        if cfg.get(field, None) is None:
            continue
        loader = ConfigDict(copy.deepcopy(DATALOADER_DEFAULTS))
        loader.update(cfg[field])
        if args.no_pin_memory:
            loader.pin_memory = False
        if args.no_persistent_workers:
            loader.persistent_workers = False
        cfg[field] = loader

    from trainer.performance import apply_flags as apply_speed_flags

    apply_speed_flags(cfg, args)

    if args.cfg_options:
        try:
            cfg.merge_from_dict(args.cfg_options)
        except Exception as err:
            message = " ".join(str(err).split())
            raise UsageError(f"--cfg-options: {type(err).__name__}: {message}") from None

    for field in DATALOADER_FIELDS:  # DataLoader refuses persistent_workers without workers
        if cfg.get(field, None) is not None and not cfg[field].get("num_workers", 0):
            cfg[field].persistent_workers = False

    if args.launcher != "none":
        for field in ("val_evaluator", "test_evaluator"):
            gather_over_process_group(cfg.get(field, None))

    if args.auto_scale_lr:
        scale = cfg.get("auto_scale_lr")
        if not isinstance(scale, dict) or "base_batch_size" not in scale:
            raise UsageError("--auto-scale-lr: the config has no auto_scale_lr = dict(base_batch_size=N)")
        scale.setdefault("enable", True)

    if args.amp:
        wrapper_type = cfg.get("optim_wrapper", {}).get("type", "OptimWrapper")
        if wrapper_type not in ("OptimWrapper", "AmpOptimWrapper"):
            raise UsageError(f"--amp does not support the custom optimizer wrapper type {wrapper_type!r}")


def gather_over_process_group(evaluator) -> None:
    """Make the metrics of ``evaluator`` (a metric config, a list of them, or an ``Evaluator`` config
    with ``metrics``) gather the ranks' results through the process group (``collect_device='gpu'``,
    an ``all_gather_object`` that gloo does too), unless a metric names its ``collect_device`` or
    ``collect_dir``.

    mmengine's default (``'cpu'``) passes the results through files in ``./.dist_test``, which only works
    when every rank has the same working directory on a shared filesystem: not the case for ranks on
    different nodes.
    """
    if isinstance(evaluator, dict) and "metrics" in evaluator:
        evaluator = evaluator["metrics"]
    for metric in evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]:
        if isinstance(metric, dict) and "collect_dir" not in metric:
            metric.setdefault("collect_device", "gpu")


def check_data_paths(cfg) -> None:
    """Fail early when a dataset of a dataloader used for training names a path that does not exist.

    Checks ``data_root``, ``data_prefix`` (a string or a dict of strings, under ``data_root``) and
    ``ann_file`` of the train and val datasets, looking into wrapper datasets (``dataset``/``datasets``).
    Remote paths (``scheme://``) are not checked.

    Raises:
        TrainerError: Names the config key and the missing path.
    """
    for where, dataset in loader_datasets(cfg, ("train_dataloader", "val_dataloader")):
        for key, path in _dataset_paths(dataset, where):
            if not osp.exists(path):
                raise TrainerError(f"{key}: path not found: {path}")


def loader_datasets(cfg, fields=DATALOADER_FIELDS):
    """Yield ``(config key, dataset config)`` for the dataset of each dataloader in ``fields`` and every
    dataset it wraps (``dataset=``, ``datasets=[...]``), wrapped ones first."""
    for field in fields:
        loader = cfg.get(field, None)
        if isinstance(loader, dict) and isinstance(loader.get("dataset"), dict):
            yield from _wrapped_datasets(loader["dataset"], f"{field}.dataset")


def _wrapped_datasets(dataset: dict, where: str):
    if isinstance(dataset.get("dataset"), dict):
        yield from _wrapped_datasets(dataset["dataset"], f"{where}.dataset")
    for i, inner in enumerate(dataset.get("datasets") or []):
        if isinstance(inner, dict):
            yield from _wrapped_datasets(inner, f"{where}.datasets.{i}")
    yield where, dataset


def _dataset_paths(dataset: dict, where: str):
    """Yield ``(config key, local path)`` pairs that ``dataset`` itself (not a wrapped one) will read."""
    root = dataset.get("data_root")
    root = root if isinstance(root, str) else ""
    remote_root = "://" in root
    if root and not remote_root:
        yield f"{where}.data_root", root
    prefix = dataset.get("data_prefix")
    paths = [(f"{where}.data_prefix" + (f".{name}" if name else ""), value)
             for name, value in (prefix.items() if isinstance(prefix, dict) else [(None, prefix)])]
    paths.append((f"{where}.ann_file", dataset.get("ann_file")))
    for key, value in paths:
        if not isinstance(value, str) or not value or "://" in value:
            continue
        if remote_root and not osp.isabs(value):  # lies under a remote data_root
            continue
        yield key, osp.join(root, value)


def check_vis_backends(cfg) -> None:
    """Fail early when ``visualizer.vis_backends`` names a backend whose package is not installed
    (mmengine would fail only when it first logs, after creating ``work_dir``).

    Raises:
        TrainerError: Names the backend and the package to install.
    """
    visualizer = cfg.get("visualizer", None)
    backends = (visualizer.get("vis_backends") or []) if isinstance(visualizer, dict) else []
    for backend in backends:
        name = str(backend.get("type", "")).rpartition(".")[2] if isinstance(backend, dict) else ""
        package = VIS_BACKEND_PACKAGES.get(name)
        if package and importlib.util.find_spec(package) is None:
            raise TrainerError(f"visualizer: {name} needs the {package} package: pip install {package} "
                               "(or remove it from vis_backends)")
