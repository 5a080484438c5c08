"""``kctl config flatten CONFIG``: one self-contained config file out of a ``_base_`` tree.

mmengine's own loader merges the inheritance chain and its ``Config.dump`` writes the result
back as Python, so the flat file means exactly what the tree meant. That file can travel where
a tree cannot, e.g. ``helm install ... --set-file config=<(kctl config flatten CONFIG)``.
mmengine is imported only when this command runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from kctl.configfiles import resolve_config
from kctl.files import write_whole
from kctl.errors import KctlError, UsageError

NAME = "config"
HELP = "Work with mmengine config files (flatten a _base_ tree into one file)"
ORDER = 80
EXAMPLES = """\
Examples:
  # Print the config with every _base_ file merged in
  kctl config flatten configs/resnet/resnet18_1xb64_digits.py

  # Install it through the Helm chart as one file
  helm install digits charts/kctl --set-file config=<(kctl config flatten CONFIG)

  # Write it to a file instead of stdout
  kctl config flatten CONFIG -o flat.py
"""

FLATTEN_EXAMPLES = """\
Examples:
  kctl config flatten configs/resnet/resnet18_1xb64_digits.py
  kctl config flatten configs/resnet/resnet18_1xb64_digits.py -o flat.py
"""


def add_arguments(parser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", title="actions",
                                    required=True)
    flatten = actions.add_parser(
        "flatten", help="Merge a config and its _base_ files into one Python file",
        description="Merge a config and every file it inherits from (_base_) into one "
                    "self-contained Python config, using mmengine's own loader.",
        epilog=FLATTEN_EXAMPLES, formatter_class=parser.formatter_class)
    flatten.add_argument("config", metavar="CONFIG",
                         help="the mmengine config file (.py), or mmpretrain::FAMILY/NAME.py")
    flatten.add_argument("-o", "--output", metavar="FILE",
                         help="write to FILE instead of stdout (written whole or not at all)")


def flatten(config: str) -> str:
    """The config ``config`` after inheritance, as mmengine's ``Config.dump`` writes it."""
    path = resolve_config(config)  # a file, or mmpretrain::FAMILY/NAME.py
    if not path.is_file():
        raise UsageError(f"config file not found: {config}")
    if path.suffix != ".py":
        raise UsageError(f"config {config} is not a Python (.py) config")
    try:
        from mmengine.config import Config
    except ImportError:
        raise KctlError("kctl config flatten needs mmengine: "
                        "pip install -c constraints.txt '.[trainer]'") from None
    try:
        cfg = Config.fromfile(str(path), import_custom_modules=False)
        return cfg.dump()
    except Exception as err:  # mmengine raises many types; the user needs one line, not a trace
        detail = " ".join(str(err).split()) or type(err).__name__
        raise KctlError(f"cannot load config {config}: {detail}") from None


def _write_whole(output: str, text: str) -> None:
    """Write ``text`` to ``output`` whole, after checking that its folder exists."""
    folder = Path(output).parent if str(Path(output).parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"cannot write {output}: folder {folder} does not exist")
    write_whole(output, text)


def run(args) -> int:
    text = flatten(args.config)
    if args.output:
        _write_whole(args.output, text)
    else:
        sys.stdout.write(text)
    return 0
