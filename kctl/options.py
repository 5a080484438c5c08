"""The options of a Kubernetes training job, each declared once.

A row of :data:`OPTIONS` names the Python name backends read (``work_dir_pvc``), from which the
``kctl train`` flag (``--work-dir-pvc``) and the Helm chart's value (``workDirPvc``) are derived;
how a value is parsed and checked; the help text; the default; and the kinds that take it, with the
reason the other kinds do not. ``kctl train``'s flags (:func:`add_arguments`), the check that every
flag given fits the chosen kind (:func:`settings`), each backend's :meth:`options` and the chart's
tests are all made from this table, so adding an option is adding a row (and using it in the
templates).
"""

from __future__ import annotations

import copy
import re
from pathlib import PurePosixPath
from typing import Any, Callable, NamedTuple

from kctl import __version__
from kctl.errors import UsageError
from kctl.validate.limits import QUANTITY_PATTERN
from kctl.validate.names import dns1123_subdomain_error, key_error, label_value_error

#: The Kubernetes kinds ``kctl train`` renders, the default first.
KINDS = ("PyTorchJob", "TrainJob")

#: The trainer image (Dockerfile in the repository root); its tag follows kctl's version.
DEFAULT_IMAGE = f"ghcr.io/kctl-dev/kctl-trainer:{__version__}"

#: Size limit of the memory-backed ``/dev/shm`` (DataLoader workers pass batches through it;
#: a limit, not a reservation: only what is used counts against the pod's memory).
DEFAULT_SHM_SIZE = "8Gi"

#: Failures a PyTorchJob survives before it is marked Failed (``--max-restarts``).
DEFAULT_MAX_RESTARTS = 3

#: Size of the work-dir claim kctl creates when no ``--work-dir-pvc`` is given: a few checkpoints
#: of a large model (a ResNet-50 checkpoint with its optimizer state is ~200 MB) and the logs.
DEFAULT_WORK_DIR_SIZE = "20Gi"

#: What the training operators set in every trainer container: a user's value would be ignored
#: (PyTorchJob: the operator's come last) or refused (TrainJob's webhook reserves ``PET_*``).
RESERVED_ENV = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK")
RESERVED_ENV_PREFIX = "PET_"

#: The taint effects a toleration can name (kubectl taint's syntax).
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

#: The ClusterTrainingRuntime Kubeflow Trainer installs for PyTorch (``--runtime``).
DEFAULT_RUNTIME = "torch-distributed"
RUNTIME_KINDS = ("ClusterTrainingRuntime", "TrainingRuntime")


class DataVolume(NamedTuple):
    """A PersistentVolumeClaim mounted read-only, from ``--data-pvc CLAIM:MOUNT``."""

    claim: str
    mount: str


def _text(value: str, flag: str) -> str:
    if not value.strip():
        raise UsageError(f"{flag} must not be empty")
    return value


def _count(least: int) -> Callable[[Any, str], int]:
    def parse(value, flag: str) -> int:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise UsageError(f"{flag} must be a whole number, got {value!r}") from None
        if number < least:
            raise UsageError(f"{flag} must be at least {least}, got {number}" if least else
                             f"{flag} must not be negative, got {number}")
        return number
    return parse


def _quantity(value: str, flag: str) -> str:
    if not re.match(QUANTITY_PATTERN, value) or value[0] in "+-":
        raise UsageError(f"{flag} must be a Kubernetes quantity such as 4, 500m or 16Gi, "
                         f"got {value!r}")
    return value


def _object_name(value: str, flag: str) -> str:
    error = dns1123_subdomain_error(value)
    if error:
        raise UsageError(f"{flag}: {error}")
    return value


def _queue(value: str, flag: str) -> str:
    error = dns1123_subdomain_error(value) or label_value_error(value)
    if error:
        raise UsageError(f"{flag}: {error}")
    return value


