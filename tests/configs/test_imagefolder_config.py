"""The ImageFolder example config trains end to end on a tiny folder of PNGs written here."""

import json
from pathlib import Path

import numpy as np
from mmengine.config import Config
from PIL import Image

from trainer.registry import register_all_modules

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs' / 'resnet' / 'resnet18_1xb32_imagefolder.py'


def make_image_folder(root: Path, classes=('circle', 'square', 'stripe'), per_class=(6, 2)):
    rng = np.random.default_rng(0)
    for split, count in zip(('train', 'val'), per_class):
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                img = rng.integers(0, 60, size=(20 + i, 24, 3), dtype=np.uint8)
                img[..., c] += 150  # one colour per class
                Image.fromarray(img).save(root / split / name / f'{i}.png')


def test_imagefolder_example_trains_one_epoch(tmp_path):
    from mmengine.runner import Runner

    make_image_folder(tmp_path / 'my_images')
    cfg = Config.fromfile(str(CONFIG))
    assert cfg.data_root == 'data/my_images'
    for loader in ('train_dataloader', 'val_dataloader'):
        cfg[loader].dataset.data_root = str(tmp_path / 'my_images')
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
    cfg.model.head.num_classes = 3
    cfg.data_preprocessor.num_classes = 3
    cfg.train_cfg.max_epochs = 1
    cfg.train_dataloader.batch_size = 6
    cfg.work_dir = str(tmp_path / 'work')
    register_all_modules()

    runner = Runner.from_cfg(cfg)
    assert runner.train_dataloader.dataset.metainfo['classes'] == ('circle', 'square', 'stripe')
    assert len(runner.train_dataloader.dataset) == 18 and len(runner.val_dataloader.dataset) == 6
    runner.train()

    work = Path(cfg.work_dir)
    assert (work / 'epoch_1.pth').is_file()
    assert (work / 'last_checkpoint').read_text().strip().endswith('epoch_1.pth')
    (scalars, ) = work.glob('*/vis_data/scalars.json')
    records = [json.loads(line) for line in scalars.read_text().splitlines()]
    top1 = [r['accuracy/top1'] for r in records if 'accuracy/top1' in r]
    losses = [r['loss'] for r in records if 'loss' in r]
    assert len(top1) == 1 and 0.0 <= top1[0] <= 100.0
    assert losses and all(np.isfinite(losses))
