"""ResumableSampler: mmengine's DefaultSampler order, indices that carry (seed, epoch) to the dataset's
per-sample random generator, and a start part-way through an epoch."""

import pickle

import numpy as np
from mmengine.dataset import DefaultSampler

from trainer.datasets import ResumableSampler, SampleIndex
from trainer.registry import DATASETS, register_all_modules

register_all_modules()


def test_order_is_default_samplers_and_depends_on_seed_and_epoch_only():
    data = list(range(50))
    ours, theirs = ResumableSampler(data, seed=7), DefaultSampler(data, seed=7)
    for epoch in (0, 3):
        ours.set_epoch(epoch)
        theirs.set_epoch(epoch)
        assert list(ours) == list(theirs) and list(ours) == list(ours)
    assert list(ours) != list(ResumableSampler(data, seed=8))


def test_indices_carry_seed_and_epoch_through_pickling():
    sampler = ResumableSampler(range(10), seed=3)
    sampler.set_epoch(2)
    index = next(iter(sampler))
    assert isinstance(index, SampleIndex) and (index.seed, index.epoch) == (3, 2)
    copy = pickle.loads(pickle.dumps([index]))[0]  # as it travels to a DataLoader worker
    assert copy == index and copy.rng_key == [3, 2, int(index)] and hash(copy) == hash(int(index))


def test_set_start_skips_the_first_indices_of_one_pass_and_keeps_the_length():
    sampler = ResumableSampler(range(20), seed=0)
    full = list(sampler)
    sampler.set_start(6)
    assert list(sampler) == full[6:] and len(sampler) == 20
    assert list(sampler) == full  # the next pass is whole again


def test_dataset_gives_each_sample_its_own_generator():
    pipeline = [dict(type='RandomCrop', crop_size=8, padding=2), dict(type='PackInputs')]
    dataset = DATASETS.build(dict(type='Digits', split='train', indices=8, pipeline=pipeline))

    def crop(index):
        return dataset[index]['inputs'].numpy()

    same = SampleIndex(5, seed=0, epoch=1)
    np.random.seed(1)
    first = crop(same)
    np.random.seed(2)  # numpy's global state (different in every DataLoader worker) plays no part
    assert np.array_equal(first, crop(SampleIndex(5, seed=0, epoch=1)))
    crops = [crop(SampleIndex(5, seed=0, epoch=e)) for e in range(8)]
    assert len({c.tobytes() for c in crops}) > 1  # another epoch, another crop
