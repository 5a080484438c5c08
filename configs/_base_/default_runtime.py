# Runtime settings shared by every config: scope, hooks, environment, logging and visualization.
default_scope = 'trainer'

default_hooks = dict(
    # record the time of every iteration
    timer=dict(type='IterTimerHook'),
    # print a log line every 10 iterations
    logger=dict(type='LoggerHook', interval=10),
    # step the learning-rate schedule
    param_scheduler=dict(type='ParamSchedulerHook'),
    # save epoch_<N>.pth every epoch, keep the last 3, and always keep the latest (last_checkpoint);
    # written crash-safe, and --resume falls back to the previous one if the latest is unreadable:
    # keep at least 2
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3, save_last=True),
    # give the distributed sampler the epoch, so every epoch is shuffled differently
    sampler_seed=dict(type='DistSamplerSeedHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # NCCL on GPUs; the trainer falls back to gloo when there is no GPU.
    dist_cfg=dict(backend='nccl'),
)

# Scalars (loss, lr, accuracy/top1 ...) go to <work_dir>/<timestamp>/vis_data/scalars.json.
# TensorBoard as well: `pip install tensorboard`, then either uncomment the line below, or set
#   visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
# in your own config; then `tensorboard --logdir <work_dir>`.
vis_backends = [
    dict(type='LocalVisBackend'),
    # dict(type='TensorboardVisBackend'),
]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)

log_level = 'INFO'

# load weights from a checkpoint (no training state); `--resume` restores everything instead
load_from = None
resume = False

# a fixed seed makes runs repeatable (weights, data order, augmentation); None draws one at start
randomness = dict(seed=0, deterministic=False)
