# ResNet-18 (small-image variant) on your own images, one process x 32 images. Start here.
#
# 1. Put the images in class folders (any size; .jpg .jpeg .png .ppm .bmp .pgm .tif):
#        data/my_images/train/<class name>/<image>     e.g. data/my_images/train/cat/001.png
#        data/my_images/val/<class name>/<image>       the same class folders
#    Class names are the sorted folder names; labels are their positions. With a list file instead
#    ("path label" per line), add ann_file='train.txt' to the dataset and give metainfo=dict(classes=...).
# 2. Set `data_root` and `num_classes` below (num_classes = number of class folders), or on the command
#    line:  --cfg-options train_dataloader.dataset.data_root=/data/pets \
#                         val_dataloader.dataset.data_root=/data/pets model.head.num_classes=37
# 3. Images are trained at 32x32 (random crop + flip) and validated on the center 32x32 crop after
#    resizing the short edge to 36. For larger images use a 224 pipeline and the ImageNet-style model:
#    '../_base_/models/resnet18.py', RandomResizedCrop(scale=224) / ResizeEdge(scale=256) + CenterCrop(224).
# 4. Scale the learning rate with the total batch: --auto-scale-lr (base_batch_size=32 below).
_base_ = [
    '../_base_/models/resnet18_cifar.py',
    '../_base_/default_runtime.py',
]

data_root = 'data/my_images'
num_classes = 2

model = dict(head=dict(num_classes=num_classes))

data_preprocessor = dict(
    num_classes=num_classes,
    # ImageNet's RGB statistics: a fine default for photos
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)  # images are loaded BGR

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.5, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=36, edge='short'),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='train', pipeline=train_pipeline),
    # order and augmentation are functions of (seed, epoch, sample): a resumed run, even one stopped
    # mid-epoch, trains on exactly what the uninterrupted run would have
    sampler=dict(type='ResumableSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='val', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=30, eta_min=1e-4, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32)
