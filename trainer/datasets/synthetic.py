"""``SyntheticDataset``: random images generated in memory, for throughput benchmarks."""

from typing import List, Sequence, Union

import numpy as np

from trainer.registry import DATASETS

from .base_dataset import BaseDataset


@DATASETS.register_module()
class SyntheticDataset(BaseDataset):
    """Deterministic random images and labels, made on the fly: no files, no memory per sample.

    Sample ``i`` is uniform noise (uint8, ``(H, W, 3)``) drawn from a generator seeded with
    ``(seed, i)``, labelled ``i % num_classes``: the same on every rank, epoch and run. Nothing to learn;
    it measures the model, the data path and the runtime.

    Args:
        num_samples (int): Dataset length. Defaults to 1024.
        image_size (int | Sequence[int]): ``size`` or ``(h, w)``. Defaults to 224.
        num_classes (int): Number of classes. Defaults to 1000.
        seed (int): Seed of the image generator. Defaults to 0.
        metainfo (dict, optional): Meta information; class names default to ``'0'``, ``'1'`` ...
            Defaults to None.
        **kwargs: Other :class:`BaseDataset` arguments (``pipeline``, ``test_mode`` ...).
    """

    def __init__(self, num_samples: int = 1024, image_size: Union[int, Sequence[int]] = 224,
                 num_classes: int = 1000, seed: int = 0, metainfo: dict = None, **kwargs):
        if num_samples <= 0 or num_classes <= 0:
            raise ValueError("SyntheticDataset: num_samples and num_classes must be positive")
        self.num_samples = num_samples
        self.image_size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        self.num_classes = num_classes
        self.seed = seed
        metainfo = dict(metainfo or {})
        metainfo.setdefault("classes", tuple(str(i) for i in range(num_classes)))
        super().__init__(metainfo=metainfo, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Labels only; images are generated in :meth:`get_data_info`."""
        return [{"gt_label": i % self.num_classes} for i in range(self.num_samples)]

    def get_data_info(self, idx: int) -> dict:
        """Sample ``idx`` with its image: ``{'img', 'gt_label', 'sample_idx', 'img_shape', 'ori_shape'}``."""
        info = super().get_data_info(idx)
        rng = np.random.default_rng((self.seed, info["sample_idx"]))
        info["img"] = rng.integers(0, 256, size=(*self.image_size, 3), dtype=np.uint8)
        info["img_shape"] = info["ori_shape"] = self.image_size
        return info
