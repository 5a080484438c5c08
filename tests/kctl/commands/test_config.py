"""``kctl config flatten``: a ``_base_`` tree becomes one file that means the same to mmengine."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mmengine.config import Config

from kctl.cli import main


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def tree(tmp_path) -> Path:
    """A two-level ``_base_`` tree: a child overriding nested keys and using _delete_."""
    _write(tmp_path / "_base_/models/net.py", """\
        default_scope = 'trainer'
        model = dict(type='ImageClassifier', backbone=dict(type='ResNet', depth=18),
                     head=dict(type='LinearClsHead', num_classes=10, in_channels=512))
        """)
    _write(tmp_path / "_base_/schedules/sgd.py", """\
        optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9))
        param_scheduler = dict(type='MultiStepLR', milestones=[30, 60], gamma=0.1)
        train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
        """)
    return _write(tmp_path / "exp/net_digits.py", """\
        _base_ = ['../_base_/models/net.py', '../_base_/schedules/sgd.py']
        model = dict(head=dict(num_classes=3))
        optim_wrapper = dict(optimizer=dict(lr=0.05))
        param_scheduler = dict(_delete_=True, type='CosineAnnealingLR', T_max=5)
        train_cfg = dict(max_epochs=5)
        """)


def _load(path: Path) -> dict:
    return Config.fromfile(str(path), import_custom_modules=False).to_dict()


def test_flatten_prints_a_self_contained_config_equal_to_the_tree(tree, tmp_path, capsys):
    assert main(["config", "flatten", str(tree)]) == 0
    out = capsys.readouterr().out
    assert "_base_" not in out

    alone = tmp_path / "elsewhere" / "flat.py"  # no _base_ folder beside it
    _write(alone, out)
    flat = _load(alone)
    assert flat == _load(tree)
    # Inheritance really happened: values from both bases and the child's overrides.
    assert flat["model"]["backbone"] == {"type": "ResNet", "depth": 18}
    assert flat["model"]["head"]["num_classes"] == 3
    assert flat["optim_wrapper"]["optimizer"] == {"type": "SGD", "lr": 0.05, "momentum": 0.9}
    assert flat["param_scheduler"] == {"type": "CosineAnnealingLR", "T_max": 5}


def test_flatten_output_file(tree, tmp_path, capsys):
    target = tmp_path / "flat.py"
    assert main(["config", "flatten", str(tree), "-o", str(target)]) == 0
    assert capsys.readouterr().out == ""
    assert _load(target) == _load(tree)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".flat.py")] == []


@pytest.mark.parametrize("make, code, message", [
    (lambda d: d / "missing.py", 2, "config file not found: "),
    (lambda d: _write(d / "conf.yaml", "a: 1\n"), 2, "is not a Python (.py) config"),
    (lambda d: _write(d / "broken.py", "x = (\n"), 1, "cannot load config "),
    (lambda d: _write(d / "orphan.py", "_base_ = './gone.py'\n"), 1, "cannot load config "),
])
def test_bad_config_is_one_line(tmp_path, capsys, make, code, message):
    path = make(tmp_path)
    assert main(["config", "flatten", str(path)]) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("kctl: error: ") and message in captured.err
    assert captured.err.count("\n") == 1


def test_output_into_missing_folder_writes_nothing(tree, tmp_path, capsys):
    target = tmp_path / "nowhere" / "flat.py"
    assert main(["config", "flatten", str(tree), "-o", str(target)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not target.parent.exists()


def test_without_mmengine_one_clear_line(tree, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mmengine", None)
    monkeypatch.setitem(sys.modules, "mmengine.config", None)
    assert main(["config", "flatten", str(tree)]) == 1
    err = capsys.readouterr().err
    assert err == ("kctl: error: kctl config flatten needs mmengine: "
                   "pip install -c constraints.txt '.[trainer]'\n")


def test_missing_action_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["config"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().endswith("required: ACTION")


def test_cli_does_not_import_mmengine_until_flatten_runs():
    code = ("import sys; from kctl.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('mmengine', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[3]).stdout
    assert out.strip() == "[]"


def test_flattens_the_projects_demo_config(capsys):
    demo = Path(__file__).resolve().parents[3] / "configs/resnet/resnet18_1xb64_digits.py"
    if not demo.is_file():
        pytest.skip("configs/resnet/resnet18_1xb64_digits.py is not in the tree")
    assert main(["config", "flatten", str(demo)]) == 0
    text = capsys.readouterr().out
    assert "_base_" not in text and "default_scope = 'trainer'" in text
