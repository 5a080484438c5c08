"""Classifiers: whole models the Runner trains."""

from .image import ImageClassifier

__all__ = ["ImageClassifier"]
