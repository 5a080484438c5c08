"""CustomDataset: ImageFolder layout and annotation files, with and without labels."""

import numpy as np
import pytest
from PIL import Image

from trainer.registry import DATASETS, register_all_modules

register_all_modules()


def write_png(path, value, size=(6, 4)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, dtype=np.uint8)).save(path)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / 'data'
    write_png(root / 'train' / 'cat' / 'a.png', 10)
    write_png(root / 'train' / 'cat' / 'nested' / 'b.PNG', 20)
    write_png(root / 'train' / 'dog' / 'c.png', 30)
    (root / 'train' / 'dog' / 'notes.txt').write_text('not an image')
    write_png(root / 'train' / 'emu' / 'd.jpg', 40)
    return root


def test_image_folder_classes_and_labels(folder):
    ds = DATASETS.build(dict(type='CustomDataset', data_root=str(folder), data_prefix='train',
                             pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')]))
    assert ds.metainfo['classes'] == ('cat', 'dog', 'emu')
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    rel = [(info['img_path'].split('train/')[-1], info['gt_label']) for info in infos]
    assert rel == [('cat/a.png', 0), ('cat/nested/b.PNG', 0), ('dog/c.png', 1), ('emu/d.jpg', 2)]
    item = ds[2]
    assert tuple(item['inputs'].shape) == (3, 4, 6)
    assert int(item['inputs'][0, 0, 0]) == 30 and item['data_samples'].gt_label.item() == 1
    assert item['data_samples'].ori_shape == (4, 6)


def test_annotation_file_with_and_without_labels(folder):
    (folder / 'ann.txt').write_text('dog/c.png 1\ncat/a.png 0\n\n')
    ds = DATASETS.build(dict(type='CustomDataset', data_root=str(folder), data_prefix='train',
                             ann_file='ann.txt', metainfo=dict(classes=('cat', 'dog'))))
    assert [(d['img_path'].split('train/')[-1], d['gt_label'])
            for d in (ds.get_data_info(i) for i in range(len(ds)))] == [('dog/c.png', 1), ('cat/a.png', 0)]
    assert ds.CLASSES == ('cat', 'dog') and ds.class_to_idx == {'cat': 0, 'dog': 1}

    (folder / 'list.txt').write_text('cat/a.png\nemu/d.jpg\n')
    unlabeled = DATASETS.build(dict(type='CustomDataset', data_root=str(folder), data_prefix='train',
                                    ann_file='list.txt', with_label=False))
    assert len(unlabeled) == 2 and 'gt_label' not in unlabeled.get_data_info(0)


def test_classes_from_a_file_and_count_check(folder, tmp_path):
    (tmp_path / 'classes.txt').write_text('kitten\npuppy\nbird\n')
    ds = DATASETS.build(dict(type='CustomDataset', data_root=str(folder / 'train'),
                             classes=str(tmp_path / 'classes.txt')))
    assert ds.CLASSES == ('kitten', 'puppy', 'bird') and len(ds) == 4
    with pytest.raises(ValueError, match="number of subfolders"):
        DATASETS.build(dict(type='CustomDataset', data_root=str(folder / 'train'), classes=['a', 'b']))


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    (tmp_path / 'empty' / 'cls').mkdir(parents=True)
    with pytest.raises(RuntimeError, match='Found 0 files'):
        DATASETS.build(dict(type='CustomDataset', data_root=str(tmp_path / 'empty')))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        DATASETS.build(dict(type='CustomDataset', data_root=str(tmp_path / 'nope')))
