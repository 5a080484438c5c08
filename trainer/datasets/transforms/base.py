"""Base class of the per-sample transforms, and the random source they draw from."""

from abc import ABCMeta, abstractmethod
from typing import Optional

import numpy as np


class BaseTransform(metaclass=ABCMeta):
    """A pipeline step: takes the sample dict, returns it (modified) or None to drop the sample."""

    def __call__(self, results: dict) -> Optional[dict]:
        return self.transform(results)

    @abstractmethod
    def transform(self, results: dict) -> Optional[dict]:
        """Process one sample."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def get_rng(results: dict):
    """The random source of a sample.

    ``results['rng']`` (a ``numpy.random.Generator``) when the dataset or sampler put one there, so that
    augmentation can be a function of (seed, epoch, sample index); otherwise numpy's global random state,
    which mmengine seeds from ``randomness.seed`` (and per DataLoader worker). Transforms only call
    ``random()`` and ``uniform()``, which both provide.
    """
    return results.get("rng", np.random)


def randint(rng, low: int, high: int) -> int:
    """A uniform integer in ``[low, high)`` from ``rng.random()``."""
    return low + min(int(rng.random() * (high - low)), high - low - 1)
