"""``ClsHead``: the loss and prediction logic shared by classification heads."""

from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from trainer.evaluation.metrics import Accuracy
from trainer.registry import MODELS
from trainer.structures import DataSample


@MODELS.register_module()
class ClsHead(BaseModule):
    """Classification head without layers: the last backbone/neck feature is taken as the scores.

    Args:
        loss (dict | nn.Module): The loss. Defaults to ``dict(type='CrossEntropyLoss', loss_weight=1.0)``.
        topk (int | Sequence[int]): Top-k accuracies logged during training when ``cal_acc``.
            Defaults to ``(1, )``.
        cal_acc (bool): Log training accuracy (``accuracy_top-k``) next to the loss. Defaults to False.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self, loss: Union[dict, nn.Module] = dict(type="CrossEntropyLoss", loss_weight=1.0),
                 topk: Union[int, Sequence[int]] = (1, ), cal_acc: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.topk = (topk, ) if isinstance(topk, int) else tuple(topk)
        self.loss_module = loss if isinstance(loss, nn.Module) else MODELS.build(loss)
        self.cal_acc = cal_acc

    def pre_logits(self, feats: Tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The feature the classifier works on: the last stage's."""
        return feats[-1]

    def forward(self, feats: Tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Class scores (logits) of shape ``(N, num_classes)``."""
        return self.pre_logits(feats)

    def loss(self, feats: Tuple[torch.Tensor, ...], data_samples: List[DataSample]) -> dict:
        """Losses (``loss``, and ``accuracy_top-k`` when ``cal_acc``) against the samples' labels.

        Args:
            feats (tuple[torch.Tensor]): Features from the backbone/neck.
            data_samples (list[DataSample]): Samples with ``gt_label`` (or ``gt_score``, e.g. one-hot).

        Returns:
            dict[str, torch.Tensor]: The loss components.
        """
        cls_score = self(feats)
        if "gt_score" in data_samples[0]:
            target = torch.stack([s.gt_score for s in data_samples])
        else:
            target = torch.cat([s.gt_label for s in data_samples])
        losses = {"loss": self.loss_module(cls_score, target, avg_factor=cls_score.size(0))}
        if self.cal_acc:
            if target.ndim != 1:
                raise ValueError("cal_acc needs class-index labels, not scores (e.g. from batch mixing)")
            acc = Accuracy.calculate(cls_score, target, topk=self.topk)
            losses.update({f"accuracy_top-{k}": a[0] for k, a in zip(self.topk, acc)})
        return losses

    def predict(self, feats: Tuple[torch.Tensor, ...],
                data_samples: Optional[List[Optional[DataSample]]] = None) -> List[DataSample]:
        """Softmax scores and arg-max labels, set on the given data samples (or new ones).

        Args:
            feats (tuple[torch.Tensor]): Features from the backbone/neck.
            data_samples (list[DataSample | None], optional): Samples to fill in. Defaults to None.

        Returns:
            list[DataSample]: One per image, with ``pred_score`` and ``pred_label``.
        """
        pred_scores = F.softmax(self(feats), dim=1)
        pred_labels = pred_scores.argmax(dim=1, keepdim=True).detach()
        if data_samples is None:
            data_samples = [None] * pred_scores.size(0)
        out = []
        for sample, score, label in zip(data_samples, pred_scores, pred_labels):
            sample = DataSample() if sample is None else sample
            out.append(sample.set_pred_score(score).set_pred_label(label))
        return out
