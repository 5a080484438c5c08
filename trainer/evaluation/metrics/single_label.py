"""``Accuracy``: top-k accuracy of single-label classification (MMPretrain's metric and keys)."""

from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from trainer.registry import METRICS


def _to_tensor(value) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, torch.Tensor):
        return value
    return torch.tensor(value)


@METRICS.register_module()
class Accuracy(BaseMetric):
    r"""Top-k accuracy, in percent.

    A sample counts as correct at top-k when its label is among the k highest scores (and, with a
    threshold, that score is above it). Results are named ``accuracy/top{k}`` (with several thresholds,
    ``accuracy/top{k}_thr-{thr:.2f}``); with only predicted labels (no scores) just ``accuracy/top1``.

    Args:
        topk (int | Sequence[int]): The k's. Defaults to ``(1, )``.
        thrs (float | Sequence[float | None] | None): Score thresholds; ``None`` or 0 means none.
            Defaults to 0.
        collect_device (str): Where results are gathered across ranks, ``'cpu'`` or ``'gpu'``.
            Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names. Defaults to None (``'accuracy'``).
    """

    default_prefix: Optional[str] = "accuracy"

    def __init__(self, topk: Union[int, Sequence[int]] = (1, ),
                 thrs: Union[float, Sequence[Union[float, None]], None] = 0.,
                 collect_device: str = "cpu", prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = (topk, ) if isinstance(topk, int) else tuple(topk)
        self.thrs = (thrs, ) if isinstance(thrs, (float, int)) or thrs is None else tuple(thrs)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep each sample's ``pred_score`` (or ``pred_label``) and ``gt_label``, on the CPU.

        Args:
            data_batch: The batch from the dataloader (unused).
            data_samples (Sequence[dict]): Outputs of the model, as dicts (mmengine's Evaluator converts).
        """
        for sample in data_samples:
            result = {}
            if "pred_score" in sample:
                result["pred_score"] = sample["pred_score"].cpu()
            else:
                result["pred_label"] = sample["pred_label"].cpu()
            result["gt_label"] = sample["gt_label"].cpu()
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> dict:
        """Accuracies of all processed samples: ``{'top1': ..., 'top5': ...}`` (the prefix is added later)."""
        target = torch.cat([r["gt_label"] for r in results])
        metrics = {}
        if "pred_score" in results[0]:
            pred = torch.stack([r["pred_score"] for r in results])
            acc = self.calculate(pred, target, self.topk, self.thrs)
            multi_thrs = len(self.thrs) > 1
            for i, k in enumerate(self.topk):
                for j, thr in enumerate(self.thrs):
                    name = f"top{k}" + (f"_thr-{thr or 0.0:.2f}" if multi_thrs else "")
                    metrics[name] = acc[i][j].item()
        else:
            pred = torch.cat([r["pred_label"] for r in results])
            metrics["top1"] = self.calculate(pred, target, self.topk, self.thrs).item()
        return metrics

    @staticmethod
    def calculate(pred: Union[torch.Tensor, np.ndarray, Sequence],
                  target: Union[torch.Tensor, np.ndarray, Sequence],
                  topk: Sequence[int] = (1, ),
                  thrs: Sequence[Union[float, None]] = (0., )) -> Union[torch.Tensor, List[List[torch.Tensor]]]:
        """Accuracy in percent.

        Args:
            pred (torch.Tensor | np.ndarray | Sequence): Scores ``(N, C)`` or predicted labels ``(N,)``.
            target (torch.Tensor | np.ndarray | Sequence): Labels ``(N,)``.
            topk (Sequence[int]): The k's (scores only). Defaults to ``(1, )``.
            thrs (Sequence[float | None]): Score thresholds (scores only). Defaults to ``(0., )``.

        Returns:
            torch.Tensor | list[list[torch.Tensor]]: For labels, one scalar tensor. For scores,
            ``acc[i][j]`` is the top-``topk[i]`` accuracy at threshold ``thrs[j]``.
        """
        pred = _to_tensor(pred)
        target = _to_tensor(target).to(torch.int64)
        num = pred.size(0)
        if num != target.size(0):
            raise ValueError(f"The size of pred ({num}) doesn't match the target ({target.size(0)}).")
        if pred.ndim == 1:
            return (pred.int() == target).float().sum() * (100.0 / num)
        maxk = max(topk)
        if maxk > pred.size(1):
            raise ValueError(f"Top-{maxk} accuracy is unavailable for pred with {pred.size(1)} classes.")
        pred_score, pred_label = pred.topk(maxk, dim=1)
        correct = pred_label.t() == target.view(1, -1)  # (maxk, N)
        results = []
        for k in topk:
            per_thr = []
            for thr in thrs:
                hit = correct[:k]
                if thr is not None:
                    hit = hit & (pred_score.t()[:k] > thr)
                per_thr.append(hit.any(dim=0).float().sum() * (100.0 / num))
            results.append(per_thr)
        return results
