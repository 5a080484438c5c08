"""MMPretrain's own configs, unchanged, through ``python -m trainer`` (issue 12).

In the MMPretrain environment (:mod:`tests.support.mmpretrain_env`), five families train a few
iterations from the installed package's configs (``mmpretrain::...``) with the trainer's runtime; a run
of ResNet-18's ImageNet config stopped mid-epoch (SIGTERM: a checkpoint part-way through the epoch, then
SIGKILL) and resumed ends with the uninterrupted run's weights; bad input is one line, exit 2, nothing
written. Without the extra (the default environment), MMPretrain's configs are refused in one line too.
"""

from __future__ import annotations

import re
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.support.mmpretrain_env import INSTALL
from tests.support.mmpretrain_job import (FAMILIES, ITERS_PER_EPOCH, PREEMPTED, RESNET18, RESUMED, TIMEOUT,
                                          assert_trained, final_weights, trained, trainer, trainer_options)
from tests.support.trainer_runtime import REPO, run_trainer, trainer_env


#: Flags of the trainer given to some of the runs.
FLAGS = {"mobilenet_v2": ["--auto-scale-lr"]}


@pytest.fixture(scope="module")
def family_runs(mmpretrain_python, tiny_imagenet, tmp_path_factory) -> dict[str, tuple[str, Path]]:
    """Every config of ``FAMILIES`` trained once, side by side (one thread each), for 2 epochs: ResNet-18 of 4
    iterations (the uninterrupted run the resume test compares with), the others of one iteration of 4
    images. ``{family: (log, work_dir)}``."""
    folder = tmp_path_factory.mktemp("families")
    runs = {family: trainer(mmpretrain_python, config, folder / family, *FLAGS.get(family, ()),
                            *(trainer_options(tiny_imagenet) if family == "resnet" else
                              trainer_options(tiny_imagenet, family, per_process_batch=4, samples=4)))
            for family, config in FAMILIES.items()}
    codes = {family: run.wait(TIMEOUT) for family, run in runs.items()}
    return {family: (f"exit {codes[family]}\n" + run.output, folder / family) for family, run in runs.items()}


@pytest.mark.parametrize("family", FAMILIES)
def test_an_unchanged_config_trains_with_the_trainers_runtime(family_runs, family):
    log, work_dir = family_runs[family]
    assert log.startswith("exit 0\n"), log[-3000:]
    assert_trained(log, 2 * ITERS_PER_EPOCH if family == "resnet" else 2)
    # the trainer's runner, loop, checkpoints, hooks and sampler, not mmengine's, in MMPretrain's scope
    dumped = (work_dir / Path(FAMILIES[family]).name).read_text()
    for part in ("runner_type = 'trainer.Runner'", "type='trainer.EpochBasedTrainLoop'",
                 "type='trainer.CheckpointHook'", "type='trainer.FinalWeightsHook'",
                 "type='trainer.PreemptionHook'", "type='trainer.ResumableSampler'",
                 "type='trainer.SeedSampleRandomness'", "type='trainer.UniversalVisualizer'",
                 "default_scope = 'mmpretrain'"):
        assert part in dumped, part
    assert (work_dir / "last_checkpoint").read_text().endswith("epoch_2.pth")
    if "--auto-scale-lr" in FLAGS.get(family, ()):  # MobileNetV2's lr 0.045 is for 256 images a step, here 4
        assert "trainer: auto-scale-lr base_lr=0.045 scaled_lr=0.000703125 (world_size×batch=4/base_batch_size=256)" \
            in log, log[-3000:]


def test_stopped_mid_epoch_and_resumed_it_ends_with_the_uninterrupted_weights(
        family_runs, mmpretrain_python, tiny_imagenet, tmp_path):
    """SIGTERM during epoch 2 saves a checkpoint part-way through it (exit 143); the resumed run continues
    that epoch with the batch it would have trained next, and is SIGKILLed one iteration later; the run
    resumed after that from the same checkpoint ends bit for bit where the uninterrupted run did."""
    reference = final_weights(family_runs["resnet"][0])
    work = tmp_path / "work"
    options = ("--resume", *trainer_options(tiny_imagenet))

    first = trainer(mmpretrain_python, RESNET18, work, *options)
    first.wait_matches(re.compile(r"Epoch\(train\)\s*\[2\]\[1/4\]"), 1, TIMEOUT)
    first.proc.send_signal(signal.SIGTERM)
    assert first.wait(TIMEOUT) == 143, first.output[-3000:]
    ((epochs, done, path),) = PREEMPTED.findall(first.output)
    assert (epochs, path) == ("1", str(work / f"iter_{done}.pth")) and int(done) > ITERS_PER_EPOCH

    second = trainer(mmpretrain_python, RESNET18, work, *options)
    second.wait_matches(re.compile(r"Epoch\(train\)\s*\[2\]\[\s*\d/4\]"), 1, TIMEOUT)
    second.proc.kill()
    assert second.wait(TIMEOUT) == -signal.SIGKILL
    assert RESUMED.findall(second.output) == [(path, "1", done)]
    assert f"epoch 2 continues at iteration {int(done) - ITERS_PER_EPOCH + 1}/4" in second.output

    last = trainer(mmpretrain_python, RESNET18, work, *options)
    assert last.wait(TIMEOUT) == 0, last.output[-3000:]
    assert RESUMED.findall(last.output) == [(path, "1", done)]
    assert trained(first.output) + trained(last.output) == [(e, i) for e in (1, 2) for i in (1, 2, 3, 4)]
    assert final_weights(last.output) == reference


