# Golden-test input: a miniature of configs/resnet/resnet18_1xb64_digits.py (same _base_ layout),
# kept here so the golden manifests do not change when the real configs are tuned.
_base_ = [
    '../_base_/models/resnet18_cifar.py',
    '../_base_/datasets/digits.py',
    '../_base_/schedules/digits_bs64.py',
    '../_base_/default_runtime.py',
]
