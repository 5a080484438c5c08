"""``python tools/train.py CONFIG [flags]``: the same as ``python -m trainer CONFIG [flags]``.

MMPretrain's entry point, kept for its users and for tools/dist_train.sh and tools/slurm_train.sh.
"""

import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root
    from trainer.cli import main

    sys.exit(main(prog="tools/train.py"))
