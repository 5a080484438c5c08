"""ImageClassifier with the data preprocessor, neck and linear head: the three forward modes."""

import pytest
import torch

from trainer.registry import MODELS, register_all_modules
from trainer.structures import DataSample

register_all_modules()

CFG = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=18),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=512, topk=(1, 5), cal_acc=True),
    data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3, to_rgb=True),
)


def batch(n=4, size=8):
    g = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=g) for _ in range(n)]
    samples = [DataSample().set_gt_label(i % 10) for i in range(n)]
    return {'inputs': inputs, 'data_samples': samples}


def test_preprocessor_stacks_flips_and_normalizes():
    model = MODELS.build(CFG)
    data = batch()
    raw = torch.stack(data['inputs']).float()
    out = model.data_preprocessor(data, training=True)
    assert out['inputs'].shape == (4, 3, 8, 8) and out['inputs'].dtype == torch.float32
    torch.testing.assert_close(out['inputs'], (raw.flip(1) - 127.5) / 127.5)


def test_loss_mode_gives_sane_loss_and_train_accuracy():
    torch.manual_seed(0)
    model = MODELS.build(CFG)
    model.init_weights()
    losses = model(**model.data_preprocessor(batch(), True), mode='loss')
    # the head starts near uniform (std 0.01): cross entropy ~ ln(10)
    assert abs(losses['loss'].item() - torch.log(torch.tensor(10.0)).item()) < 0.1
    assert set(losses) == {'loss', 'accuracy_top-1', 'accuracy_top-5'}
    losses['loss'].backward()
    assert model.backbone.conv1.weight.grad is not None


def test_predict_and_tensor_modes():
    model = MODELS.build(CFG).eval()
    data = model.data_preprocessor(batch(3), False)
    with torch.no_grad():
        logits = model(data['inputs'], mode='tensor')
        preds = model(**data, mode='predict')
        feats = model.extract_feat(data['inputs'], stage='pre_logits')
    assert logits.shape == (3, 10) and feats.shape == (3, 512)
    assert len(preds) == 3
    for pred, row in zip(preds, logits):
        torch.testing.assert_close(pred.pred_score, row.softmax(0))
        assert pred.pred_label.item() == row.argmax().item()
        assert 'gt_label' in pred  # predictions are set on the given samples
    with pytest.raises(RuntimeError, match='Invalid mode'):
        model(data['inputs'], mode='bogus')


def test_train_step_lowers_the_loss():
    """A few SGD steps on one batch through mmengine's train_step must fit it."""
    from mmengine.optim import OptimWrapper
    torch.manual_seed(0)
    narrow = dict(type='ResNet_CIFAR', depth=18, stem_channels=16, base_channels=16)  # 1/16 of the compute
    model = MODELS.build(dict(CFG, backbone=narrow, head=dict(CFG['head'], in_channels=128)))
    model.init_weights()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
    data = batch(8)
    first = model.train_step(data, wrapper)['loss'].item()
    for _ in range(8):
        last = model.train_step(data, wrapper)['loss'].item()
    assert last < first / 2


def test_missing_head_allows_features_only():
    model = MODELS.build(dict(type='ImageClassifier', backbone=dict(type='ResNet_CIFAR', depth=18),
                              neck=dict(type='GlobalAveragePooling'))).eval()
    with torch.no_grad():
        (feat, ) = model(torch.rand(2, 3, 8, 8), mode='tensor')
    assert feat.shape == (2, 512)


def test_onehot_preprocessing_feeds_soft_targets():
    model = MODELS.build(dict(CFG, data_preprocessor=dict(to_onehot=True, num_classes=10)))
    out = model.data_preprocessor(batch(2), True)
    assert out['data_samples'][1].gt_score.tolist() == [0.0] + [1.0] + [0.0] * 8
