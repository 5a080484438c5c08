default_scope = 'trainer'
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1))
