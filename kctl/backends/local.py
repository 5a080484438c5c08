"""torchrun on this machine: ``kctl run``, one node of a job at a time (MMPretrain's dist_train.sh).

The command is ``kctl/templates/torchrun.j2``, e.g.
``torchrun --standalone --nnodes=1 --nproc-per-node=2 -m trainer CFG --launcher pytorch --resume``.
That text is what ``--dry-run`` prints, and it can be pasted into a shell as it is.

To run it, kctl starts the same arguments as ``<kctl's python> -m kctl.backends.local ...``: this
module's ``__main__``, which is torchrun (``torch.distributed.run.main``) in kctl's own
interpreter, so the ranks get kctl's Python and packages whatever ``torchrun`` comes first on
``PATH``. It differs from plain torchrun in one way: where a rank fails, it prints torchrun's
failure summary and exits with that rank's exit status (128+N for a rank killed by signal N),
where torchrun exits 1 with a traceback. kctl itself never imports torch; only that child does.
The trainer image's ``torchrun`` (``image/torchrun.sh``) is this module's ``__main__`` too, so a
pod's container ends with its ranks' status (143 when SIGTERM stopped them).

Without a rendezvous (one node, no port given) the command uses ``--standalone``: torchrun's c10d
store binds port 0 and keeps it, so two jobs started at once cannot pick the same port, and the
printed command keeps that property when pasted.

Restarts (``kctl run --max-restarts K``, torchrun's ``--max-restarts=K``): when a rank fails
(crash, SIGKILL, or exit 143 = "preempted, checkpoint saved"), torchrun stops the node's other
ranks and starts all of them again, up to K times; every start carries ``--resume``, so training
continues from the last checkpoint in work_dir. A signal to kctl itself (Ctrl-C, SIGTERM) is never
retried: the ranks get SIGTERM (they save a checkpoint and exit 143) and kctl exits 128+N; running
the same command again resumes.

The command then starts with ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``. By default (PyTorch 2.5+)
the ranks build their process group in torchrun's own rendezvous store, which outlives a restart:
the restarted ranks find the previous ranks' addresses there and fail to connect or wait forever
(pytorch/pytorch#135712). With the variable, each start gets a store of its own. The static
rendezvous of a multi-node job (or of a given port) always shares torchrun's store, so restarts are
one-node jobs without ``--port`` only; elsewhere rerun the command (it resumes).
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
from typing import Any

from kctl.backends.base import Backend, DryRun, render_template
from kctl.errors import UsageError
from kctl.job import TRAINER_MODULE, Job

#: What ``torchrun`` in the printed command is replaced with to run it (see the module docstring).
TORCHRUN = [sys.executable, "-m", "kctl.backends.local"]

#: Signals sent to kctl that are passed on to torchrun, which then stops every rank.
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def visible_gpus(environ=os.environ, proc_gpus: str = "/proc/driver/nvidia/gpus") -> int:
    """How many NVIDIA GPUs the ranks will see, found without importing torch.

    GPUs present are the entries of ``proc_gpus`` (the NVIDIA driver's list), else the ``GPU``
    lines of ``nvidia-smi -L``. Where ``CUDA_VISIBLE_DEVICES`` is set, the ranks see at most its
    entries before the first empty or negative one, as CUDA reads it: ``-1`` or an empty value
    means no GPU at all (MMPretrain's way to train on the CPU).
    """
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        entries = 0
        for entry in listed.split(","):
            if not entry.strip() or entry.strip().startswith("-"):
                break
            entries += 1
        if entries == 0:
            return 0
    try:
        present = len(os.listdir(proc_gpus))
    except OSError:
        present = _nvidia_smi_gpus()
    return present if listed is None else min(present, entries)


def _nvidia_smi_gpus() -> int:
    import shutil

    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    import subprocess

    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.splitlines())


def exit_status(returncode: int) -> int:
    """A process's exit status as a shell reports it: 128+N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


class LocalBackend(Backend):
    """torchrun on this machine; the caller starts it once per node of a multi-node job.

    ``job.rendezvous`` ``None`` means one node with a free port (``--standalone``); otherwise the
    static rendezvous at ``master_addr:master_port`` with this node's rank, as dist_train.sh does.
    """

    name = "local"
    template = "torchrun.j2"

    def render(self, job: Job, *, max_restarts: int = 0, **options: Any) -> DryRun:
        """The torchrun command for this node of ``job``.

        Args:
            job: The job; ``job.rendezvous`` says which node this is.
            max_restarts: torchrun's ``--max-restarts``: how often the ranks are started again
                after one fails. Defaults to 0 (no restart; the flag is left out).
        """
        if max_restarts < 0:
            raise UsageError(f"--max-restarts must not be negative, got {max_restarts}")
        topology, rendezvous = job.topology, job.rendezvous
        if max_restarts and rendezvous is not None:
            raise UsageError("--max-restarts works on one node without --port/PORT: torchrun's "
                             "static rendezvous keeps one store over restarts, where the restarted "
                             "ranks find stale addresses; rerun the command instead (it resumes)")
        if rendezvous is None and topology.nodes > 1:
            raise UsageError(f"a job on {topology.nodes} nodes needs a master address and port")
        if rendezvous is None:
            where = dict(standalone=True)
        else:
            where = dict(standalone=False, nnodes=topology.nodes, node_rank=rendezvous.node_rank,
                         master_addr=rendezvous.master_addr, master_port=rendezvous.master_port)
        text = render_template(
            self.template, **where, max_restarts=max_restarts,
            nproc_per_node=topology.procs_per_node, module=TRAINER_MODULE,
            trainer_args=job.trainer_args_for(str(job.config), "pytorch")).strip()
        warnings = []
        if not topology.uses_gpus:
            warnings.append(f"no GPU visible: starting {topology.procs_per_node} CPU "
                            f"process(es) with the {topology.backend} backend")
        words = shlex.split(text)
        return DryRun(backend=self.name, text=text,
                      request=TORCHRUN + words[words.index("torchrun") + 1:], warnings=warnings)

    def submit(self, dryrun: DryRun) -> int:
        """Run the command in the foreground and return its exit status.

        torchrun runs in its own process group. SIGINT, SIGTERM and SIGHUP sent to kctl (Ctrl-C in
        a terminal reaches kctl only) are passed on to it; torchrun then stops every rank and exits
        128+N. Should kctl itself be killed, Linux sends torchrun SIGTERM (``PR_SET_PDEATHSIG``).
        """
        import subprocess  # here, not at the top: --dry-run must stay fast

        proc: subprocess.Popen | None = None
        pending: list[int] = []

        def forward(signum, _frame):
            if proc is None:
                pending.append(signum)
            else:
                _signal_group(proc.pid, signum)

        previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
        try:
            proc = subprocess.Popen(dryrun.request, start_new_session=True,
                                    env={**os.environ, **command_env(dryrun.text)},
                                    preexec_fn=_term_with_parent())
            for signum in pending:
                _signal_group(proc.pid, signum)
            return exit_status(proc.wait())
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def command_env(text: str) -> dict[str, str]:
    """The ``NAME=value`` assignments before ``torchrun`` in the printed command."""
    words = shlex.split(text)
    return dict(word.split("=", 1) for word in words[:words.index("torchrun")])


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass


def _term_with_parent():
    """A ``preexec_fn`` asking Linux to SIGTERM the child when kctl dies; ``None`` elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def preexec():
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))

    return preexec


BACKEND = LocalBackend()


def _torchrun(argv: list[str]) -> int:
    """torchrun's ``main(argv)``, returning the first failing rank's exit status."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main

    try:
        main(argv)
    except ChildFailedError as err:
        sys.stderr.write(err.format_msg() + "\n")
        return exit_status(err.get_first_failure()[1].exitcode)
    except SignalException as err:
        return 128 + int(err.sigval)
    except KeyboardInterrupt:
        return 128 + int(signal.SIGINT)
    except Exception as err:  # rendezvous timeouts, ports in use, ...: one line, not a traceback
        detail = " ".join(str(err).split()) or type(err).__name__
        sys.stderr.write(f"kctl run: error: torchrun: {detail}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_torchrun(sys.argv[1:]))
