"""The trainer: MMPretrain's ``tools/train.py`` on mmengine's Runner, CPU or GPU.

Run it as ``python -m trainer CONFIG [flags]`` (see :mod:`trainer.cli`). Importing this package is cheap:
torch and mmengine are imported only when a run starts.
"""

__version__ = "0.1.0"
