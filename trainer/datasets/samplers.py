"""``ResumableSampler``: data order and per-sample randomness as functions of (seed, epoch, sample).

A run resumed from a checkpoint must draw the same samples in the same order, with the same random
augmentation, as the run it continues, however many samples the processes drew before. The sampler's
order depends on ``(seed, epoch)`` only (as mmengine's ``DefaultSampler``), and every index it yields is
a :class:`SampleIndex`: an ``int`` that also carries the seed and epoch, and goes with the index to
DataLoader workers. :class:`trainer.datasets.BaseDataset` turns it into ``results['rng'] =
numpy.random.default_rng([seed, epoch, index])`` before the pipeline, which the random transforms draw
from. The loop (:class:`trainer.loops.EpochBasedTrainLoop`) continues an interrupted epoch with
:meth:`ResumableSampler.set_start`, without loading the samples already trained.
"""

from __future__ import annotations

from typing import Iterator, Optional, Sized

from mmengine.dataset import DefaultSampler

from trainer.registry import DATA_SAMPLERS


class SampleIndex(int):
    """A dataset index drawn for ``epoch`` of a run seeded with ``seed``.

    Compares, hashes and indexes as the plain ``int``; pickles with its ``seed`` and ``epoch``.

    Args:
        index (int): The index.
        seed (int): The sampler's seed.
        epoch (int): The epoch (0-based) it was drawn for.
    """

    def __new__(cls, index: int, seed: int, epoch: int):
        self = super().__new__(cls, index)
        self.seed = seed
        self.epoch = epoch
        return self

    def __reduce__(self):
        return SampleIndex, (int(self), self.seed, self.epoch)

    @property
    def rng_key(self) -> list[int]:
        """``[seed, epoch, index]``: the entropy of the sample's random generator."""
        return [self.seed, self.epoch, int(self)]


@DATA_SAMPLERS.register_module()
class ResumableSampler(DefaultSampler):
    """mmengine's ``DefaultSampler`` (same arguments, same order) whose indices are
    :class:`SampleIndex` es, and which can start an epoch part-way.

    The order of epoch ``e`` is a permutation seeded with ``seed + e`` (or ``0..N-1`` without
    ``shuffle``), padded to a multiple of the world size when ``round_up``; rank ``r`` of ``w`` takes every
    ``w``-th index from position ``r``.

    Args:
        dataset (Sized): The dataset.
        shuffle (bool): Shuffle every epoch. Defaults to True.
        seed (int, optional): Seed of the order, the same on every rank. Defaults to None (one random
            seed, shared by the ranks; the Runner passes ``randomness.seed``).
        round_up (bool): Pad the order to a multiple of the world size so that every rank gets as many
            samples. Defaults to True.
    """

    def __init__(self, dataset: Sized, shuffle: bool = True, seed: Optional[int] = None,
                 round_up: bool = True) -> None:
        super().__init__(dataset, shuffle=shuffle, seed=seed, round_up=round_up)
        self._start = 0

    def set_start(self, start: int) -> None:
        """Make the next pass over the epoch skip this rank's first ``start`` indices (that pass only).

        ``len()`` stays the length of the whole epoch, so DataLoader and log lines count the epoch's
        batches as in an uninterrupted pass.
        """
        self._start = start

    def __iter__(self) -> Iterator[SampleIndex]:
        start, self._start = self._start, 0
        indices = list(super().__iter__())[start:]
        return (SampleIndex(i, self.seed, self.epoch) for i in indices)
