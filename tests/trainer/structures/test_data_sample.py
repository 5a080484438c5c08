"""``DataSample``: MMPretrain's label/score setters, and how it travels between processes."""

import copy
import pickle
from multiprocessing.reduction import ForkingPickler

import pytest
import torch
import torch.multiprocessing  # noqa: F401  registers torch's shared-memory reducers with ForkingPickler

from trainer.structures import DataSample
from trainer.structures.data_sample import BY_VALUE_BYTES, _ByValue


def _sample() -> DataSample:
    sample = DataSample(metainfo=dict(img_shape=(32, 32), sample_idx=7)).set_gt_label(3)
    return sample.set_gt_score(torch.tensor([0.0, 0.0, 0.0, 1.0]))


@pytest.mark.parametrize("dumps", [pickle.dumps, ForkingPickler.dumps], ids=["pickle", "forking"])
def test_a_pickled_sample_comes_back_equal(dumps):
    sample = _sample()
    back = pickle.loads(dumps(sample))
    assert type(back) is DataSample and back.metainfo == sample.metainfo
    assert back.gt_label.dtype == torch.long and back.gt_label.tolist() == [3]
    assert torch.equal(back.gt_score, sample.gt_score) and back.num_classes == 4
    back.gt_label[0] = 5  # its own memory
    assert sample.gt_label.tolist() == [3]


def test_small_cpu_tensors_travel_by_value_and_the_rest_as_tensors():
    sample = DataSample().set_gt_label([1, 2])
    sample.big = torch.zeros(BY_VALUE_BYTES // 4 + 1)
    sample.grad = torch.zeros(2, requires_grad=True)
    sample.bf16 = torch.zeros(2, dtype=torch.bfloat16)
    state = sample.__getstate__()
    assert isinstance(state["gt_label"], _ByValue) and state["gt_label"].array.tolist() == [1, 2]
    assert all(type(state[key]) is torch.Tensor for key in ("big", "grad", "bf16"))


def test_through_shared_memory_only_when_large():
    """ForkingPickler (a DataLoader worker's queue) shares each tensor through its own shared-memory
    segment; a sample of small tensors pickles without any."""
    small = ForkingPickler.dumps(_sample())
    assert b"rebuild_storage" not in bytes(small)
    large = DataSample()
    large.image = torch.zeros(BY_VALUE_BYTES)
    assert b"rebuild_storage" in bytes(ForkingPickler.dumps(large))


def test_deepcopy_is_independent():
    sample = _sample()
    twin = copy.deepcopy(sample)
    twin.gt_label[0] = 9
    assert sample.gt_label.tolist() == [3] and twin.gt_label.tolist() == [9]
