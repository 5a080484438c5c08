"""The ``kctl`` frame: command discovery, kubectl-like help, ``--`` pass-through, error lines."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import subprocess
import sys

import pytest

import kctl.commands
from kctl import __version__
from kctl.cli import build_parser, main
from kctl.errors import KctlError, UsageError
from tests.support.local_launch import REPO, launch_env

CONFIG = "configs/resnet/resnet18_1xb64_digits.py"
MODULES = sorted(m.name for m in pkgutil.iter_modules(kctl.commands.__path__)
                 if not m.name.startswith("_"))


def _parsers(parser: argparse.ArgumentParser):
    """``parser`` and every (sub)command parser under it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _parsers(sub)


def test_every_command_module_is_a_subcommand():
    names = {importlib.import_module(f"kctl.commands.{m}").NAME for m in MODULES}
    assert set(build_parser().commands) == names


def test_top_level_help_lists_commands_in_order(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    mods = sorted((importlib.import_module(f"kctl.commands.{m}") for m in MODULES),
                  key=lambda mod: mod.ORDER)
    positions = [out.index(f"\n    {mod.NAME} ") for mod in mods]
    assert positions == sorted(positions)
    for mod in mods:
        assert re.search(rf"^    {re.escape(mod.NAME)} +{re.escape(mod.HELP)}$", out, re.M)


@pytest.mark.parametrize("parser", list(_parsers(build_parser())), ids=lambda p: p.prog)
def test_help_is_one_line_per_option_with_examples_last(parser):
    text = parser.format_help()
    assert parser.epilog, f"{parser.prog}: no EXAMPLES"
    assert text.rstrip().endswith(parser.epilog.rstrip())
    examples = parser.epilog.rstrip().splitlines()
    assert "Examples:" in examples and re.match(r"^  [a-z]", examples[-1]), \
        f"{parser.prog}: help must end with example command lines"
    usage_end = text.index("\n\n")
    body = text[usage_end:text.rindex(parser.epilog.rstrip())]
    for line in body.splitlines():
        if line.startswith(" ") and not re.match(r"^  [A-Z_]+$", line):  # "  COMMAND" heading
            assert re.match(r"^ +\S.*? {2,}\S", line), f"{parser.prog}: not one line: {line!r}"


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "commands:" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out == f"kctl {__version__}\n"


def test_a_named_command_builds_only_its_parser():
    assert list(build_parser("run").commands) == ["run"]
    assert set(build_parser("no-such-command").commands) == set(build_parser().commands)


def test_unknown_command_is_one_line():
    result = subprocess.run([sys.executable, "-m", "kctl", "rnu"], cwd=REPO, env=launch_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("kctl: error: argument COMMAND: invalid choice: 'rnu'")
    assert result.stderr.count("\n") == 1


def test_words_after_double_dash_pass_through_unchanged(capsys):
    assert main(["run", "--dry-run", CONFIG, "--gpus", "2", "--", "--gpus", "3", "--", "x"]) == 0
    out = capsys.readouterr().out
    assert out.endswith(" --launcher pytorch --resume --gpus 3 -- x\n")
    assert "--nproc-per-node=2" in out


@pytest.mark.parametrize("error, line, code", [
    (KctlError("the cluster said no"), "kctl: error: the cluster said no\n", 1),
    (UsageError("--gpus must be positive"), "kctl: error: --gpus must be positive\n", 2),
])
def test_kctl_errors_become_one_line(monkeypatch, capsys, error, line, code):
    def fail(args):
        raise error

    monkeypatch.setattr("kctl.commands.run.run", fail)
    assert main(["run", CONFIG, "--gpus", "1"]) == code
    assert capsys.readouterr().err == line


def test_ctrl_c_exits_130(monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("kctl.commands.run.run", interrupted)
    assert main(["run", CONFIG, "--gpus", "1"]) == 130
