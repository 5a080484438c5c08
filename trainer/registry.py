"""The ``trainer`` registry scope: one child of every mmengine root registry.

Configs say ``default_scope = 'trainer'``; mmengine then looks a ``type`` up here first and falls back to the
parent (mmengine's own registry: ``SGD``, ``MultiStepLR``, ``CheckpointHook``, ``Evaluator`` ...). The layout
follows MMPretrain's ``mmpretrain/registry.py`` so that an MMPretrain config using only the types implemented
here runs after changing ``default_scope``.

A registry's ``locations`` are the modules mmengine imports the first time a type is looked up in it.
Registries that nothing in this package registers into have none: their types come from mmengine.
"""

from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNER_CONSTRUCTORS as MMENGINE_RUNNER_CONSTRUCTORS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

__all__ = [
    "RUNNERS", "RUNNER_CONSTRUCTORS", "LOOPS", "HOOKS", "LOG_PROCESSORS", "OPTIMIZERS", "OPTIM_WRAPPERS",
    "OPTIM_WRAPPER_CONSTRUCTORS", "PARAM_SCHEDULERS", "DATASETS", "DATA_SAMPLERS", "TRANSFORMS", "MODELS",
    "MODEL_WRAPPERS", "WEIGHT_INITIALIZERS", "TASK_UTILS", "METRICS", "EVALUATOR", "VISUALIZERS",
    "VISBACKENDS", "SCOPE", "register_all_modules",
]

SCOPE = "trainer"

# ---- engine: runners, loops, hooks, optimization (mmengine's types, plus the runtime's runner, loop, hooks and
# wrappers; Runner, EpochBasedTrainLoop, CheckpointHook and RuntimeInfoHook replace mmengine's under the same
# names) ----
RUNNERS = Registry("runner", parent=MMENGINE_RUNNERS, scope=SCOPE, locations=["trainer.runner"])
RUNNER_CONSTRUCTORS = Registry("runner constructor", parent=MMENGINE_RUNNER_CONSTRUCTORS, scope=SCOPE)
LOOPS = Registry("loop", parent=MMENGINE_LOOPS, scope=SCOPE, locations=["trainer.loops"])
HOOKS = Registry("hook", parent=MMENGINE_HOOKS, scope=SCOPE,
                 locations=["trainer.hooks", "trainer.deferred_scalars", "trainer.compile_report"])
LOG_PROCESSORS = Registry("log processor", parent=MMENGINE_LOG_PROCESSORS, scope=SCOPE)
OPTIMIZERS = Registry("optimizer", parent=MMENGINE_OPTIMIZERS, scope=SCOPE)
OPTIM_WRAPPERS = Registry("optimizer_wrapper", parent=MMENGINE_OPTIM_WRAPPERS, scope=SCOPE,
                          locations=["trainer.optim_wrapper"])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    "optimizer wrapper constructor", parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, scope=SCOPE)
PARAM_SCHEDULERS = Registry("parameter scheduler", parent=MMENGINE_PARAM_SCHEDULERS, scope=SCOPE)

# ---- datasets: datasets, samplers, per-sample transforms ----
DATASETS = Registry("dataset", parent=MMENGINE_DATASETS, scope=SCOPE, locations=["trainer.datasets"])
DATA_SAMPLERS = Registry("data sampler", parent=MMENGINE_DATA_SAMPLERS, scope=SCOPE,
                         locations=["trainer.datasets"])
TRANSFORMS = Registry("transform", parent=MMENGINE_TRANSFORMS, scope=SCOPE, locations=["trainer.datasets"])

# ---- models: networks, losses, data preprocessors, wrappers, weight initializers ----
MODELS = Registry("model", parent=MMENGINE_MODELS, scope=SCOPE, locations=["trainer.models"])
MODEL_WRAPPERS = Registry("model_wrapper", parent=MMENGINE_MODEL_WRAPPERS, scope=SCOPE)
WEIGHT_INITIALIZERS = Registry("weight initializer", parent=MMENGINE_WEIGHT_INITIALIZERS, scope=SCOPE)
TASK_UTILS = Registry("task util", parent=MMENGINE_TASK_UTILS, scope=SCOPE)

# ---- evaluation ----
METRICS = Registry("metric", parent=MMENGINE_METRICS, scope=SCOPE, locations=["trainer.evaluation"])
EVALUATOR = Registry("evaluator", parent=MMENGINE_EVALUATOR, scope=SCOPE, locations=["trainer.evaluation"])

# ---- visualization (Visualizer replaces mmengine's under the same name; LocalVisBackend,
# TensorboardVisBackend ... are mmengine's) ----
VISUALIZERS = Registry("visualizer", parent=MMENGINE_VISUALIZERS, scope=SCOPE,
                       locations=["trainer.visualization"])
VISBACKENDS = Registry("vis_backend", parent=MMENGINE_VISBACKENDS, scope=SCOPE)

# Modules whose import registers this package's types: the components, and the runtime's runner, loop, hooks
# and optimizer wrappers.
COMPONENT_MODULES = ("trainer.models", "trainer.datasets", "trainer.evaluation", "trainer.hooks",
                     "trainer.deferred_scalars", "trainer.compile_report", "trainer.optim_wrapper", "trainer.loops",
                     "trainer.runner", "trainer.visualization")


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every module that registers a type under the ``trainer`` scope.

    Args:
        init_default_scope (bool): Whether to make ``trainer`` mmengine's current default scope, so that
            ``type='ResNet'`` resolves here without a ``trainer.`` prefix (mmengine creates a new scope
            instance if another scope is current). Defaults to True.
    """
    import importlib

    from mmengine.registry import init_default_scope as set_default_scope

    for name in COMPONENT_MODULES:
        importlib.import_module(name)
    if init_default_scope:
        set_default_scope(SCOPE)
