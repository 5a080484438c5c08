"""``Visualizer``: mmengine's, with its matplotlib figure made on first use.

mmengine's ``Visualizer.__init__`` builds a matplotlib figure for drawing, which imports matplotlib:
about 0.5 s of every run's start-up (much more on slow file systems), although a training run
that only logs scalars and the config never draws. This one is registered under the same name in the
``trainer`` scope and makes that figure the first time something reads it (``set_image``,
``draw_*``, ``get_image``), so runs without drawing never import matplotlib. :class:`LazyFigure` does
that for any subclass of mmengine's (MMPretrain's ``UniversalVisualizer``:
:mod:`trainer.visualization.universal`).
"""

from mmengine.visualization import Visualizer as MMEngineVisualizer

from trainer.registry import VISUALIZERS

#: The attributes mmengine's __init__ sets from the figure; they are made together, on first read.
_FIGURE_ATTRS = ("fig_save_canvas", "fig_save", "ax_save", "dpi")


class _NoFigureYet:
    """What mmengine's ``__init__`` sees as the figure (it only asks for its dpi)."""

    @staticmethod
    def get_dpi():
        return None


def _figure_attr(name: str) -> property:
    def get(self):
        if name not in self._figure:
            self._make_figure()
        return self._figure[name]

    def set(self, value):
        self._figure[name] = value

    return property(get, set, doc=f"mmengine's ``{name}``, made on first read.")


class LazyFigure:
    """Mixin before a subclass of mmengine's ``Visualizer`` (same arguments and behaviour): the drawing
    figure is made on first use.

    Args:
        name (str): The instance name. Defaults to ``'visualizer'``.
        image (np.ndarray, optional): An image to draw on. Defaults to None.
        vis_backends (list[dict], optional): Visual backends, e.g. ``[dict(type='LocalVisBackend')]``.
            Defaults to None.
        save_dir (str, optional): Where the backends save. Defaults to None.
        fig_save_cfg (dict): Arguments of the drawing figure. Defaults to ``dict(frameon=False)``.
        fig_show_cfg (dict): Arguments of the figure ``show`` opens. Defaults to ``dict(frameon=False)``.
    """

    fig_save_canvas, fig_save, ax_save, dpi = (_figure_attr(name) for name in _FIGURE_ATTRS)

    def __init__(self, name="visualizer", image=None, vis_backends=None, save_dir=None,
                 fig_save_cfg=dict(frameon=False), fig_show_cfg=dict(frameon=False)):
        self._figure = {}
        self._deferring = True
        super().__init__(name, None, vis_backends, save_dir, fig_save_cfg, fig_show_cfg)
        self._deferring = False
        self._figure.clear()  # what __init__ stored came from _NoFigureYet
        if image is not None:
            self.set_image(image)

    def _initialize_fig(self, fig_cfg) -> tuple:
        if self._deferring:
            return None, _NoFigureYet, None
        return super()._initialize_fig(fig_cfg)

    def _make_figure(self) -> None:
        canvas, fig, ax = super()._initialize_fig(self.fig_save_cfg)
        self._figure.update(fig_save_canvas=canvas, fig_save=fig, ax_save=ax, dpi=fig.get_dpi())


@VISUALIZERS.register_module()
class Visualizer(LazyFigure, MMEngineVisualizer):
    """mmengine's ``Visualizer``: same arguments and behaviour, figure made on first use (:class:`LazyFigure`)."""
