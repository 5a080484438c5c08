# Random 224x224 images generated in memory (no files): measures the model and the runtime, not the data.
dataset_type = 'SyntheticDataset'
data_preprocessor = dict(
    num_classes=1000,
    # ImageNet's RGB mean and std, as in MMPretrain's ImageNet configs
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

train_pipeline = [
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    dataset=dict(type=dataset_type, num_samples=25600, image_size=224, num_classes=1000, seed=0,
                 pipeline=train_pipeline),
    # order and augmentation are functions of (seed, epoch, sample): a resumed run, even one stopped
    # mid-epoch, trains on exactly what the uninterrupted run would have
    sampler=dict(type='ResumableSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    dataset=dict(type=dataset_type, num_samples=1024, image_size=224, num_classes=1000, seed=1,
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
