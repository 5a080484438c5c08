"""PID 1 of a container emulated by :mod:`tests.support.operator_emulator`.

Usage: ``python container_init.py PARENT_PID GRACE_SECONDS COMMAND [ARG...]``.

A real container is a PID namespace: when its main process ends, or when the runtime kills it, the
kernel kills every other process inside it. ``torchrun`` starts its workers in sessions of their
own, so killing a process group is not enough to emulate that. This small init gives the same
guarantee without privileges:

- it is a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``), so every process the command
  leaves behind is re-parented to it and stays findable as its descendant;
- when the command exits, it SIGKILLs all remaining descendants and exits with the command's status,
  ``128 + N`` when the command died of signal N (what the kubelet reports, e.g. 137 for SIGKILL);
- SIGTERM is forwarded to the command, and everything is SIGKILLed ``GRACE_SECONDS`` later if the
  command is still running (the kubelet's graceful stop with ``terminationGracePeriodSeconds``);
- when its parent (the emulator) dies, it gets SIGTERM (``PR_SET_PDEATHSIG``) and so never
  outlives the test.

The emulator kills a container by SIGKILLing this process's descendants and then this process.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def descendants(root: int) -> list[int]:
    """Live process ids below ``root`` in the process tree, read from ``/proc``.

    A zombie is dead already (its parent reaps it) and is not listed, but the walk goes through
    it: a thread-group leader that has exited shows as a zombie while its other threads are still
    exiting, and until the last one has, its children keep it as their parent."""
    children: dict[int, list[int]] = {}
    zombies: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == b"Z":
            zombies.add(int(entry))
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, pending = [], [root]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in zombies:
                found.append(child)
            pending.append(child)
    return found


def kill_descendants(root: int) -> None:
    """SIGKILL everything below ``root`` until nothing is left (a dying process may still fork)."""
    while True:
        alive = descendants(root)
        if not alive:
            return
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if root == os.getpid():
            _reap()


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(argv: list[str]) -> int:
    parent, grace, command = int(argv[0]), int(argv[1]), argv[2:]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the emulator died before the death signal was armed
        return 143
    try:
        main_proc = subprocess.Popen(command)
    except OSError as err:  # what a runtime reports for a missing or non-executable entry point
        sys.stderr.write(f"container init: cannot start {command[0]!r}: {err.strerror}\n")
        return 127

    def stop(*_):
        main_proc.send_signal(signal.SIGTERM)
        signal.alarm(grace)

    def kill(*_):
        kill_descendants(os.getpid())
        os._exit(128 + signal.SIGKILL)

    signal.signal(signal.SIGALRM, kill)
    signal.signal(signal.SIGTERM, stop)
    while True:
        pid, status = os.waitpid(-1, 0)  # reaps re-parented orphans too
        if pid == main_proc.pid:
            break
    main_proc.returncode = 0  # already reaped above; keep Popen from waiting on it again
    kill_descendants(os.getpid())
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
