"""Seeding Python's, numpy's and torch's global random generators from a key of integers.

Used where randomness must be a function of a position in training rather than of how much was drawn
before: every training iteration (:class:`trainer.hooks.IterationSeedHook`) and every sample of a
pipeline of another library (:class:`trainer.datasets.transforms.SeedSampleRandomness`).
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_global_generators(key: list[int]) -> None:
    """Seed ``random``, ``numpy.random`` and torch's default generator from ``key`` (e.g.
    ``[seed, iteration]``) through ``numpy.random.SeedSequence``, which mixes every entry."""
    seed = int(np.random.SeedSequence(key).generate_state(1, np.uint64)[0])
    random.seed(seed)
    np.random.seed(seed % 2**32)
    # what torch.manual_seed does for the devices used here, without its per-call checks of every
    # other backend (mps, xpu, privateuse1): this runs once per iteration
    torch.default_generator.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)  # queued until CUDA starts, as torch.manual_seed does
