# SGD with momentum, one warm-up epoch then cosine decay, for 64 images per step in total.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True))

param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=8, eta_min=1e-4, convert_to_iter_based=True),
]

train_cfg = dict(by_epoch=True, max_epochs=8, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# `--auto-scale-lr` scales lr by (GPUs x batch size) / base_batch_size
auto_scale_lr = dict(base_batch_size=64)