def _image(value: str, flag: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise UsageError(f"{flag} must be an image reference without spaces, got {value!r}")
    return value


def _data_volume(value: str, flag: str) -> DataVolume:
    claim, sep, mount = value.partition(":")
    if not sep or not claim or not mount:
        raise UsageError(f"{flag} must be CLAIM:MOUNT (e.g. imagenet:/data), got {value!r}")
    _object_name(claim, flag)
    path = PurePosixPath(mount)
    if not path.is_absolute() or ".." in path.parts or path == PurePosixPath("/"):
        raise UsageError(f"{flag} mount path must be an absolute folder other than /, "
                         f"got {mount!r}")
    return DataVolume(claim=claim, mount=mount)


def _size_or_zero(value: str, flag: str) -> str | None:
    """A quantity, or ``0`` for none (``None``)."""
    return None if str(value) == "0" else _quantity(str(value), flag)


def _pair(value: str, flag: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise UsageError(f"{flag} must be KEY=VALUE, got {value!r}")
    return key, val


def _label(value: str, flag: str) -> tuple[str, str]:
    key, val = _pair(value, flag)
    error = key_error(key) or label_value_error(val)
    if error:
        raise UsageError(f"{flag} {value}: {error}")
    return key, val


def _annotation(value: str, flag: str) -> tuple[str, str]:
    key, val = _pair(value, flag)
    error = key_error(key)
    if error:
        raise UsageError(f"{flag} {value}: {error}")
    return key, val


#: Environment variable names Kubernetes accepts (compiled on first use: most jobs set none).
_ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"


def _env(value: str, flag: str) -> tuple[str, str]:
    key, val = _pair(value, flag)
    if not re.match(_ENV_NAME, key):
        raise UsageError(f"{flag} {value}: {key!r} is not a valid environment variable name "
                         "(letters, digits, '_', '-', '.', not starting with a digit)")
    if key.startswith(RESERVED_ENV_PREFIX) or key in RESERVED_ENV:
        raise UsageError(f"{flag} {value}: {key} is set by the training operator for torchrun "
                         f"(PET_* and {', '.join(RESERVED_ENV)} are reserved)")
    return key, val


def _toleration(value: str, flag: str) -> dict:
    """kubectl taint's ``KEY[=VALUE]:EFFECT`` as the toleration of that taint."""
    taint, sep, effect = value.rpartition(":")
    key, has_value, val = taint.partition("=")
    if not sep or not key or effect not in TAINT_EFFECTS:
        raise UsageError(f"{flag} must be KEY[=VALUE]:EFFECT with EFFECT "
                         f"{', '.join(TAINT_EFFECTS)} (kubectl taint's syntax), got {value!r}")
    error = key_error(key) or (label_value_error(val) if has_value else None)
    if error:
        raise UsageError(f"{flag} {value}: {error}")
    if has_value:
        return {"key": key, "operator": "Equal", "value": val, "effect": effect}
    return {"key": key, "operator": "Exists", "effect": effect}


def _choice(*allowed: str) -> Callable[[str, str], str]:
    def parse(value: str, flag: str) -> str:
        if value not in allowed:
            raise UsageError(f"{flag} must be {' or '.join(allowed)}, got {value!r}")
        return value
    return parse


class Option(NamedTuple):
    """One option of a Kubernetes job (see the module docstring).

    Args:
        name: The Python name (``work_dir_pvc``): backends read ``settings.<name>``.
        help: One line for ``kctl train --help``.
        parse: ``(value, flag) -> value``; raises :class:`~kctl.errors.UsageError` naming the
            flag. Defaults to a non-empty string.
        default: The value when the flag is not given.
        metavar: The value's name in the help.
        kinds: The kinds that take it. Defaults to every kind.
        refusal: Why the other kinds do not take it (``--gang does not apply to a TrainJob: ...``).
        switch: A flag without a value (``--gang``).
        repeat: The flag may be given several times (kubectl's ``--label a=1 --label b=2``);
            the value is the list of parsed items, or a map when ``default`` is one (the items
            are then ``(key, value)`` pairs; a repeated key keeps its last value).
        required: The flag must be given.
        chart: The Helm chart's value name; ``None`` derives it (``workDirPvc``).
    """

    name: str
    help: str
    parse: Callable[[Any, str], Any] = _text
    default: Any = None
    metavar: str | None = None
    kinds: tuple[str, ...] = KINDS
    refusal: str = ""
    switch: bool = False
    repeat: bool = False
    required: bool = False
    chart: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def value(self) -> str:
        """The chart's value name: ``chart``, else the name in camelCase."""
        if self.chart is not None:
            return self.chart
        head, *rest = self.name.split("_")
        return head + "".join(word.capitalize() for word in rest)


#: Every option, in the order ``kctl train --help`` shows them.
OPTIONS = (
    Option("gpus", "GPUs per node, one process each; 0 trains on CPUs with gloo",
           _count(0), metavar="G", required=True),
    Option("nodes", "nodes (pods); PyTorchJob: 1 Master + N-1 Workers", _count(1), 1, "N"),
    Option("cpu_procs", "processes per node with --gpus 0 (default: 1)", _count(1), metavar="P"),
    Option("name", "job name (default: from the config's file name)", metavar="NAME"),
    Option("image", f"trainer image (default: {DEFAULT_IMAGE})", _image, DEFAULT_IMAGE, "IMAGE"),
    Option("config_in_image", "run this config from the image instead of shipping CONFIG",
           metavar="PATH"),
    Option("work_dir_pvc", "existing claim for /work_dirs (default: one kctl creates)",
           _object_name, metavar="CLAIM"),
    Option("work_dir_size", f"size of the work-dir claim kctl creates (default: "
                            f"{DEFAULT_WORK_DIR_SIZE}; 0: an emptyDir)", _size_or_zero,
           DEFAULT_WORK_DIR_SIZE, "SIZE"),
    Option("storage_class", "StorageClass of the claim kctl creates (default: the cluster's)",
           _object_name, metavar="CLASS", chart="workDirStorageClass"),
    Option("data_pvc", "claim mounted read-only at MOUNT, e.g. imagenet:/data", _data_volume,
           metavar="CLAIM:MOUNT"),
    Option("cpu", "CPU request and limit per node, e.g. 8", _quantity, metavar="C"),
    Option("memory", "memory request and limit per node, e.g. 64Gi", _quantity, metavar="M"),
    Option("shm_size", f"size limit of /dev/shm (default: {DEFAULT_SHM_SIZE})", _quantity,
           DEFAULT_SHM_SIZE, "SIZE"),
    Option("queue", "Kueue LocalQueue; the job starts suspended until admitted", _queue,
           metavar="Q"),
    Option("gang", "gang-schedule all pods (Volcano / scheduler-plugins)", switch=True,
           default=False, kinds=("PyTorchJob",),
           refusal="a TrainJob is gang-scheduled by its runtime's podGroupPolicy"),
    Option("priority_class", "PriorityClass of the pods", _object_name, metavar="P",
           kinds=("PyTorchJob",),
           refusal="runtimePatches cannot set priorityClassName; use a TrainingRuntime that "
                   "sets it (--runtime-kind TrainingRuntime --runtime NAME)"),
    Option("max_restarts", f"failures the job survives (default: {DEFAULT_MAX_RESTARTS})",
           _count(0), DEFAULT_MAX_RESTARTS, "K", kinds=("PyTorchJob",),
           refusal="a TrainJob's restarts are its runtime's Job backoffLimit (6 in "
                   "torch-distributed); use a TrainingRuntime that sets another"),
    Option("image_pull_policy", "Always, IfNotPresent or Never (default: the cluster's)",
           _choice("Always", "IfNotPresent", "Never"), metavar="POLICY", kinds=("PyTorchJob",),
           refusal="runtimePatches cannot set a container's imagePullPolicy; use a "
                   "TrainingRuntime that sets it", chart="image.pullPolicy"),
    Option("image_pull_secret", "Secret to pull the image with (repeatable)", _object_name,
           [], "SECRET", repeat=True, chart="image.pullSecrets"),
    Option("node_selector", "run on nodes labelled K=V (repeatable)", _label, {}, "K=V",
           repeat=True),
    Option("toleration", "tolerate the taint KEY[=VALUE]:EFFECT (repeatable)", _toleration, [],
           "TAINT", repeat=True, chart="tolerations"),
    Option("service_account", "ServiceAccount of the pods", _object_name, metavar="NAME"),
    Option("env", "environment variable of the trainer, K=V (repeatable)", _env, {}, "K=V",
           repeat=True),
    Option("label", "label of the job, its ConfigMap and pods, K=V (repeatable)", _label, {},
           "K=V", repeat=True, chart="labels"),
    Option("annotation", "annotation of the pods, K=V (repeatable)", _annotation, {}, "K=V",
           repeat=True, chart="podAnnotations"),
    Option("runtime", f"TrainJob runtime (default: {DEFAULT_RUNTIME})", _object_name,
           DEFAULT_RUNTIME, "NAME", kinds=("TrainJob",),
           refusal="a PyTorchJob has no runtime"),
    Option("runtime_kind", f"{' or '.join(RUNTIME_KINDS)} (default: {RUNTIME_KINDS[0]})",
           _choice(*RUNTIME_KINDS), RUNTIME_KINDS[0], "KIND", kinds=("TrainJob",),
           refusal="a PyTorchJob has no runtime"),
)

BY_NAME = {option.name: option for option in OPTIONS}


def add_arguments(parser) -> None:
    """Add every option's flag to ``parser``. Values stay unparsed and ``None`` when not given
    (``False`` for switches), so :func:`settings` knows what the user asked for."""
    for option in OPTIONS:
        help_ = option.help
        if option.kinds != KINDS:
            help_ += f" ({', '.join(option.kinds)} only)"
        if option.switch:
            parser.add_argument(option.flag, action="store_true", help=help_)
        elif option.repeat:
            parser.add_argument(option.flag, action="append", metavar=option.metavar, help=help_)
        else:
            parser.add_argument(option.flag, metavar=option.metavar, help=help_,
                                required=option.required)


def given(values: dict) -> dict:
    """The options among ``values`` (e.g. ``vars(args)``) that the user gave."""
    return {name: values[name] for name in BY_NAME
            if values.get(name) is not None and values.get(name) is not False}


def settings(kind: str | None, values: dict) -> "Settings":
    """Every option's value for a ``kind`` job: the parsed ``values`` given, defaults for the rest.
    With ``kind`` ``None``, only the values are checked (before the kind is known).

    Raises:
        UsageError: a value is wrong, or an option given does not apply to ``kind`` (one line
            saying why).
    """
    chosen = {}
    for name, raw in given(values).items():
        option = BY_NAME[name]
        if kind is not None and kind not in option.kinds:
            raise UsageError(f"{option.flag} does not apply to a {kind}: {option.refusal}")
        if option.switch:
            chosen[name] = True
        elif option.repeat:
            items = [option.parse(item, option.flag)
                     for item in ([raw] if isinstance(raw, str) else raw)]
            chosen[name] = dict(items) if isinstance(option.default, dict) else items
        else:
            chosen[name] = option.parse(raw, option.flag)
    defaults = {o.name: copy.copy(o.default) for o in OPTIONS}
    return Settings({**defaults, **chosen}, given=set(chosen))


class Settings(dict):
    """Option values by name, also as attributes (``settings.work_dir_pvc``); :attr:`given`
    names the options the user gave."""

    def __init__(self, values: dict, given: set[str] = frozenset()):
        super().__init__(values)
        self.given = set(given)

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None
