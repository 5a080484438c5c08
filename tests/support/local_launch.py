"""Helpers for tests that start ``kctl run`` and watch its processes.

Used by tests/kctl/backends/test_local.py, tests/kctl/commands/test_run.py and
tests/tools/test_dist_train.py. Processes are found through /proc (Linux), by parent pid.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: dist_train.sh's variables and others that would change what kctl run does.
LAUNCH_VARS = ("NNODES", "NODE_RANK", "PORT", "MASTER_ADDR", "MASTER_PORT", "KCTL_DRY_RUN",
               "RANK", "WORLD_SIZE", "LOCAL_RANK")

# Found anywhere in the output, not only at line starts: ranks share one pipe, and print() under
# ``python -u`` (how torchrun starts them) writes a line and its newline separately, so the
# lines of two ranks can run into each other.
START_LINE = re.compile(r"trainer: launcher=(\w+) rank=(\d+) local_rank=(\d+) world_size=(\d+) "
                        r"backend=(\w+) device=(cpu|cuda:\d+)")
WEIGHTS_LINE = re.compile(r"trainer: rank=(\d+) final_weights_sha256=([0-9a-f]{64})")

#: A stand-in for ``python -m trainer`` that starts in milliseconds: prints the start line and its
#: arguments, sleeps STUB_SLEEP seconds, exits with STUB_EXIT_RANK_<rank> (default 0) in its
#: first STUB_FAILING_STARTS starts (torchrun's TORCHELASTIC_RESTART_COUNT; default: every start)
#: and with 0 after those.
STUB_TRAINER = r"""
import json, os, sys, time
rank = os.environ["RANK"]
restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
# one write per line: lines of the two ranks never mix
sys.stdout.write(f"trainer: launcher=pytorch rank={rank} local_rank={os.environ['LOCAL_RANK']} "
                 f"world_size={os.environ['WORLD_SIZE']} backend=gloo device=cpu\n"
                 "stub: argv=" + json.dumps(sys.argv[1:]) + "\n")
sys.stdout.flush()
time.sleep(float(os.environ.get("STUB_SLEEP", "0")))
failing = int(os.environ.get("STUB_FAILING_STARTS", str(restart + 1)))
sys.exit(int(os.environ.get("STUB_EXIT_RANK_" + rank, "0")) if restart < failing else 0)
"""
ARGV_LINE = re.compile(r"^stub: argv=(.*)$", re.MULTILINE)


def launch_env(**extra: str) -> dict[str, str]:
    """The environment for a ``kctl run`` under test: none of the launch variables, CPU only
    (the same on a GPU machine), unbuffered output, the repository importable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    env.update(CUDA_VISIBLE_DEVICES="-1", PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO),
               OMP_NUM_THREADS="1")
    env.update(extra)
    return env


def kctl(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO,
         timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``python -m kctl ARGS`` to the end; output as text."""
    return subprocess.run([sys.executable, "-m", "kctl", *args], cwd=cwd, env=env or launch_env(),
                          capture_output=True, text=True, timeout=timeout)


class Watched:
    """A process whose stdout and stderr (merged) are read line by line as they come."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path = REPO):
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    def kctl(cls, *args: str, env: dict[str, str], cwd: Path = REPO) -> "Watched":
        return cls([sys.executable, "-m", "kctl", *args], env=env, cwd=cwd)

    def _read(self):
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def matches(self, pattern: re.Pattern) -> list[re.Match]:
        """Every match of ``pattern`` in the output so far."""
        with self._changed:
            return list(pattern.finditer(self.output))

    def wait_matches(self, pattern: re.Pattern, count: int, timeout: float) -> list[re.Match]:
        """Wait until ``pattern`` matches ``count`` times; fail with the output so far."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = list(pattern.finditer(self.output))
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"{count} line(s) matching {pattern.pattern!r} did not "
                                         f"come; output:\n{self.output}")
                self._changed.wait(min(left, 0.5))

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"still running after {timeout}s; output:\n{self.output}")
        self._reader.join(10)
        return code

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


def children(pid: int) -> list[int]:
    """Pids of the live processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat and int(stat[1]) == pid and stat[0] != "Z":
                found.append(int(entry))
    return found


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        kids = children(todo.pop())
        found += kids
        todo += kids
    return found


def alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def _stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (state, ppid, ...), or None if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def rank_pids(kctl_pid: int) -> dict[int, int]:
    """``{RANK: pid}`` of the training processes under a ``kctl run`` (``-m trainer`` children)."""
    ranks = {}
    for pid in descendants(kctl_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-m" in argv and argv[argv.index(b"-m") + 1] == b"trainer":
            rank = [v[5:] for v in environ if v.startswith(b"RANK=")]
            if rank:
                ranks[int(rank[0])] = pid
    return ranks


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait until none of ``pids`` is alive; return those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        left = [pid for pid in pids if alive(pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def write_stub_trainer(folder: Path) -> Path:
    """Put the stub ``trainer`` package and a config ``cfg.py`` into ``folder``. Started with
    ``folder`` as working folder, ``python -m trainer`` finds the stub: the working folder
    comes first on ``sys.path``, before PYTHONPATH."""
    (folder / "trainer").mkdir()
    (folder / "trainer" / "__init__.py").write_text("")
    (folder / "trainer" / "__main__.py").write_text(STUB_TRAINER)
    (folder / "cfg.py").write_text("model = dict(type='Stub')\n")
    return folder


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
