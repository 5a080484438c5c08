"""Visualizers registered in the ``trainer`` scope."""

from .visualizer import Visualizer

__all__ = ["Visualizer"]
