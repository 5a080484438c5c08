"""Model building blocks shared by backbones and heads, and the data preprocessor."""

from .data_preprocessor import ClsDataPreprocessor
from .layers import DropPath, build_conv_layer, build_norm_layer

__all__ = ["ClsDataPreprocessor", "DropPath", "build_conv_layer", "build_norm_layer"]
