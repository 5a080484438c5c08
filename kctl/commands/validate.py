"""``kctl validate FILE...``: check manifests the way the cluster would, without one.

PyTorchJobs against the training operator v1.9's CRD schema (closed to unknown fields) and its
webhook rules, TrainJobs against Kubeflow Trainer v2.3.0's CRD schema, its CEL rules and its
webhook rules, ConfigMaps and PersistentVolumeClaims against kctl's own schemas; see
:mod:`kctl.validate`. Each problem is one line ``FILE: Kind/name: path: message``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from kctl.errors import UsageError
from kctl.validate.manifest import (KINDS, ManifestError, describe, is_known, load_documents,
                                    validate_object)

NAME = "validate"
HELP = "Check manifests (PyTorchJob, TrainJob, ConfigMap, PVC) as a cluster and its operators would"
ORDER = 30
EXAMPLES = """\
Exit status: 0 when every object is valid, 1 when a problem was found, 2 on bad usage.

Examples:
  # Check a manifest (multi-document YAML or JSON)
  kctl validate job.yaml

  # Check what kctl train would create, or a Helm chart's output
  kctl train configs/resnet/resnet18_1xb64_digits.py --gpus 8 --dry-run | kctl validate -
  helm template digits charts/kctl | kctl validate -
"""

STDIN = "-"


def add_arguments(parser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="manifest files; - reads standard input")


def _read(source: str) -> str:
    if source == STDIN:
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"file not found: {source}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read {source}: {getattr(err, 'strerror', None) or err}") \
            from None


def check_text(label: str, text: str) -> tuple[list[str], int, int]:
    """Problem lines for one manifest, the number of objects and how many were not checked."""
    try:
        objects = load_documents(text)
    except ManifestError as err:
        return [f"{label}: {err}"], 0, 0
    if not objects:
        return [f"{label}: no Kubernetes objects found"], 0, 0
    lines, unchecked = [], 0
    for obj in objects:
        lines += [f"{label}: {describe(obj)}: {problem}" for problem in validate_object(obj)]
        if isinstance(obj, dict) and isinstance(obj.get("kind"), str) and not is_known(obj):
            unchecked += 1
            sys.stderr.write(f"{label}: {describe(obj)}: not checked (kctl knows "
                             f"{', '.join(KINDS)})\n")
    return lines, len(objects), unchecked


def run(args) -> int:
    texts = [(("<stdin>" if source == STDIN else source), _read(source)) for source in args.files]
    problems, objects, unchecked = [], 0, 0
    for label, text in texts:
        lines, count, skipped = check_text(label, text)
        problems += lines
        objects += count
        unchecked += skipped
    for line in problems:
        sys.stdout.write(line + "\n")
    if problems:
        return 1
    files = len(texts)
    note = f", {unchecked} not checked" if unchecked else ""
    sys.stdout.write(f"OK: {objects} object{'s' * (objects != 1)} in {files} "
                     f"file{'s' * (files != 1)}{note}\n")
    return 0
