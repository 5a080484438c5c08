"""Metrics registered in ``trainer.registry.METRICS``."""

from .single_label import Accuracy

__all__ = ["Accuracy"]
