"""``CustomDataset``: a user's images, as class sub-folders or an annotation file (MMPretrain's layout)."""

import os
import os.path as osp
from typing import List, Sequence, Tuple, Union

from mmengine.fileio import list_from_file
from mmengine.logging import MMLogger

from trainer.registry import DATASETS

from .base_dataset import BaseDataset

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif")


def find_folders(root: str) -> Tuple[List[str], dict]:
    """Sub-folders of ``root``, sorted, and their indices: ``(['cat', 'dog'], {'cat': 0, 'dog': 1})``."""
    folders = sorted(e.name for e in os.scandir(root) if e.is_dir())
    return folders, {name: i for i, name in enumerate(folders)}


def list_files(root: str, is_valid_file) -> List[str]:
    """Files under ``root`` (recursively) accepted by ``is_valid_file``, relative to ``root``, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        rel = osp.relpath(dirpath, root)
        found += [f if rel == "." else osp.join(rel, f) for f in filenames if is_valid_file(f)]
    return sorted(found)


@DATASETS.register_module()
class CustomDataset(BaseDataset):
    """A classification dataset made of image files.

    Two layouts, as in MMPretrain:

    1. Without ``ann_file``, class sub-folders (ImageFolder)::

           data_root/data_prefix/
           ├── cat/ 001.png 002.png ...
           └── dog/ 001.png ...

       Class names are the sorted folder names; labels their indices.
    2. With ``ann_file``, one ``path label`` line per sample, paths relative to ``data_root/data_prefix``::

           cat/001.png 0
           dog/001.png 1

       Give the class names in ``metainfo=dict(classes=...)`` (or ``classes=``).

    With ``with_label=False`` the annotation lines are bare paths (or every image under the folder is
    taken) and samples have no ``gt_label``.

    Args:
        data_root (str): Root of ``data_prefix`` and ``ann_file``. Defaults to ''.
        data_prefix (str | dict): Image directory relative to ``data_root``. Defaults to ''.
        ann_file (str): Annotation file relative to ``data_root``; '' means the folder layout.
            Defaults to ''.
        with_label (bool): Whether samples have labels. Defaults to True.
        extensions (Sequence[str]): Accepted file extensions (case-insensitive). Defaults to
            ``('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif')``.
        metainfo (dict, optional): Meta information, e.g. class names. Defaults to None.
        lazy_init (bool): Defer scanning the files to first use. Defaults to False.
        **kwargs: Other :class:`BaseDataset` arguments (``pipeline``, ``test_mode``, ``indices`` ...).
    """

    def __init__(self,
                 data_root: str = "",
                 data_prefix: Union[str, dict] = "",
                 ann_file: str = "",
                 with_label: bool = True,
                 extensions: Sequence[str] = IMG_EXTENSIONS,
                 metainfo: dict = None,
                 lazy_init: bool = False,
                 **kwargs):
        if not (ann_file or data_prefix or data_root):
            raise ValueError("CustomDataset: one of `ann_file`, `data_root` and `data_prefix` must be specified.")
        self.extensions = tuple({e.lower() for e in extensions})
        self.with_label = with_label
        # Load after the base class has joined the paths (it calls load_data_list in full_init).
        super().__init__(ann_file=ann_file, metainfo=metainfo, data_root=data_root, data_prefix=data_prefix,
                         lazy_init=True, **kwargs)
        if not lazy_init:
            self.full_init()

    def is_valid_file(self, filename: str) -> bool:
        """Whether ``filename`` has one of the accepted extensions."""
        return filename.lower().endswith(self.extensions)

    def _find_samples(self) -> list:
        """Samples of the folder layout: ``(relative path, label)`` pairs, or bare paths without labels."""
        root = self.img_prefix
        if not osp.isdir(root):
            raise FileNotFoundError(f"CustomDataset: image folder {root} does not exist")
        if not self.with_label:
            samples = list_files(root, self.is_valid_file)
        else:
            classes, folder_to_idx = find_folders(root)
            samples, empty = [], []
            for name in classes:
                files = list_files(osp.join(root, name), self.is_valid_file)
                samples += [(osp.join(name, f), folder_to_idx[name]) for f in files]
                if not files:
                    empty.append(name)
            if self.CLASSES is not None and len(self.CLASSES) != len(classes):
                raise ValueError(f"The number of subfolders ({len(classes)}) doesn't match the number of "
                                 f"specified classes ({len(self.CLASSES)}). Please check the data folder.")
            if self.CLASSES is None:
                self._metainfo["classes"] = tuple(classes)
            if empty:
                MMLogger.get_current_instance().warning(
                    f"Found no valid file in the folder {', '.join(empty)}. "
                    f"Supported extensions are: {', '.join(self.extensions)}")
        if not samples:
            raise RuntimeError(f"Found 0 files in subfolders of: {root}. "
                               f"Supported extensions are: {', '.join(self.extensions)}")
        return samples

    def load_data_list(self) -> List[dict]:
        """One ``{'img_path': ..., 'gt_label': ...}`` dict per sample."""
        if not self.ann_file:
            samples = self._find_samples()
        elif self.with_label:
            samples = []
            for line in list_from_file(self.ann_file):
                if line.strip():
                    path, label = line.strip().rsplit(" ", 1)
                    samples.append((path, int(label)))
        else:
            samples = [line.strip() for line in list_from_file(self.ann_file) if line.strip()]
        if self.with_label:
            return [{"img_path": osp.join(self.img_prefix, p), "gt_label": int(l)} for p, l in samples]
        return [{"img_path": osp.join(self.img_prefix, p)} for p in samples]
