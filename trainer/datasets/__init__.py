"""Datasets, samplers and transforms registered in ``trainer.registry`` (``DATASETS``, ``DATA_SAMPLERS``,
``TRANSFORMS``).

Importing this package registers them. ``ResumableSampler`` is the trainer's; mmengine's samplers
(``DefaultSampler``, ``InfiniteSampler``) come through the registry's parent.
"""

from .base_dataset import BaseDataset
from .custom import CustomDataset
from .digits import Digits
from .samplers import ResumableSampler, SampleIndex
from .synthetic import SyntheticDataset
from .transforms import (CenterCrop, LoadImageFromFile, PackInputs, RandomCrop, RandomFlip, RandomResizedCrop,
                         Resize, ResizeEdge, SeedSampleRandomness)

__all__ = [
    "BaseDataset", "CenterCrop", "CustomDataset", "Digits", "LoadImageFromFile", "PackInputs", "RandomCrop",
    "RandomFlip", "RandomResizedCrop", "Resize", "ResizeEdge", "ResumableSampler", "SampleIndex",
    "SeedSampleRandomness", "SyntheticDataset",
]
