"""Per-sample transforms registered in ``trainer.registry.TRANSFORMS`` (MMPretrain / mmcv names).

Random transforms draw from ``results['rng']`` (a ``numpy.random.Generator``) when the sample carries
one, else from numpy's global random state; see :func:`trainer.datasets.transforms.base.get_rng`.
"""

from .base import BaseTransform, get_rng
from .formatting import PackInputs
from .loading import LoadImageFromFile
from .processing import CenterCrop, RandomCrop, RandomFlip, RandomResizedCrop, Resize, ResizeEdge
from .seeding import SeedSampleRandomness

__all__ = [
    "BaseTransform", "CenterCrop", "LoadImageFromFile", "PackInputs", "RandomCrop", "RandomFlip",
    "RandomResizedCrop", "Resize", "ResizeEdge", "SeedSampleRandomness", "get_rng",
]
