"""Backbones: ``ResNet`` (224x224 ImageNet-style) and ``ResNet_CIFAR`` (small images)."""

from .resnet import BasicBlock, Bottleneck, ResLayer, ResNet
from .resnet_cifar import ResNet_CIFAR

__all__ = ["BasicBlock", "Bottleneck", "ResLayer", "ResNet", "ResNet_CIFAR"]
