"""Datasets and transforms registered in ``trainer.registry`` (``DATASETS``, ``TRANSFORMS``).

Importing this package registers them. Samplers come from mmengine (``DefaultSampler``,
``InfiniteSampler``) through the registry's parent.
"""

from .base_dataset import BaseDataset
from .custom import CustomDataset
from .digits import Digits
from .synthetic import SyntheticDataset
from .transforms import (CenterCrop, LoadImageFromFile, PackInputs, RandomCrop, RandomFlip, RandomResizedCrop,
                         Resize, ResizeEdge)

__all__ = [
    "BaseDataset", "CenterCrop", "CustomDataset", "Digits", "LoadImageFromFile", "PackInputs", "RandomCrop",
    "RandomFlip", "RandomResizedCrop", "Resize", "ResizeEdge", "SyntheticDataset",
]
