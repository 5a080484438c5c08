"""``SeedSampleRandomness``: augmentation of another library's pipeline as a function of (seed, epoch, sample)."""

from typing import Optional

from trainer.datasets.transforms.base import BaseTransform
from trainer.registry import TRANSFORMS
from trainer.seeding import seed_global_generators


@TRANSFORMS.register_module()
class SeedSampleRandomness(BaseTransform):
    """Seed Python's, numpy's and torch's global generators from the sample's ``[seed, epoch, index]``.

    The trainer's own transforms draw from ``results['rng']``; MMPretrain's and mmcv's draw from numpy's
    (or Python's, torch's) global state, which depends on how many samples the process drew before. Put
    first in such a pipeline, this step makes their augmentation a function of (seed, epoch, sample) too:
    the same in any DataLoader worker and after a resume. The key comes with the index that
    :class:`trainer.datasets.ResumableSampler` draws, which mmengine's ``BaseDataset`` hands on as
    ``results['sample_idx']``; a sample without it (one drawn to replace a sample the pipeline dropped)
    is left alone. :func:`trainer.scope.make_resume_exact` adds this step to the configs of other scopes.
    """

    def transform(self, results: dict) -> Optional[dict]:
        key = getattr(results.get("sample_idx"), "rng_key", None)
        if key is not None:
            seed_global_generators(key)
        return results
