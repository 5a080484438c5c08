# GPU benchmark: ResNet-50 at 224x224 on synthetic data, 8 GPUs x 32 images (base batch 256).
# One epoch is 25,600 images (100 steps on 8 GPUs, 800 on one); validation (1,024 images) runs once at
# the end. Random images have nothing to learn: read the throughput, not the accuracy.
#   kctl run configs/resnet/resnet50_8xb32_synthetic.py --gpus 8          (or: python -m trainer ...)
# Shorter or longer:  --cfg-options train_dataloader.dataset.num_samples=6400
_base_ = [
    '../_base_/models/resnet50.py',
    '../_base_/datasets/synthetic_224.py',
    '../_base_/schedules/imagenet_bs256.py',
    '../_base_/default_runtime.py',
]

train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
default_hooks = dict(logger=dict(type='LoggerHook', interval=20))
