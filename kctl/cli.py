"""``kctl``: the command line. Subcommands live in :mod:`kctl.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys

from kctl import __version__, commands
from kctl.errors import KctlError

DESCRIPTION = """\
kctl runs one MMPretrain-style training job on this machine, several machines, Slurm or Kubernetes.
Use "kctl COMMAND --help" for more about a command.
"""

EXAMPLES = """\
Examples:
  # Train on 2 local GPUs (or 2 CPU processes where there is no GPU)
  kctl run configs/resnet/resnet18_1xb64_digits.py --gpus 2

  # Render a Kubeflow PyTorchJob for 2 nodes x 8 GPUs without submitting it
  kctl train configs/resnet/resnet18_1xb64_digits.py --gpus 8 --nodes 2 --dry-run
"""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but usage errors are one line: ``kctl run: error: ...`` and exit 2."""

    #: ``dest`` of the arguments after ``--`` (see :meth:`add_passthrough`), or ``None``.
    passthrough: str | None = None

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)

    def add_passthrough(self, dest: str, metavar: str, help: str) -> None:
        """Everything after the first ``--`` goes unchanged into ``args.<dest>`` (a list).

        For arguments of another program, e.g. ``kctl run CFG --gpus 2 -- --cfg-options k=v``:
        unlike a plain ``nargs='*'`` positional this works wherever options stand, and keeps
        arguments that look like kctl's own options. Without ``--``, extra words are an error.
        """
        self.passthrough = dest
        self.passthrough_metavar = metavar
        self.add_argument(dest, nargs="*", metavar=f"-- {metavar}", help=help)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """kubectl-like help: one line per option (help texts are never wrapped, keep them short)."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=40, width=100)

    def _split_lines(self, text, width):
        return text.splitlines()

    def add_argument(self, action):
        super().add_argument(action)
        # argparse measures subcommand names without their extra indent, so a long one
        # ("slurm-script") would push its help onto a second line.
        if action.help is not argparse.SUPPRESS and isinstance(action, argparse._SubParsersAction):
            for choice in action._get_subactions():
                width = (len(self._format_action_invocation(choice)) + self._current_indent
                         + self._indent_increment)
                self._action_max_length = max(self._action_max_length, width)


def _command_module(command: str):
    """The module of ``command`` if it follows the naming rule (``slurm-script`` lives in
    ``kctl/commands/slurm_script.py``), else ``None``."""
    name = command.replace("-", "_")
    if not name.isidentifier():
        return None
    try:
        mod = importlib.import_module(f"kctl.commands.{name}")
    except ModuleNotFoundError as err:
        if err.name == f"kctl.commands.{name}":
            return None
        raise
    return mod if getattr(mod, "NAME", None) == command else None


def _command_modules(command: str | None = None):
    """The command modules to build the parser from: only ``command``'s where it can be found by
    name (so ``kctl run`` never imports what ``kctl train`` needs), else all of them."""
    mod = _command_module(command) if command else None
    if mod is not None:
        return [mod]
    import pkgutil

    mods = [importlib.import_module(f"kctl.commands.{m.name}")
            for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")]
    return sorted(mods, key=lambda m: m.ORDER)


def _command_word(argv: list[str]) -> str | None:
    """The subcommand in ``argv``: the first word that is not an option (kctl's own options take
    no values)."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(command: str | None = None) -> ArgumentParser:
    """The ``kctl`` parser. With ``command``, it may hold that subcommand only (faster)."""
    parser = ArgumentParser(prog="kctl", description=DESCRIPTION, epilog=EXAMPLES,
                            formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"kctl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    parser.commands = sub.choices
    for mod in _command_modules(command):
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP,
                           epilog=getattr(mod, "EXAMPLES", None), formatter_class=HelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _parse(parser: ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parser.parse_args``, with the words after ``--`` set aside for commands that take them."""
    command = parser.commands.get(_command_word(argv))
    if command is None or command.passthrough is None:
        return parser.parse_args(argv)
    tail: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, tail = argv[:cut], argv[cut + 1:]
    args, unknown = parser.parse_known_args(argv)
    stray = getattr(args, command.passthrough) + unknown
    if stray:
        command.error(f"unrecognized arguments: {' '.join(stray)} "
                      f"({command.passthrough_metavar} go after --)")
    setattr(args, command.passthrough, tail)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_word(argv))
    try:
        args = _parse(parser, argv)
        if not getattr(args, "_run", None):
            parser.print_help(sys.stderr)
            return 2
        return args._run(args) or 0
    except KctlError as err:
        sys.stderr.write(f"kctl: error: {err}\n")
        return err.exit_code
    except KeyboardInterrupt:
        return 130
