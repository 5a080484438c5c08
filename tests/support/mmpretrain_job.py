"""MMPretrain's own configs, unchanged, as small jobs (issue 12): generated data and the trainer's options.

The configs are read from the installed package (``mmpretrain::FAMILY/NAME.py``); only ``--cfg-options``
shrink them (:func:`trainer_options`): data root, batch size, workers and length (2 epochs, the images
used, and a warm-up that would outlast the run), plus a fixed seed and a log line per iteration. The data is a tiny
ImageNet in its native layout (:func:`write_imagenet`): 8 training images (4 iterations of 2 per epoch,
or of 1 per rank on 2 ranks; the families that only show they train use 4 of them, one iteration an
epoch) and 2 validation images. Runs happen in the MMPretrain environment
(:mod:`tests.support.mmpretrain_env`) with one thread per process, so that runs compare bit for bit.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from tests.support.local_launch import REPO, WEIGHTS_LINE, Watched
from tests.support.mmpretrain_env import mmpretrain_env

#: The config every launcher runs, and those of other families that train once.
RESNET18 = "mmpretrain::resnet/resnet18_8xb32_in1k.py"
FAMILIES = {
    "resnet": RESNET18,
    "deit": "mmpretrain::deit/deit-tiny_4xb256_in1k.py",
    "swin": "mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py",
    "mobilenet_v2": "mmpretrain::mobilenet_v2/mobilenet-v2_8xb32_in1k.py",
    "convnext": "mmpretrain::convnext/convnext-tiny_32xb128_in1k.py",
}
#: Configs whose schedule warms up for 20 epochs, then anneals from epoch 20 on (the swin schedule).
WARM_UP_20 = ("deit", "swin", "convnext")
CLASSES = ("n01440764", "n01443537")
TRAIN_PER_CLASS, VAL_PER_CLASS = 4, 1
ITERS_PER_EPOCH = 4  # 8 images / batch 2 (one process), or / (2 ranks x 1)
#: Seconds one training run may take (2 shared cores; a CUDA torch and MMPretrain to import).
TIMEOUT = 600

LOSS = re.compile(r"Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/\d+\].*?\sloss: (\S+)")
TOP1 = re.compile(r"Epoch\(val\).*?accuracy/top1: (\S+)")
RESUMED = re.compile(r"trainer: resumed from (\S+) at epoch=(\d+) iter=(\d+)")
PREEMPTED = re.compile(r"trainer: preempted at epoch=(\d+) iter=(\d+), saved (\S+)")


def write_imagenet(root: Path, train_per_class: int = TRAIN_PER_CLASS, val_per_class: int = VAL_PER_CLASS) -> Path:
    """ImageNet's layout under ``root``: ``train/<wnid>/<wnid>_<i>.JPEG``, ``val/...`` and the list files
    ``meta/train.txt``, ``meta/val.txt`` (``<wnid>/<file> <label>``; with them MMPretrain's ``ImageNet``
    needs no folder for each of its 1000 classes). Images are 40x48 noise, tinted by class."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "meta").mkdir(parents=True)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        lines = []
        for i in range(count):  # the classes alternate: the first N images hold both
            for label, wnid in enumerate(CLASSES):
                (root / split / wnid).mkdir(parents=True, exist_ok=True)
                pixels = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
                pixels[..., label] //= 3
                Image.fromarray(pixels).save(root / split / wnid / f"{wnid}_{i}.JPEG", quality=90)
                lines.append(f"{wnid}/{wnid}_{i}.JPEG {label}")
        (root / "meta" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def tiny_imagenet(tmp_path_factory) -> Path:
    """The tiny ImageNet of :func:`write_imagenet`, written once per session."""
    return write_imagenet(tmp_path_factory.mktemp("data") / "imagenet")


def trainer_options(data: Path, family: str = "resnet", per_process_batch: int = 2, samples: int | None = None
                    ) -> list[str]:
    """``--cfg-options`` that shrink a config of ``FAMILIES`` to 2 epochs on ``data`` (its first
    ``samples`` training images if given): the 20-epoch warm-up of ``WARM_UP_20`` ends after epoch 1."""
    options = [f"{loader}.{key}" for loader in ("train_dataloader", "val_dataloader")
               for key in (f"dataset.data_root={data}", "num_workers=0")]
    options += [f"train_dataloader.batch_size={per_process_batch}", "val_dataloader.batch_size=2",
                "train_cfg.max_epochs=2", "randomness.seed=0", "default_hooks.logger.interval=1"]
    if samples is not None:
        options.append(f"train_dataloader.dataset.indices={samples}")
    if family in WARM_UP_20:
        options += ["param_scheduler.0.end=1", "param_scheduler.1.begin=1"]
    return ["--cfg-options", *options]


def trainer(python: Path, config: str, work_dir: Path, *options: str) -> Watched:
    """``python -m trainer CONFIG --work-dir WORK_DIR OPTIONS`` in the MMPretrain environment, watched."""
    return Watched([str(python), "-m", "trainer", config, "--work-dir", str(work_dir), *options],
                   env=mmpretrain_env(python), cwd=REPO)


def kctl(python: Path, *args: str, **env: str) -> Watched:
    """``python -m kctl ARGS`` in the MMPretrain environment, watched."""
    return Watched([str(python), "-m", "kctl", *args], env=mmpretrain_env(python, **env), cwd=REPO)


def final_weights(log: str) -> dict[int, str]:
    """``{rank: sha256}`` of the ``final_weights_sha256`` lines."""
    return {int(m[1]): m[2] for m in WEIGHTS_LINE.finditer(log)}


def losses(log: str) -> list[float]:
    """The training loss of every logged iteration."""
    return [float(m[3]) for m in LOSS.finditer(log)]


def trained(log: str) -> list[tuple[int, int]]:
    """``(epoch, iteration in the epoch)`` of every logged training iteration."""
    return [(int(m[1]), int(m[2])) for m in LOSS.finditer(log)]


def assert_trained(log: str, iterations: int) -> None:
    """``iterations`` iterations with a finite loss, validation reporting top-1, the final weights line."""
    values = losses(log)
    assert len(values) == iterations and all(math.isfinite(v) for v in values), log[-3000:]
    top1 = [float(v) for v in TOP1.findall(log)]
    assert top1 and all(0 <= v <= 100 for v in top1), log[-3000:]
    assert len(final_weights(log)) == 1, log[-3000:]
