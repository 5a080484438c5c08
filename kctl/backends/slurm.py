"""Slurm: a :class:`~kctl.job.Job` as one sbatch script; ``submit`` pipes it to ``sbatch``.

The script is MMPretrain's ``tools/slurm_train.sh`` srun line moved into a batch job: the
``#SBATCH`` lines ask for the allocation, one ``srun`` starts one ``python -u -m trainer`` per task
with ``--launcher slurm --resume``, and every rank meets at the first node of the allocation on a
port derived from the job id (the same on all ranks, outside the ephemeral range 32768-60999).

Preemption (``--requeue``): the trainer answers SIGTERM by saving a checkpoint and exiting 143;
the script then requeues the job (``scontrol requeue``), which resumes from that checkpoint. With
a ``--time`` limit the tasks get that SIGTERM :data:`WARNING_SECONDS` before the limit
(``#SBATCH --signal=TERM@120``), so a long training continues in the next allocation instead of
ending TIMEOUT. See the comment in ``kctl/templates/sbatch.sh.j2`` for what Slurm's own SIGTERM
(scancel, preemption, time limit) and KillWait do.

Values end up in two languages and are made safe for each: ``#SBATCH`` lines are read by sbatch's
own directive parser (``#`` starts a comment, quotes must pair, ``\\`` is dropped), and the body is
bash (every user value is ``shlex.quote``-d; ``SRUN_ARGS`` becomes a bash array).
"""

from __future__ import annotations

import re
import shlex
import subprocess
from typing import Sequence

from kctl.backends.base import Backend, DryRun, render_template
from kctl.errors import KctlError, UsageError
from kctl.job import TRAINER_MODULE, Job, check_port

#: Without ``--port``: MASTER_PORT = PORT_BASE + SLURM_JOB_ID % PORT_SPAN, i.e. 20000-29999.
PORT_BASE = 20000
PORT_SPAN = 10000

#: With ``--requeue`` and ``--time``: the tasks get SIGTERM this many seconds before the time
#: limit (``#SBATCH --signal=TERM@120``), time to save a checkpoint and requeue. Slurm sends it
#: up to 60 s earlier than asked.
WARNING_SECONDS = 120

#: Slurm refuses longer job names ("Pathname ... too long").
MAX_JOB_NAME = 1024

_PARTITION = re.compile(r"^[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*$")
# Characters sbatch's #SBATCH parser gives a meaning to (or that Slurm tools print badly).
_NAME_BAD = re.compile(r"[\s\"'\\#]|[\x00-\x1f\x7f]")
_TIME = re.compile(r"^(\d+(:\d+){0,2}|\d+-\d+(:\d+){0,2}|UNLIMITED|INFINITE|unlimited|infinite)$")
_MEM = re.compile(r"^\d+[KMGTkmgt]?$")
_DEP_ITEM = r"(singleton|[a-z]+(:[0-9]+([_+][0-9*]+)?)+)"
_DEPENDENCY = re.compile(rf"^{_DEP_ITEM}([,?]{_DEP_ITEM})*$")
# The signals the trainer saves a checkpoint on, to the job steps (not B: the batch shell only).
_SIGNAL = re.compile(r"^(R:)?(SIG)?(TERM|INT|15|2)(@\d{1,5})?$")
_UNLIMITED = ("UNLIMITED", "INFINITE", "unlimited", "infinite")


def check_job_name(name: str) -> str:
    """Return ``name`` if Slurm and an ``#SBATCH`` line can carry it unchanged.

    Slurm itself takes up to 1024 characters of anything, but in an ``#SBATCH`` line ``#``
    starts a comment, unpaired quotes are fatal, ``\\`` vanishes and blanks split the line; and
    ``squeue``/``scontrol -o`` print blanks ambiguously. So: 1-1024 printable characters without
    blanks, quotes, backslashes or ``#``.
    """
    if not name:
        raise UsageError("JOB_NAME must not be empty")
    if len(name) > MAX_JOB_NAME:
        raise UsageError(f"JOB_NAME is {len(name)} characters; Slurm allows at most {MAX_JOB_NAME}")
    bad = _NAME_BAD.search(name)
    if bad:
        raise UsageError(f"JOB_NAME {name!r} contains {bad.group()!r}: Slurm job names here must not "
                         "contain blanks, quotes, backslashes, '#' or control characters")
    return name


