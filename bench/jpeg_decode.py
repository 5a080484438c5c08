"""JPEG data path: images/s with CPU decoding against GPU decoding, on generated JPEGs of ImageNet-like sizes.

Generates ``--images`` JPEG files (quality 90, sizes like ImageNet's photos: 500x375, 375x500, 500x333,
640x480 ...; smooth random content with noise, so they compress like photos, ~100 KB each) in class
folders, then runs the training data path of a 224x224 ImageNet config through the trainer's own parts:
``CustomDataset`` -> ``LoadImageFromFile`` -> ``RandomResizedCrop(224)`` -> ``RandomFlip`` ->
``PackInputs`` in ``--workers`` DataLoader workers (pinned memory), then ``ClsDataPreprocessor`` on the
device (normalisation). Two decoders:

- ``cpu``: ``LoadImageFromFile`` decodes with OpenCV in the workers (the default);
- ``gpu``: ``imdecode_backend='nvjpeg'`` (``--gpu-decode``): the workers read the files and choose the
  crops and flips; the data preprocessor decodes each batch with nvJPEG (``torchvision.io.decode_jpeg``
  on CUDA) and crops, flips and resizes on the GPU. Skipped, with the reason, where it cannot run.

img/s is counted over the batches after the first ``--warmup`` (which start the workers), up to the
moment the device has finished the last one.

Usage (from the repository root)::

    python bench/jpeg_decode.py                          # CUDA, 16 workers, 4096 images at 224x224
    python bench/jpeg_decode.py --device cpu --images 64 --workers 0 --size 32 --batch-size 16 --warmup 1
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.results import record  # noqa: E402

#: (width, height) of the generated images, drawn in turn with a random jitter: common ImageNet sizes.
SIZES = [(500, 375), (375, 500), (500, 333), (333, 500), (500, 400), (640, 480), (500, 500), (400, 300)]
CLASSES = 10


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--images", type=int, default=4096, help="JPEG files to generate (and to read once)")
    parser.add_argument("--size", type=int, default=224, help="crop size (RandomResizedCrop)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=16, help="DataLoader workers")
    parser.add_argument("--warmup", type=int, default=8, help="batches not measured")
    parser.add_argument("--data-dir", help="where the JPEGs are generated (default: a temporary folder, removed)")
    parser.add_argument("--json", metavar="FILE", help="record the figures in this JSON file (bench/results.py)")
    parser.add_argument("--label", default="decode", help="the section of --json")
    args = parser.parse_args(argv)
    if args.images < args.batch_size * (args.warmup + 1):
        parser.error("--images must give more batches than --warmup")
    return args


def make_image(task) -> int:
    """Write the JPEG ``path`` of index ``index``; return its size in bytes."""
    import cv2

    index, path = task
    rng = np.random.default_rng(index)
    width, height = SIZES[index % len(SIZES)]
    width, height = (int(x * rng.uniform(0.85, 1.0)) for x in (width, height))
    base = rng.integers(0, 256, (rng.integers(4, 12), rng.integers(4, 12), 3), dtype=np.uint8)
    image = cv2.resize(base, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    image = np.clip(image + rng.normal(0, 16, image.shape), 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    encoded.tofile(path)
    return encoded.size


def make_images(root: Path, count: int, workers: int) -> float:
    """Generate ``count`` JPEGs in ``root/<class>/``; return their mean size in KB."""
    for c in range(CLASSES):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
    tasks = [(i, root / f"class{i % CLASSES}" / f"{i:06d}.jpg") for i in range(count)]
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            sizes = pool.map(make_image, tasks, chunksize=16)
    else:
        sizes = [make_image(task) for task in tasks]
    return statistics.fmean(sizes) / 1024


def data_path(args, root: Path, decoder: str) -> float:
    """img/s of the data path with ``decoder`` (``cv2`` or ``nvjpeg``)."""
    import torch
    from mmengine.runner import Runner

    from trainer.registry import MODELS

    loader = Runner.build_dataloader(dict(
        batch_size=args.batch_size, num_workers=args.workers, persistent_workers=False,
        pin_memory=args.device == "cuda",
        collate_fn=dict(type="default_collate"), sampler=dict(type="DefaultSampler", shuffle=True),
        dataset=dict(type="CustomDataset", data_root=str(root), pipeline=[
            dict(type="LoadImageFromFile", imdecode_backend=decoder),
            dict(type="RandomResizedCrop", scale=args.size),
            dict(type="RandomFlip", prob=0.5, direction="horizontal"),
            dict(type="PackInputs")])), seed=0)
    device = torch.device(args.device)
    preprocessor = MODELS.build(dict(type="ClsDataPreprocessor", mean=[123.675, 116.28, 103.53],
                                     std=[58.395, 57.12, 57.375], to_rgb=True)).to(device)
    start = None
    images = 0
    for index, batch in enumerate(loader):
        if index == args.warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
        inputs = preprocessor(batch, True)["inputs"]
        if start is not None:
            images += inputs.size(0)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return images / (time.perf_counter() - start)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    from mmengine.registry import init_default_scope

    from trainer.performance import gpu_decode_problem
    from trainer.registry import register_all_modules

    register_all_modules()
    init_default_scope("trainer")
    root = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="jpeg_decode_"))
    try:
        begin = time.perf_counter()
        kilobytes = make_images(root, args.images, max(args.workers, 1))
        print(f"jpeg: {args.images} JPEGs, {kilobytes:.0f} KB on average, generated in "
              f"{time.perf_counter() - begin:.1f} s; crops {args.size}x{args.size}, batch {args.batch_size}, "
              f"{args.workers} workers, {args.device}", flush=True)
        result = dict(images=args.images, mean_file_kb=kilobytes, size=f"{args.size}x{args.size}",
                      workers=args.workers, batch_size=args.batch_size, device=args.device)
        result["cpu"] = dict(img_s=data_path(args, root, "cv2"))
        print(f"jpeg: cpu decoding (OpenCV in the workers): {result['cpu']['img_s']:.1f} img/s", flush=True)
        problem = gpu_decode_problem(args.device == "cuda")
        if problem:
            result["gpu"] = dict(img_s=None, note=f"skipped: {problem}")
            print(f"jpeg: gpu decoding skipped: {problem}", flush=True)
        else:
            result["gpu"] = dict(img_s=data_path(args, root, "nvjpeg"))
            print(f"jpeg: gpu decoding (nvJPEG in the data preprocessor): {result['gpu']['img_s']:.1f} img/s",
                  flush=True)
        record(args.json, args.label, result)
    finally:
        if not args.data_dir:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
