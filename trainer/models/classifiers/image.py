"""``ImageClassifier``: backbone -> neck -> head, as an mmengine ``BaseModel``."""

from typing import List, Optional, Union

import torch
from mmengine.model import BaseModel
from torch import nn

from trainer.registry import MODELS
from trainer.structures import DataSample


@MODELS.register_module()
class ImageClassifier(BaseModel):
    """Image classifier for supervised classification (MMPretrain's ``ImageClassifier``).

    Args:
        backbone (dict | nn.Module): The backbone, e.g. ``dict(type='ResNet', depth=18)``.
        neck (dict | nn.Module, optional): Between backbone and head, e.g.
            ``dict(type='GlobalAveragePooling')``. Defaults to None.
        head (dict | nn.Module, optional): Scores, loss and predictions, e.g.
            ``dict(type='LinearClsHead', num_classes=10, in_channels=512)``. Without a head only
            ``extract_feat`` and ``mode='tensor'`` work. Defaults to None.
        pretrained (str, optional): Checkpoint to initialize from (sets ``init_cfg`` to
            ``dict(type='Pretrained', checkpoint=pretrained)``). Defaults to None.
        train_cfg (dict, optional): Training settings; batch augmentations (``augments``) are not
            implemented. Defaults to None.
        data_preprocessor (dict | nn.Module, optional): Batching and normalization; a dict without
            ``type`` gets ``type='ClsDataPreprocessor'``. Defaults to None (a ``ClsDataPreprocessor``
            without normalization).
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 backbone: Union[dict, nn.Module],
                 neck: Optional[Union[dict, nn.Module]] = None,
                 head: Optional[Union[dict, nn.Module]] = None,
                 pretrained: Optional[str] = None,
                 train_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None):
        if pretrained is not None:
            init_cfg = dict(type="Pretrained", checkpoint=pretrained)
        if train_cfg and "augments" in train_cfg:
            raise ValueError("ImageClassifier: train_cfg.augments (batch augmentations such as Mixup/CutMix) "
                             "is not implemented by trainer")
        if data_preprocessor is None:
            data_preprocessor = {}
        if isinstance(data_preprocessor, dict):
            data_preprocessor = dict(data_preprocessor)
            # mmengine builds the preprocessor from its root registry: name the scope explicitly.
            data_preprocessor.setdefault("type", "trainer.ClsDataPreprocessor")
        super().__init__(init_cfg=init_cfg, data_preprocessor=data_preprocessor)
        self.backbone = backbone if isinstance(backbone, nn.Module) else MODELS.build(backbone)
        self.neck = neck if neck is None or isinstance(neck, nn.Module) else MODELS.build(neck)
        self.head = head if head is None or isinstance(head, nn.Module) else MODELS.build(head)

    @property
    def with_neck(self) -> bool:
        return self.neck is not None

    @property
    def with_head(self) -> bool:
        return self.head is not None

    def forward(self, inputs: torch.Tensor, data_samples: Optional[List[DataSample]] = None,
                mode: str = "tensor"):
        """The entry point of training, validation and inference.

        Args:
            inputs (torch.Tensor): Images ``(N, C, H, W)``, already preprocessed.
            data_samples (list[DataSample], optional): Annotations; required for ``mode='loss'``.
                Defaults to None.
            mode (str): ``'tensor'`` returns the head's scores (or the features without head);
                ``'loss'`` a dict of losses; ``'predict'`` a list of :class:`DataSample` with
                ``pred_score``/``pred_label``. Defaults to 'tensor'.
        """
        if mode == "tensor":
            feats = self.extract_feat(inputs)
            return self.head(feats) if self.with_head else feats
        if mode == "loss":
            return self.loss(inputs, data_samples)
        if mode == "predict":
            return self.predict(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}".')

    def extract_feat(self, inputs: torch.Tensor, stage: str = "neck"):
        """Features at ``stage``: ``'backbone'`` or ``'neck'`` (tuples of tensors) or ``'pre_logits'``.

        Args:
            inputs (torch.Tensor): Images ``(N, C, H, W)``.
            stage (str): Where to stop. Defaults to 'neck'.
        """
        if stage not in ("backbone", "neck", "pre_logits"):
            raise ValueError(f'Invalid output stage "{stage}", choose from "backbone", "neck" and "pre_logits"')
        x = self.backbone(inputs)
        if stage == "backbone":
            return x
        if self.with_neck:
            x = self.neck(x)
        if stage == "neck":
            return x
        if not (self.with_head and hasattr(self.head, "pre_logits")):
            raise RuntimeError("No head or the head doesn't implement `pre_logits` method.")
        return self.head.pre_logits(x)

    def loss(self, inputs: torch.Tensor, data_samples: List[DataSample]) -> dict:
        """Losses of a batch, as a dict of tensors."""
        return self.head.loss(self.extract_feat(inputs), data_samples)

    def predict(self, inputs: torch.Tensor, data_samples: Optional[List[DataSample]] = None) -> List[DataSample]:
        """Predictions of a batch: one :class:`DataSample` per image with ``pred_score`` and ``pred_label``."""
        return self.head.predict(self.extract_feat(inputs), data_samples)