def check_partition(partition: str) -> str:
    """Return ``partition`` if it is a partition name (or a comma-separated list of them)."""
    if not _PARTITION.match(partition):
        raise UsageError(f"PARTITION {partition!r} is not a Slurm partition name: letters, digits, "
                         "'_', '.', '-', several separated by ','")
    return partition


def sbatch_value(value: str, what: str) -> str:
    """``value`` as it must appear after ``--option=`` in an ``#SBATCH`` line.

    Plain values stay as they are; values with blanks or ``#`` are put in double quotes, which
    sbatch removes. Double quotes, backslashes and control characters cannot be carried at all.
    """
    if not value:
        raise UsageError(f"{what} must not be empty")
    if re.search(r"[\"\\\x00-\x1f\x7f]", value):
        raise UsageError(f"{what} {value!r} cannot be written into an #SBATCH line: it contains a "
                         "double quote, a backslash or a control character")
    return f'"{value}"' if re.search(r"[\s#']", value) else value


def _check(pattern: re.Pattern, value: str | None, what: str, form: str) -> str | None:
    if value is not None and not pattern.match(value):
        raise UsageError(f"{what} {value!r} is not {form}")
    return value


class SlurmBackend(Backend):
    """Renders ``kctl/templates/sbatch.sh.j2`` and submits it with ``sbatch --parsable``."""

    name = "slurm"
    template = "sbatch.sh.j2"

    def render(self, job: Job, *, partition: str, chdir: str, config: str | None = None,
               cpus_per_task: int = 5, srun_args: Sequence[str] = (), python: str = "python",
               pythonpath: str | None = None, port: int | None = None, time: str | None = None,
               account: str | None = None, qos: str | None = None,
               constraint: str | None = None, mem: str | None = None, exclusive: bool = False,
               requeue: bool = False, dependency: str | None = None,
               signal: str | None = None) -> DryRun:
        """The sbatch script for ``job``.

        Args:
            job: The job; ``job.work_dir`` must be absolute (the log goes there) and
                ``job.name`` becomes the Slurm job name.
            partition: ``#SBATCH --partition``.
            chdir: Absolute directory the job runs in (``#SBATCH --chdir``); relative paths in
                the trainer's arguments are relative to it.
            config: The config path as the trainer gets it. Defaults to ``str(job.config)``.
            cpus_per_task: CPUs per task (data loader workers + 1). Defaults to 5, as in
                MMPretrain's slurm_train.sh.
            srun_args: Extra ``srun`` arguments, already split into words.
            python: Interpreter on the compute nodes. Defaults to ``python``.
            pythonpath: Prepended to ``PYTHONPATH`` in the job (where ``trainer`` is importable
                from), or None to leave ``PYTHONPATH`` alone.
            port: Fixed ``MASTER_PORT``; None derives it from the job id (20000-29999).
            time, account, qos, constraint, mem, dependency: The ``#SBATCH`` options of those
                names, left out when None.
            exclusive, requeue: Add ``#SBATCH --exclusive`` / ``--requeue``; ``requeue`` also
                adds ``--open-mode=append`` (one log over all runs) and makes the script
                requeue the job when the trainer stops with 143 (checkpoint saved).
            signal: ``#SBATCH --signal``, ``[R:]TERM|INT[@SECONDS]``: the signal the tasks get
                before the time limit. Defaults to ``TERM@120`` with ``requeue`` and a finite
                ``time``, else none.

        Raises:
            UsageError: A value Slurm would refuse or misread.
        """
        topo = job.topology
        if not job.work_dir or not job.work_dir.startswith("/"):
            raise UsageError(f"WORK_DIR must be an absolute path, got {job.work_dir!r}")
        if not chdir.startswith("/"):
            raise UsageError(f"--chdir must be an absolute path, got {chdir!r}")
        if cpus_per_task < 1:
            raise UsageError(f"CPUS_PER_TASK must be at least 1, got {cpus_per_task}")
        if port is not None:
            check_port(port)
        _check(_TIME, time, "--time", "a Slurm time limit (MINUTES, [D-]HH:MM[:SS], UNLIMITED)")
        _check(_MEM, mem, "--mem", "a Slurm memory size (e.g. 64G, 4000M, 0 = all)")
        _check(_DEPENDENCY, dependency, "--dependency", "a Slurm dependency (e.g. afterok:123)")
        if signal is not None and signal.startswith("B:"):
            raise UsageError(f"--signal {signal!r}: B: signals only the batch shell; the trainer "
                             "runs in the job step and must get the signal (leave out B:)")
        _check(_SIGNAL, signal, "--signal", "TERM or INT with an optional @SECONDS before the "
               "time limit, e.g. TERM@120 (the signals the trainer saves a checkpoint on)")
        if signal is None and requeue and time is not None and time not in _UNLIMITED:
            signal = f"TERM@{WARNING_SECONDS}"
        # '%' is a pattern character in sbatch's --output; '%%' is a literal one.
        log = job.work_dir.rstrip("/").replace("%", "%%") + "/slurm-%j.out"
        sbatch = {
            "partition": check_partition(partition),
            "job_name": check_job_name(job.name),
            "chdir": sbatch_value(chdir, "--chdir"),
            "output": sbatch_value(log, "WORK_DIR"),
            "time": time,
            "mem": mem,
            "dependency": dependency,
            "signal": signal,
            "account": account and sbatch_value(account, "--account"),
            "qos": qos and sbatch_value(qos, "--qos"),
            "constraint": constraint and sbatch_value(constraint, "--constraint"),
        }
        config = config if config is not None else str(job.config)
        text = render_template(
            self.template,
            topology=topo,
            sbatch=sbatch,
            cpus_per_task=cpus_per_task,
            exclusive=exclusive,
            requeue=requeue,
            port=port,
            port_base=PORT_BASE,
            port_span=PORT_SPAN,
            pythonpath=pythonpath,
            srun_args=list(srun_args),
            python=python,
            module=TRAINER_MODULE,
            trainer_args=job.trainer_args_for(config, "slurm", job.work_dir),
        )
        return DryRun(backend=self.name, text=text, request=["sbatch", "--parsable"])

    def submit(self, dryrun: DryRun) -> str:
        """Pipe the script to ``sbatch --parsable``; return the job id."""
        try:
            proc = subprocess.run(dryrun.request, input=dryrun.text, capture_output=True,
                                  text=True)
        except FileNotFoundError:
            raise KctlError("sbatch not found on PATH: run this on a Slurm login node, or save "
                            "the script (-o FILE) and submit it there") from None
        if proc.returncode:
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            detail = lines[-1].strip() if lines else f"exit status {proc.returncode}"
            raise KctlError(f"sbatch failed: {detail}")
        out = proc.stdout.strip().splitlines()
        if not out:
            raise KctlError("sbatch printed no job id")
        # --parsable prints "JOBID" or "JOBID;CLUSTER"
        return out[-1].split(";")[0]


BACKEND = SlurmBackend()


def split_srun_args(value: str, what: str = "SRUN_ARGS") -> list[str]:
    """``SRUN_ARGS`` split into words as a shell would, without running anything."""
    try:
        return shlex.split(value)
    except ValueError as err:
        raise UsageError(f"{what} cannot be split into words: {err}") from None
