"""Test support: make checkpoint writes slow, so that a test can SIGKILL the trainer in the middle of one.

A test config loads it with ``custom_imports = dict(imports=['tests.trainer.slow_save'])``. Importing it
replaces mmengine's local file backend (the one ``save_checkpoint`` writes through) by
:class:`SlowLocalBackend`, which writes in 16 KiB chunks 0.05 s apart and writes
``slow-save: writing <path>`` to stderr once the first chunk is on disk. The trainer's own code runs
unchanged: only the time a write takes grows.
"""

import sys
import time

from mmengine.fileio import LocalBackend, register_backend

CHUNK = 16 * 1024
PAUSE = 0.05


class SlowLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose ``put`` writes slowly (see the module docstring)."""

    def put(self, obj: bytes, filepath) -> None:
        with open(filepath, "wb") as f:
            for start in range(0, len(obj), CHUNK):
                f.write(obj[start:start + CHUNK])
                f.flush()
                if start == 0:
                    sys.stderr.write(f"slow-save: writing {filepath}\n")
                    sys.stderr.flush()
                time.sleep(PAUSE)


register_backend("local", SlowLocalBackend, force=True, prefixes="")
