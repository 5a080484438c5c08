"""The shipped digits: file integrity, split, image format, and the in-memory path."""

import hashlib
import os

import numpy as np

from trainer.datasets.digits import DATA_DIR, load_digits
from trainer.registry import DATASETS, register_all_modules

register_all_modules()

SHA256 = '09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22'


def test_shipped_file_is_the_documented_one():
    path = os.path.join(DATA_DIR, 'digits.csv.gz')
    with open(path, 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest() == SHA256
    with open(os.path.join(DATA_DIR, 'README.md')) as f:
        assert SHA256 in f.read()


def test_split_is_disjoint_stratified_and_complete():
    train = DATASETS.build(dict(type='Digits', split='train'))
    test = DATASETS.build(dict(type='Digits', split='test'))
    assert (len(train), len(test)) == (1433, 364)
    assert len(train) + len(test) == 1797
    assert train.metainfo['classes'] == tuple('0123456789')
    test_counts = np.bincount(test.get_gt_labels(), minlength=10)
    assert test_counts.min() >= 35 and test_counts.max() <= 37
    # disjoint: together they are exactly the file's images
    images, labels = load_digits(os.path.join(DATA_DIR, 'digits.csv.gz'))
    ours = sorted(d['img'].tobytes() + bytes([d['gt_label']])
                  for ds in (train, test) for d in (ds.get_data_info(i) for i in range(len(ds))))
    theirs = sorted(img.tobytes() + bytes([int(lab)]) for img, lab in zip(images, labels))
    assert ours == theirs


def test_images_are_uint8_hwc_scaled_to_255():
    images, labels = load_digits(os.path.join(DATA_DIR, 'digits.csv.gz'))
    assert images.shape == (1797, 8, 8, 3) and images.dtype == np.uint8
    assert images.max() == 255 and images.min() == 0
    assert np.array_equal(images[..., 0], images[..., 2])  # grey over 3 channels
    assert set(np.unique(labels)) == set(range(10))


def test_pipeline_output_and_cheap_access():
    import time
    ds = DATASETS.build(dict(type='Digits', split='test', pipeline=[dict(type='PackInputs')]))
    item = ds[5]
    assert tuple(item['inputs'].shape) == (3, 8, 8)
    assert item['data_samples'].gt_label.item() == ds.get_data_info(5)['gt_label']
    assert item['data_samples'].sample_idx == 5
    start = time.perf_counter()
    for i in range(len(ds)):
        ds[i]
    # the whole test split through the pipeline: well under a second (in memory, no decoding)
    assert time.perf_counter() - start < 2.0
