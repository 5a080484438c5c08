"""Evaluation: metrics for mmengine's Evaluator. Importing this package registers them."""

from .metrics import Accuracy

__all__ = ["Accuracy"]
