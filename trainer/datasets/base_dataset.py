"""``BaseDataset``: mmengine's dataset with MMPretrain's conveniences (class names, image prefix)."""

import os.path as osp
from typing import List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset as _MMEngineBaseDataset
from mmengine.fileio import list_from_file

from trainer.registry import TRANSFORMS


def expanduser(path: Union[str, dict]):
    """``~`` expansion of a path, or of every value of a dict of paths."""
    if isinstance(path, dict):
        return {k: expanduser(v) for k, v in path.items()}
    return osp.expanduser(path) if isinstance(path, str) else path


class BaseDataset(_MMEngineBaseDataset):
    """Base of the classification datasets.

    Every sample is a dict (``img_path`` or ``img``, ``gt_label`` ...) that the ``pipeline`` turns into
    model inputs. Class names live in ``metainfo['classes']``. When the index comes from
    :class:`trainer.datasets.ResumableSampler` (a :class:`~trainer.datasets.samplers.SampleIndex`), the
    sample gets ``rng = numpy.random.default_rng([seed, epoch, index])``, the random source of the
    pipeline's random transforms: augmentation is then a function of (seed, epoch, sample), the same
    in any DataLoader worker and after a resume. (A sample the pipeline drops is replaced by a random
    other one, drawn as mmengine does, without this key.)

    Args:
        ann_file (str): Annotation file, relative to ``data_root``. Defaults to ''.
        metainfo (dict, optional): Meta information, e.g. ``dict(classes=('cat', 'dog'))``.
            Defaults to None.
        data_root (str): Root of ``ann_file`` and ``data_prefix``. Defaults to ''.
        data_prefix (str | dict): Image directory relative to ``data_root``; a str means
            ``dict(img_path=data_prefix)``. Defaults to ''.
        filter_cfg (dict, optional): Sample filtering config (mmengine). Defaults to None.
        indices (int | Sequence[int], optional): Keep only these samples (or the first N). Defaults to None.
        serialize_data (bool): Keep the sample list as one pickled buffer, shared by the DataLoader
            workers without copy-on-read growth. Defaults to True.
        pipeline (Sequence): Transforms (config dicts or callables). Defaults to ().
        test_mode (bool): Test mode (no re-fetch of failed samples). Defaults to False.
        lazy_init (bool): Load the annotations on first use instead of now. Defaults to False.
        max_refetch (int): Attempts to replace a sample whose pipeline returned None. Defaults to 1000.
        classes (str | Sequence[str], optional): Class names, or a file with one per line; overrides
            ``metainfo['classes']``. Defaults to None.
    """

    def __init__(self,
                 ann_file: str = "",
                 metainfo: Optional[dict] = None,
                 data_root: str = "",
                 data_prefix: Union[str, dict] = "",
                 filter_cfg: Optional[dict] = None,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 serialize_data: bool = True,
                 pipeline: Sequence = (),
                 test_mode: bool = False,
                 lazy_init: bool = False,
                 max_refetch: int = 1000,
                 classes: Optional[Union[str, Sequence[str]]] = None):
        if isinstance(data_prefix, str):
            data_prefix = dict(img_path=data_prefix)
        transforms = [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline]
        super().__init__(
            ann_file=expanduser(ann_file),
            metainfo=self._compat_classes(metainfo, classes),
            data_root=expanduser(data_root),
            data_prefix=expanduser(data_prefix),
            filter_cfg=filter_cfg,
            indices=indices,
            serialize_data=serialize_data,
            pipeline=transforms,
            test_mode=test_mode,
            lazy_init=lazy_init,
            max_refetch=max_refetch)

    def prepare_data(self, idx) -> dict:
        """Sample ``idx`` after the pipeline; with its ``rng`` when ``idx`` carries seed and epoch."""
        data_info = self.get_data_info(int(idx))
        rng_key = getattr(idx, "rng_key", None)
        if rng_key is not None:
            data_info["rng"] = np.random.default_rng(rng_key)
        return self.pipeline(data_info)

    @property
    def img_prefix(self) -> str:
        """The image directory (``data_root`` joined with ``data_prefix['img_path']``)."""
        return self.data_prefix["img_path"]

    @property
    def CLASSES(self) -> Optional[tuple]:  # noqa: N802 (MMPretrain's name)
        """Class names, from ``metainfo['classes']``."""
        return self._metainfo.get("classes")

    @property
    def class_to_idx(self) -> dict:
        """Map of class name to label index."""
        return {cat: i for i, cat in enumerate(self.CLASSES)}

    def get_gt_labels(self) -> np.ndarray:
        """Labels of all samples, as an int64 array."""
        return np.array([self.get_data_info(i)["gt_label"] for i in range(len(self))], dtype=np.int64)

    def get_cat_ids(self, idx: int) -> List[int]:
        """Label(s) of sample ``idx`` (used by class-balanced sampling)."""
        return [int(self.get_data_info(idx)["gt_label"])]

    @staticmethod
    def _compat_classes(metainfo: Optional[dict], classes) -> Optional[dict]:
        if classes is None:
            return metainfo
        if isinstance(classes, str):
            classes = list_from_file(expanduser(classes))
        elif not isinstance(classes, (tuple, list)):
            raise ValueError(f"Unsupported type {type(classes)} of classes.")
        metainfo = dict(metainfo or {})
        metainfo["classes"] = tuple(classes)
        return metainfo
