"""CrossEntropyLoss and LabelSmoothLoss against direct computations."""

import math

import pytest
import torch
import torch.nn.functional as F

from trainer.registry import MODELS, register_all_modules

register_all_modules()

SCORES = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0], [1.0, 1.0, 1.0], [-2.0, 4.0, 0.0]])
LABELS = torch.tensor([0, 2, 1, 1])


def test_cross_entropy_matches_torch_and_weights():
    loss = MODELS.build(dict(type='CrossEntropyLoss', loss_weight=2.0))
    torch.testing.assert_close(loss(SCORES, LABELS), 2.0 * F.cross_entropy(SCORES, LABELS))
    # uniform scores over 3 classes: ln(3) per sample
    uniform = MODELS.build(dict(type='CrossEntropyLoss'))(torch.zeros(5, 3), torch.tensor([0, 1, 2, 0, 1]))
    assert math.isclose(uniform.item(), math.log(3), rel_tol=1e-6)
    # avg_factor divides the sum (the head passes the batch size)
    summed = F.cross_entropy(SCORES, LABELS, reduction='sum')
    torch.testing.assert_close(MODELS.build(dict(type='CrossEntropyLoss'))(SCORES, LABELS, avg_factor=2), summed / 2)


def test_sigmoid_and_soft_variants():
    bce = MODELS.build(dict(type='CrossEntropyLoss', use_sigmoid=True))
    onehot = F.one_hot(LABELS, 3).float()
    expected = F.binary_cross_entropy_with_logits(SCORES, onehot, reduction='none').sum() / 4
    torch.testing.assert_close(bce(SCORES, LABELS, avg_factor=4), expected)
    soft = MODELS.build(dict(type='CrossEntropyLoss', use_soft=True))
    torch.testing.assert_close(soft(SCORES, onehot), F.cross_entropy(SCORES, LABELS))
    with pytest.raises(ValueError):
        MODELS.build(dict(type='CrossEntropyLoss', use_sigmoid=True, use_soft=True))


def test_label_smooth_loss_modes():
    eps = 0.1
    original = MODELS.build(dict(type='LabelSmoothLoss', label_smooth_val=eps))
    torch.testing.assert_close(original(SCORES, LABELS), F.cross_entropy(SCORES, LABELS, label_smoothing=eps))
    classy = MODELS.build(dict(type='LabelSmoothLoss', label_smooth_val=eps, mode='classy_vision'))
    torch.testing.assert_close(classy(SCORES, LABELS),
                               F.cross_entropy(SCORES, LABELS, label_smoothing=eps / (1 + eps)))
    multi = MODELS.build(dict(type='LabelSmoothLoss', label_smooth_val=eps, mode='multi_label'))
    target = F.one_hot(LABELS, 3).float() * (1 - 2 * eps) + eps
    torch.testing.assert_close(multi(SCORES, LABELS),
                               F.binary_cross_entropy_with_logits(SCORES, target, reduction='none').mean())
    with pytest.raises(ValueError, match='num_classes'):
        MODELS.build(dict(type='LabelSmoothLoss', label_smooth_val=eps, num_classes=5))(SCORES, LABELS)
