"""Reading mmengine configs without mmengine: the _base_ tree and plain values."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kctl.configfiles import UNKNOWN, collect, lookup, read_values, resolve_config
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
    ({"top.py": "_base_ = 'nopkg_kctl_test::resnet/r18.py'\n"},
     r"nopkg_kctl_test::resnet/r18.py: nopkg_kctl_test is not installed in kctl's Python"),
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


# ---- configs inside an installed package (mmpretrain::FAMILY/NAME.py) ---------------------------------------

@pytest.fixture
def zoo(tmp_path, monkeypatch):
    """An installed package ``kctlzoo`` (never imported) with an OpenMMLab config tree in ``.mim/configs``."""
    write(tmp_path / "site", {
        "kctlzoo/__init__.py": "raise ImportError('kctl must not import the package')\n",
        "kctlzoo/.mim/configs/_base_/models/net.py": "model = dict(type='Net')\n",
        "kctlzoo/.mim/configs/_base_/default_runtime.py": "default_scope = 'kctlzoo'\n",
        "kctlzoo/.mim/configs/net/net-s_8xb32_in1k.py": """\
            _base_ = ['../_base_/models/net.py', '../_base_/default_runtime.py']
            train_dataloader = dict(batch_size=32)
            """,
        "kctlzoo/.mim/configs/net/net-l_8xb32_in1k.py": "_base_ = './net-s_8xb32_in1k.py'\n",
    })
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return (tmp_path / "site" / "kctlzoo" / ".mim" / "configs").resolve()


def test_a_package_config_is_found_without_importing_the_package(zoo):
    assert resolve_config("kctlzoo::net/net-s_8xb32_in1k.py").resolve() == zoo / "net/net-s_8xb32_in1k.py"
    assert resolve_config("configs/x.py") == Path("configs/x.py")
    assert resolve_config("configs/x.py", relative_to="/work") == Path("/work/configs/x.py")
    tree = collect(resolve_config("kctlzoo::net/net-l_8xb32_in1k.py"))
    assert tree.root == zoo and tree.main == "net/net-l_8xb32_in1k.py"
    assert list(tree.files) == ["net/net-l_8xb32_in1k.py", "net/net-s_8xb32_in1k.py",
                                "_base_/models/net.py", "_base_/default_runtime.py"]


def test_a_missing_package_config_suggests_the_nearest_names(zoo):
    with pytest.raises(UsageError, match=r"^kctlzoo::net/net-s_8xb23_in1k.py: no such config in kctlzoo's config "
                       r"tree .*configs; nearest: kctlzoo::net/net-s_8xb32_in1k.py, kctlzoo::net/net-l_8xb32_in1k.py$"):
        resolve_config("kctlzoo::net/net-s_8xb23_in1k.py")
    with pytest.raises(UsageError, match=r"mmpretrain is not installed in kctl's Python \(.*\): it comes with "
                       r"the trainer's \[mmpretrain\] extra"):
        resolve_config("mmpretrain::resnet/resnet18_8xb32_in1k.py")


def test_a_package_base_of_your_own_config_is_checked_and_read_but_not_collected(zoo, tmp_path):
    """The trainer reads ``kctlzoo::`` bases from the package installed where it runs (in the image)."""
    write(tmp_path, {"mine.py": """\
        _base_ = ['kctlzoo::net/net-s_8xb32_in1k.py', './local.py']
        train_dataloader = dict(num_workers=2)
        """, "local.py": "log_level = 'INFO'\n"})
    assert list(collect(tmp_path / "mine.py").files) == ["mine.py", "local.py"]
    values = read_values(tmp_path / "mine.py")
    assert values["train_dataloader"] == {"batch_size": 32, "num_workers": 2}
    assert values["default_scope"] == "kctlzoo"
    write(tmp_path, {"typo.py": "_base_ = 'kctlzoo::net/net-x.py'\n"})
    with pytest.raises(UsageError, match="kctlzoo::net/net-x.py: no such config in kctlzoo's config tree"):
        collect(tmp_path / "typo.py")
