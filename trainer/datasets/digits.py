"""``Digits``: the 8x8 UCI handwritten digits shipped in ``trainer/data`` (1,797 images, 10 classes)."""

import gzip
import os.path as osp
from typing import List

import numpy as np

from trainer.registry import DATASETS

from .base_dataset import BaseDataset

DATA_DIR = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), "data")
FILENAME = "digits.csv.gz"
NUM_IMAGES = 1797
TEST_EVERY = 5  # the 1st, 6th, 11th ... image of each class is a test image: 364 test, 1,433 train


def load_digits(path: str) -> tuple:
    """Read the CSV (64 pixel values 0..16 then the label, one image per line).

    Returns:
        tuple[np.ndarray, np.ndarray]: Images ``(N, 8, 8, 3)`` uint8 (0..16 scaled to 0..255, grey
        replicated over 3 channels) and labels ``(N,)`` int64.
    """
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    pixels = np.rint(table[:, :64] * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 8, 8, 1)
    return np.ascontiguousarray(np.repeat(pixels, 3, axis=3)), table[:, 64].astype(np.int64)


@DATASETS.register_module()
class Digits(BaseDataset):
    """Optical Recognition of Handwritten Digits (UCI; scikit-learn's copy), held in memory.

    Samples are ``{'img': uint8 array (8, 8, 3), 'gt_label': int}``, so the pipeline needs no
    ``LoadImageFromFile``. The split is fixed and deterministic: an image is a test image
    when it is the 1st, 6th, 11th ... image of its class in the file (every 5th, stratified: 364 test images,
    35 to 37 per class), else a training image (1,433).

    Args:
        data_root (str): Directory holding ``digits.csv.gz``. Defaults to '' (the copy shipped in
            ``trainer/data``).
        split (str): ``'train'`` or ``'test'``. Defaults to 'train'.
        metainfo (dict, optional): Meta information; class names default to ``'0'`` ... ``'9'``.
            Defaults to None.
        **kwargs: Other :class:`BaseDataset` arguments (``pipeline``, ``test_mode``, ``indices`` ...).
    """

    METAINFO = {"classes": tuple(str(i) for i in range(10))}

    def __init__(self, data_root: str = "", split: str = "train", metainfo: dict = None, **kwargs):
        if split not in ("train", "test"):
            raise ValueError(f"Digits: split must be 'train' or 'test', got {split!r}")
        self.split = split
        super().__init__(ann_file=FILENAME, metainfo=metainfo, data_root=data_root or DATA_DIR, **kwargs)

    def load_data_list(self) -> List[dict]:
        """The samples of ``split``, in file order."""
        images, labels = load_digits(self.ann_file)
        rank_in_class = np.empty(len(labels), dtype=np.int64)
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            rank_in_class[members] = np.arange(len(members))
        is_test = rank_in_class % TEST_EVERY == 0
        keep = np.flatnonzero(is_test if self.split == "test" else ~is_test)
        return [{"img": images[i], "gt_label": int(labels[i])} for i in keep]
