"""Preemption: SIGTERM or SIGINT stops training after the current iteration, with a checkpoint, exit 143.

Clusters stop a job with SIGTERM and a grace period before SIGKILL (Kubernetes:
``terminationGracePeriodSeconds``, 30 s by default; Slurm: ``--signal``, ``KillWait``; torchrun
forwards it to its workers). :func:`install` makes the first SIGTERM or SIGINT only ask for a stop;
:class:`trainer.hooks.PreemptionHook` then stops every rank at the same iteration, rank 0 saves a
checkpoint, and the process exits with :data:`EXIT_CODE` 143 (128 + SIGTERM, what a shell reports
for a job stopped by SIGTERM): "preempted, checkpoint saved: run again with --resume". Launchers
restart or requeue on it.

Further SIGTERMs are ignored (``SIG_IGN``, which also holds while the process exits: torchrun sends
SIGTERM to the ranks still running when the first one exits), so that a save in progress finishes and
every rank exits with 143; a second SIGINT (Ctrl-C twice) interrupts at once (exit 130, no checkpoint).
"""

from __future__ import annotations

import os
import signal

#: Exit status of a preempted run (a checkpoint was saved).
EXIT_CODE = 143

_requested: int | None = None


class Preempted(Exception):
    """Raised on every rank once the stop checkpoint is saved; ``python -m trainer`` exits 143."""

    exit_code = EXIT_CODE


def install() -> None:
    """Make SIGTERM and SIGINT ask for a stop (call from the main thread, before training)."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _on_signal)


def requested() -> bool:
    """Whether a SIGTERM or SIGINT arrived since :func:`install`."""
    return _requested is not None


def _on_signal(signum, frame) -> None:
    global _requested
    if _requested is not None:
        if signum == signal.SIGINT:
            signal.default_int_handler(signum, frame)  # raises KeyboardInterrupt
        return
    _requested = signum
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # os.write: a signal handler must not re-enter the buffered sys.stderr
    os.write(2, f"trainer: {signal.Signals(signum).name} received: stopping after the current iteration "
                "with a checkpoint (exit status 143)\n".encode())
