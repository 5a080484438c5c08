"""``UniversalVisualizer``: MMPretrain's, with its matplotlib figure made on first use (:class:`LazyFigure`).

MMPretrain's configs name ``UniversalVisualizer``, whose construction imports matplotlib and builds a
figure (0.5-1.7 s of start-up on 2 CPU cores) that a training run never draws on. Registered in the
``trainer`` scope under the same name; :func:`trainer.scope.adapt_to_scope` imports this module for a
config of the ``mmpretrain`` scope, and :func:`trainer.scope.qualify_runtime_types` then gives the config
this subclass. Imports MMPretrain: never imported otherwise.
"""

from mmpretrain.visualization import UniversalVisualizer as MMPretrainUniversalVisualizer

from trainer.registry import VISUALIZERS
from trainer.visualization.visualizer import LazyFigure


@VISUALIZERS.register_module()
class UniversalVisualizer(LazyFigure, MMPretrainUniversalVisualizer):
    """MMPretrain's ``UniversalVisualizer``: same arguments and behaviour, figure made on first use."""
