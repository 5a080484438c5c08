"""kctl: one MMPretrain-style training job on a laptop, a multi-GPU box, Slurm and Kubernetes."""

__version__ = "0.1.0"
