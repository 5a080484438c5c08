"""Accuracy on predictions built to have a known top-1 / top-k."""

import pytest
import torch
from mmengine.evaluator import Evaluator

from trainer.evaluation import Accuracy
from trainer.registry import METRICS, register_all_modules
from trainer.structures import DataSample

register_all_modules()


def scores_with_rank(num_classes, label, rank):
    """Scores whose ``rank``-th highest (0 = top) class is ``label``."""
    order = [c for c in range(num_classes) if c != label]
    order.insert(rank, label)
    score = torch.zeros(num_classes)
    for position, cls in enumerate(order):
        score[cls] = num_classes - position
    return (score / score.sum())


def test_top1_and_top5_from_ranks_through_the_evaluator():
    ranks = [0, 0, 0, 1, 2, 4, 5, 9]  # where the true class lands for each sample
    labels = [3, 7, 1, 0, 9, 2, 5, 4]
    samples = [DataSample().set_gt_label(l).set_pred_score(scores_with_rank(10, l, r)).set_pred_label(0)
               for l, r in zip(labels, ranks)]
    evaluator = Evaluator(METRICS.build(dict(type='Accuracy', topk=(1, 5))))
    evaluator.process(samples[:5])
    evaluator.process(samples[5:])
    metrics = evaluator.evaluate(len(samples))
    expected_top1 = 100 * sum(r < 1 for r in ranks) / len(ranks)
    expected_top5 = 100 * sum(r < 5 for r in ranks) / len(ranks)
    assert metrics == pytest.approx({'accuracy/top1': expected_top1, 'accuracy/top5': expected_top5})
    assert metrics['accuracy/top1'] == pytest.approx(37.5)


def test_three_of_four_labels():
    pred = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    target = torch.tensor([0, 1, 1, 1])
    correct = (pred.argmax(1) == target).sum().item()
    [[top1]] = Accuracy.calculate(pred, target)
    assert top1.item() == pytest.approx(100 * correct / 4) == pytest.approx(75.0)
    # label-only predictions
    assert Accuracy.calculate(pred.argmax(1), target).item() == pytest.approx(75.0)


def test_thresholds_name_the_keys():
    metric = METRICS.build(dict(type='Accuracy', thrs=(0.0, 0.75)))
    samples = [DataSample().set_gt_label(0).set_pred_score([0.9, 0.1]).to_dict(),
               DataSample().set_gt_label(0).set_pred_score([0.6, 0.4]).to_dict()]
    metric.process(None, samples)
    assert metric.evaluate(2) == pytest.approx({'accuracy/top1_thr-0.00': 100.0, 'accuracy/top1_thr-0.75': 50.0})


def test_topk_larger_than_classes_is_an_error():
    with pytest.raises(ValueError, match='Top-5'):
        Accuracy.calculate(torch.rand(3, 2), torch.tensor([0, 1, 0]), topk=(5, ))
