"""Models registered in ``trainer.registry.MODELS``: classifiers, backbones, necks, heads, losses and the
data preprocessor. Importing this package registers them."""

from .backbones import ResNet, ResNet_CIFAR
from .classifiers import ImageClassifier
from .heads import ClsHead, LinearClsHead
from .losses import CrossEntropyLoss, LabelSmoothLoss
from .necks import GlobalAveragePooling
from .utils import ClsDataPreprocessor

__all__ = [
    "ClsDataPreprocessor", "ClsHead", "CrossEntropyLoss", "GlobalAveragePooling", "ImageClassifier",
    "LabelSmoothLoss", "LinearClsHead", "ResNet", "ResNet_CIFAR",
]