# ---- bad input: one line, exit 2, nothing written ------------------------------------------------------------

def write(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mine.py"
    path.write_text(textwrap.dedent(body))
    return path


def refused(proc, work_dir: Path) -> str:
    """The one stderr line of a run refused as bad input (exit 2) that left ``work_dir`` unmade."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert not work_dir.exists()
    return lines[0]


def in_mmpretrain_env(python: Path, *args, tmp_path: Path) -> subprocess.CompletedProcess:
    from tests.support.mmpretrain_env import mmpretrain_env

    return subprocess.run([str(python), "-m", "trainer", *map(str, args), "--work-dir", str(tmp_path / "wd")],
                          cwd=REPO, env=mmpretrain_env(python), capture_output=True, text=True, timeout=TIMEOUT)


@pytest.mark.parametrize("body, message", [
    ("model = dict(backbone=dict(type='ResNeXt50'))\n",
     "trainer: error: model.backbone.type: type 'ResNeXt50' is in no registry (scopes searched: mmpretrain, "
     "mmengine)"),
    ("model = dict(backbone=dict(norm_cfg=dict(type='MMSyncBN')))\n",
     "trainer: error: model.backbone.norm_cfg.type: type 'MMSyncBN' is in no registry (scopes searched: "
     "mmpretrain, mmengine); it is one of mmcv's compiled ops (mmcv/ops/sync_bn.py), which the mmcv-lite of the "
     "[mmpretrain] extra does not have: ops that need compiled mmcv are not supported"),
    ("custom_imports = dict(imports=['mmcv.ops'])\n",
     "trainer: error: an import needs mmcv's compiled ops (mmcv._ext: mmcv.ops), which the mmcv-lite of the "
     "[mmpretrain] extra does not have: ops that need compiled mmcv are not supported"),
], ids=["unknown-type", "compiled-op-type", "compiled-op-import"])
def test_a_config_of_your_own_on_mmpretrains_tree(mmpretrain_python, tiny_imagenet, tmp_path, body, message):
    config = write(tmp_path / "cfg", f"_base_ = '{RESNET18}'\n" + body)
    proc = in_mmpretrain_env(mmpretrain_python, config, *trainer_options(tiny_imagenet), tmp_path=tmp_path)
    assert refused(proc, tmp_path / "wd") == message


def test_a_pure_python_config_with_mmpretrains_classes_is_refused(mmpretrain_python, tmp_path):
    """MMPretrain's new-style configs (``mmpretrain/configs``, not in its wheel) give types as classes."""
    config = write(tmp_path / "cfg", """\
        from mmengine.config import read_base
        with read_base():
            from .runtime import *
        from mmpretrain.models import ImageClassifier, ResNet
        model = dict(type=ImageClassifier, backbone=dict(type=ResNet, depth=18))
        optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1))
        """)
    (tmp_path / "cfg" / "runtime.py").write_text("from mmengine.hooks import CheckpointHook\n"
                                                 "default_hooks = dict(checkpoint=dict(type=CheckpointHook))\n")
    proc = in_mmpretrain_env(mmpretrain_python, config, tmp_path=tmp_path)
    assert refused(proc, tmp_path / "wd") == (
        "trainer: error: model.type: ImageClassifier is given as a class of mmpretrain: pure-Python configs of "
        "mmpretrain (types as classes) are not supported; use a config of its tree, whose types are names "
        "(mmpretrain::FAMILY/NAME.py)")


def test_a_dataset_that_would_download_says_where_to_put_its_files(mmpretrain_python, tmp_path):
    empty = tmp_path / "cifar10"
    empty.mkdir()
    proc = in_mmpretrain_env(mmpretrain_python, "mmpretrain::resnet/resnet18_8xb16_cifar10.py", "--cfg-options",
                             f"train_dataloader.dataset.data_root={empty}",
                             f"val_dataloader.dataset.data_root={empty}", tmp_path=tmp_path)
    folder = empty / "cifar-10-batches-py"
    assert refused(proc, tmp_path / "wd") == (
        f"trainer: error: train_dataloader.dataset: CIFAR10 is missing data_batch_1, data_batch_2, data_batch_3, "
        f"data_batch_4, data_batch_5, test_batch, batches.meta in {folder}; the trainer never downloads: put "
        f"data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5, test_batch, batches.meta there "
        f"(from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz)")


def test_a_config_name_that_does_not_exist_gets_the_nearest(mmpretrain_python, tmp_path):
    proc = in_mmpretrain_env(mmpretrain_python, "mmpretrain::resnet/resnet18_8xb32_in1.py", tmp_path=tmp_path)
    assert re.fullmatch(r"trainer: error: mmpretrain::resnet/resnet18_8xb32_in1.py: no such config in mmpretrain's "
                        r"config tree \S+/mmpretrain/\.mim/configs; nearest: mmpretrain::resnet/resnet18_8xb32_in1k"
                        r"\.py, .*", refused(proc, tmp_path / "wd"))


# ---- without the extra (the default environment) -------------------------------------------------------------

EXTRA = "MMPretrain is not installed: it comes with the trainer's [mmpretrain] extra (see docs/mmpretrain.md)"


@pytest.mark.parametrize("config, body, where", [
    (RESNET18, None, RESNET18),
    ("mine.py", f"_base_ = ['{RESNET18}']\n", RESNET18),
    ("mine.py", "default_scope = 'mmpretrain'\nmodel = dict(type='ImageClassifier')\n", "default_scope='mmpretrain'"),
], ids=["package-name", "package-base", "scope"])
def test_without_the_extra_an_mmpretrain_config_is_refused(tmp_path, config, body, where):
    if body is not None:
        config = write(tmp_path / "cfg", body)
    proc = run_trainer(config, "--work-dir", tmp_path / "wd")
    assert refused(proc, tmp_path / "wd") == f"trainer: error: {where}: {EXTRA}"


def test_the_extra_without_mmcv_lite_is_refused(tmp_path):
    """The install's third command (mmcv-lite, --no-deps) forgotten: MMPretrain itself is there (here a
    stand-in that must not be imported), mmcv is not."""
    (tmp_path / "site" / "mmpretrain").mkdir(parents=True)
    (tmp_path / "site" / "mmpretrain" / "__init__.py").write_text("raise ImportError('not to be imported')\n")
    config = write(tmp_path / "cfg", "default_scope = 'mmpretrain'\nmodel = dict(type='ImageClassifier')\n")
    proc = run_trainer(config, "--work-dir", tmp_path / "wd", env=trainer_env(PYTHONPATH=f"{REPO}:{tmp_path / 'site'}"))
    assert refused(proc, tmp_path / "wd") == (
        "trainer: error: default_scope='mmpretrain': mmpretrain needs mmcv, which is not installed: install mmcv-lite: "
        "pip install --no-deps -c constraints.txt mmcv-lite (see docs/mmpretrain.md)")


def test_a_torchvision_that_cannot_load_beside_torch_is_one_line(tmp_path):
    """PyPI's torchvision (a CUDA build) beside the CPU torch: ``import torchvision`` raises, as this
    stand-in does. mmengine imports it to log the environment, even for the digits demo."""
    (tmp_path / "site" / "torchvision").mkdir(parents=True)
    (tmp_path / "site" / "torchvision" / "__init__.py").write_text(
        "raise RuntimeError('operator torchvision::nms does not exist')\n")
    env = trainer_env(PYTHONPATH=f"{REPO}:{tmp_path / 'site'}")
    proc = run_trainer("configs/resnet/resnet18_1xb64_digits.py", "--work-dir", tmp_path / "wd", env=env)
    assert re.fullmatch(r"trainer: error: torchvision cannot be imported beside torch \S+ \(RuntimeError: operator "
                        r"torchvision::nms does not exist\): install the torchvision built for this torch \(PyPI's "
                        r"are CUDA builds, which need a CUDA build of torch\), or uninstall torchvision if no config "
                        r"needs it", refused(proc, tmp_path / "wd"))



def test_the_documented_install_is_the_one_the_tests_build():
    documented = [line for line in (REPO / "docs" / "mmpretrain.md").read_text().splitlines()
                  if line.startswith("python3 -m venv")]
    built = [command.replace(",test]", "]") for command in INSTALL]
    assert documented == [" && ".join(["python3 -m venv .venv", ". .venv/bin/activate", *built])]
