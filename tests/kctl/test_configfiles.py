"""Reading mmengine configs without mmengine: the _base_ tree and plain values."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kctl.configfiles import UNKNOWN, collect, lookup, read_values
from kctl.errors import UsageError

REPO = Path(__file__).resolve().parents[2]


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_collect_follows_bases_recursively(tmp_path):
    write(tmp_path, {
        "configs/_base_/models/net.py": "model = dict(type='Net', depth=18)\n",
        "configs/_base_/runtime.py": "_base_ = './env.py'\nlog_level = 'INFO'\n",
        "configs/_base_/env.py": "env_cfg = dict(cudnn_benchmark=False)\n",
        "configs/net/net_digits.py": """\
            _base_ = ['../_base_/models/net.py', '../_base_/runtime.py']
            train_cfg = dict(max_epochs=3)
            """,
    })
    tree = collect(tmp_path / "configs/net/net_digits.py")
    assert tree.root == (tmp_path / "configs").resolve()
    assert tree.main == "net/net_digits.py"
    assert list(tree.files) == ["net/net_digits.py", "_base_/models/net.py", "_base_/runtime.py",
                                "_base_/env.py"]
    assert tree.files["_base_/env.py"] == (tmp_path / "configs/_base_/env.py").resolve()


def test_collect_reads_read_base_imports(tmp_path):
    write(tmp_path, {
        "configs/_base_/models/net.py": "model = dict(type='Net')\n",
        "configs/net/new_style.py": """\
            from mmengine.config import read_base
            with read_base():
                from .._base_.models.net import *
            """,
    })
    tree = collect(tmp_path / "configs/net/new_style.py")
    assert sorted(tree.files) == ["_base_/models/net.py", "net/new_style.py"]


def test_collect_visits_a_shared_base_once(tmp_path):
    write(tmp_path, {
        "shared.py": "a = 1\n",
        "left.py": "_base_ = './shared.py'\n",
        "right.py": "_base_ = './shared.py'\n",
        "top.py": "_base_ = ['./left.py', './right.py']\n",
    })
    assert list(collect(tmp_path / "top.py").files) == ["top.py", "left.py", "right.py",
                                                        "shared.py"]


@pytest.mark.parametrize("files, message", [
    ({"top.py": "_base_ = './gone.py'\n"},
     r"config file not found: .*gone\.py \(a _base_ of .*top\.py\)"),
    ({"top.py": "_base_ = 'mmpretrain::resnet/r18.py'\n"}, "names a config inside a package"),
    ({"top.py": "_base_ = BASES\n"}, "line 1: _base_ must be a string or a list of strings"),
    ({"top.py": "model = dict(\n"}, "syntax error in config .*top.py, line 1"),
    ({"top.py": "with read_base():\n    from mmpretrain.configs import x\n"},
     "read_base\\(\\) imports from a package \\(mmpretrain.configs\\)"),
])
def test_collect_explains_what_is_wrong(tmp_path, files, message):
    write(tmp_path, files)
    with pytest.raises(UsageError, match=message):
        collect(tmp_path / "top.py")


def test_missing_config(tmp_path):
    with pytest.raises(UsageError, match="config file not found: .*absent.py"):
        collect(tmp_path / "absent.py")
    with pytest.raises(UsageError, match="config file not found: .*absent.py"):
        read_values(tmp_path / "absent.py")


def test_read_values_merges_like_mmengine(tmp_path):
    write(tmp_path, {
        "base.py": """\
            bs = 32
            train_dataloader = dict(batch_size=bs, num_workers=2, dataset=dict(type='A', n=1))
            optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9))
            """,
        "top.py": """\
            _base_ = './base.py'
            train_dataloader = dict(batch_size=64, dataset=dict(n=2))
            optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-3))
            auto_scale_lr = dict(base_batch_size=256, enable=False)
            offset = -3
            steps = [1, 2]
            computed = len(steps)
            from_name = bs
            """,
    })
    values = read_values(tmp_path / "top.py")
    assert values["train_dataloader"] == {"batch_size": 64, "num_workers": 2,
                                          "dataset": {"type": "A", "n": 2}}
    assert values["optim_wrapper"] == {"optimizer": {"type": "AdamW", "lr": 1e-3}}
    assert (values["offset"], values["steps"], values["from_name"]) == (-3, [1, 2], 32)
    assert values["computed"] is UNKNOWN
    assert lookup(values, "auto_scale_lr.base_batch_size") == 256
    assert lookup(values, "train_dataloader.dataset.type") == "A"
    assert lookup(values, "train_dataloader.sampler.type") is None
    assert lookup(values, "train_dataloader.batch_size.x") is None


def test_the_project_config():
    config = REPO / "configs/resnet/resnet18_1xb64_digits.py"
    tree = collect(config)
    assert tree.main == "resnet/resnet18_1xb64_digits.py"
    assert len(tree.files) > 1 and all(path.is_file() for path in tree.files.values())
    assert lookup(read_values(config), "train_dataloader.batch_size") == 64
