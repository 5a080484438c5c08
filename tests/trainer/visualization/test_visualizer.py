"""The trainer's ``Visualizer``: mmengine's, with the drawing figure made on first use."""

import numpy as np
import pytest

from tests.support.trainer_runtime import lines_with, run_trainer, write_config


def test_a_training_run_never_imports_matplotlib(tmp_path):
    config = write_config(tmp_path / "cfg")
    code = ("import sys\nfrom trainer.cli import main\nrc = main([sys.argv[1], '--work-dir', sys.argv[2]])\n"
            "print('probe: rc', rc, 'matplotlib', 'matplotlib' in sys.modules)\n")
    proc = run_trainer("-c", code, config, tmp_path / "wd", module=None)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert lines_with(proc.stdout, "probe:") == ["probe: rc 0 matplotlib False"]
    assert list((tmp_path / "wd").glob("*/vis_data/config.py"))  # LocalVisBackend still wrote


@pytest.fixture
def visualizer():
    from trainer.registry import VISUALIZERS, register_all_modules

    register_all_modules()
    vis = VISUALIZERS.build(dict(type="Visualizer", name="test_lazy_figure"))
    yield vis
    vis.close()


def test_the_visualizer_of_the_trainer_scope_is_this_one(visualizer):
    from trainer.visualization import Visualizer

    assert type(visualizer) is Visualizer
    assert visualizer._figure == {}  # nothing drawn, no figure


def test_drawing_makes_the_figure_and_works_as_mmengines(visualizer):
    from mmengine.visualization import Visualizer as MMEngineVisualizer

    image = np.full((20, 30, 3), 255, dtype=np.uint8)
    reference = MMEngineVisualizer(name="test_reference", fig_save_cfg=dict(frameon=False))
    for vis in (visualizer, reference):
        vis.set_image(image)
        vis.draw_bboxes(np.array([[2, 2, 12, 12]]), edge_colors="r")
    assert visualizer.dpi == reference.dpi and visualizer.dpi > 0
    drawn, expected = visualizer.get_image(), reference.get_image()
    assert drawn.shape == (20, 30, 3) and (drawn != 255).any()
    np.testing.assert_array_equal(drawn, expected)


def test_an_image_given_at_construction_is_drawn_on():
    from trainer.visualization import Visualizer

    image = np.zeros((8, 16, 3), dtype=np.uint8)
    vis = Visualizer(name="test_lazy_with_image", image=image)
    np.testing.assert_array_equal(vis.get_image(), image)
