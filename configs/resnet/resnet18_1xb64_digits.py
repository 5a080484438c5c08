# ResNet-18 (small-image variant) on the 8x8 UCI digits shipped with the trainer: 1 process x 64 images.
# The project's demo job; on 2 CPU cores it reaches >= 95% top-1 (accuracy/top1) in well under 5 minutes.
#   python -m trainer configs/resnet/resnet18_1xb64_digits.py --work-dir work_dirs/digits
_base_ = [
    '../_base_/models/resnet18_cifar.py',
    '../_base_/datasets/digits.py',
    '../_base_/schedules/digits_bs64.py',
    '../_base_/default_runtime.py',
]
