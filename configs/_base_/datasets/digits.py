# The 8x8 UCI handwritten digits shipped with the trainer (trainer/data/digits.csv.gz), held in memory:
# 1,433 training and 364 test images (a fixed stratified split), 10 classes '0'..'9'.
dataset_type = 'Digits'
data_preprocessor = dict(
    num_classes=10,
    # pixel mean and std of the digits, in 0..255 (grey, so the same for R, G, B)
    mean=[77.85, 77.85, 77.85],
    std=[95.85, 95.85, 95.85],
    to_rgb=False)

train_pipeline = [
    # shift by up to one pixel; no flips (a mirrored digit is another symbol)
    dict(type='RandomCrop', crop_size=8, padding=1),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='PackInputs'),
]

# The samples are tiny and in memory: worker processes would cost more than they save on a few cores.
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    dataset=dict(type=dataset_type, split='train', pipeline=train_pipeline),
    # order and augmentation are functions of (seed, epoch, sample): a resumed run, even one stopped
    # mid-epoch, trains on exactly what the uninterrupted run would have
    sampler=dict(type='ResumableSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=0,
    dataset=dict(type=dataset_type, split='test', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
