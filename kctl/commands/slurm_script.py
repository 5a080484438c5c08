"""``kctl slurm-script PARTITION JOB_NAME CONFIG WORK_DIR [PY_ARGS...]``: an sbatch script.

The interface of MMPretrain's ``tools/slurm_train.sh`` (same positional arguments, same
environment variables and defaults), but the result is a batch script to read, keep or pipe into
``sbatch`` instead of a blocking ``srun``. Everything is checked before anything is queued.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from kctl import configfiles
from kctl.backends.slurm import BACKEND, split_srun_args
from kctl.files import write_whole
from kctl.errors import KctlError, UsageError
from kctl.job import Job, Topology, check_port, parse_int

NAME = "slurm-script"
HELP = "Write an sbatch script for a training job (MMPretrain's slurm_train.sh as a batch job)"
ORDER = 25
EXAMPLES = """\
environment variables (as in MMPretrain's tools/slurm_train.sh; the flags win):
  GPUS=8             total GPUs = tasks; 0 trains on CPUs (NTASKS tasks on one node, no --gres)
  GPUS_PER_NODE=8    nodes = GPUS / GPUS_PER_NODE (GPUS must be a multiple, or fit on one node)
  CPUS_PER_TASK=5    CPUs per task (data loader workers + 1)
  SRUN_ARGS=""       extra srun arguments, split into words like a shell would (nothing is run)
  NTASKS=1           CPU tasks when GPUS=0
  PORT               fixed MASTER_PORT (default: 20000 + SLURM_JOB_ID % 10000, same on all ranks)

Everything after WORK_DIR goes to the trainer unchanged (PY_ARGS); put kctl's options before
PARTITION. The job runs in the current directory (or --chdir), so relative CONFIG and WORK_DIR
mean the same inside the job; WORK_DIR is made absolute and created if missing, because Slurm
opens the job's log WORK_DIR/slurm-<jobid>.out before the script starts. When kctl runs from a
source checkout, the job's PYTHONPATH starts with that checkout (like slurm_train.sh's
PYTHONPATH), so `python -m trainer` imports the same project on the compute nodes.

Preemption: with --requeue, a job that Slurm preempts (PreemptMode=REQUEUE, scontrol requeue), or
that is told to stop with `scancel --signal=TERM JOBID` or --signal before its --time limit, comes
back and resumes: the trainer finishes its iteration, saves a checkpoint and exits 143, and the
script requeues the job (a requeued job waits about 2 minutes before Slurm starts it again). The
log WORK_DIR/slurm-<jobid>.out keeps the output of every run. Slurm gives the tasks KillWait
seconds (30 by default) between its SIGTERM and SIGKILL; without --requeue, exit 143 ends the job
FAILED and submitting the script again resumes.

Examples:
  # Look at the script for 16 GPUs on 2 nodes, then submit it
  GPUS=16 kctl slurm-script gpu digits configs/resnet/resnet18_1xb64_digits.py work_dirs/digits
  kctl slurm-script --gpus 16 gpu digits configs/resnet/resnet18_1xb64_digits.py work_dirs/digits | sbatch

  # Submit directly (prints the job id), then chain a second run after it
  ID=$(kctl slurm-script --submit --time 2:00:00 gpu digits CONFIG work_dirs/digits)
  kctl slurm-script --submit --dependency afterok:$ID gpu digits-ft CONFIG work_dirs/ft --amp

  # A week of training in 1-day allocations: SIGTERM 2 minutes before each limit, save, requeue
  kctl slurm-script --submit --requeue --time 1-00:00:00 gpu digits CONFIG work_dirs/digits

  # Two CPU tasks, trainer options after WORK_DIR
  kctl slurm-script --gpus 0 --ntasks 2 debug digits CONFIG work_dirs/cpu --cfg-options train_cfg.max_epochs=1
"""

_DEFAULTS = {"GPUS": 8, "GPUS_PER_NODE": 8, "CPUS_PER_TASK": 5, "NTASKS": 1}


def add_arguments(parser) -> None:
    parser.add_argument("partition", metavar="PARTITION", help="Slurm partition (-p)")
    parser.add_argument("job_name", metavar="JOB_NAME", help="Slurm job name (--job-name)")
    parser.add_argument("config", metavar="CONFIG",
                        help="the mmengine config file, or mmpretrain::FAMILY/NAME.py")
    parser.add_argument("work_dir", metavar="WORK_DIR",
                        help="checkpoints, logs and the job's slurm-<jobid>.out (shared storage)")
    parser.add_argument("py_args", metavar="PY_ARGS", nargs="...",
                        help="more arguments for the trainer, e.g. --cfg-options k=v --amp")
    topo = parser.add_argument_group("resources")
    topo.add_argument("--gpus", metavar="N", help="total GPUs = tasks; 0 = CPU (env GPUS, default 8)")
    topo.add_argument("--gpus-per-node", metavar="N",
                      help="GPUs per node (env GPUS_PER_NODE, default 8)")
    topo.add_argument("--ntasks", metavar="N",
                      help="CPU tasks on one node when --gpus 0 (env NTASKS, default 1)")
    topo.add_argument("--cpus-per-task", metavar="N",
                      help="CPUs per task (env CPUS_PER_TASK, default 5)")
    topo.add_argument("--mem", metavar="SIZE", help="memory per node, e.g. 64G (#SBATCH --mem)")
    topo.add_argument("--time", metavar="TIME", help="time limit, e.g. 2:00:00 or 1-00:00:00")
    topo.add_argument("--account", metavar="NAME", help="account to charge")
    topo.add_argument("--qos", metavar="NAME", help="quality of service")
    topo.add_argument("--constraint", metavar="EXPR", help="node features, e.g. a100")
    topo.add_argument("--exclusive", action="store_true", help="do not share nodes")
    topo.add_argument("--requeue", action="store_true",
                      help="requeue the job when preempted or near --time; it resumes")
    topo.add_argument("--signal", metavar="SIG@SEC",
                      help="signal the tasks SEC s before --time (with --requeue: TERM@120)")
    topo.add_argument("--dependency", metavar="DEP", help="e.g. afterok:1234")
    launch = parser.add_argument_group("launch")
    launch.add_argument("--srun-args", metavar="ARGS",
                        help="extra srun arguments: --srun-args='--mpi=pmix ...' (env SRUN_ARGS)")
    launch.add_argument("--port", metavar="PORT",
                        help="MASTER_PORT (env PORT; default 20000 + SLURM_JOB_ID %% 10000)")
    launch.add_argument("--python", metavar="PATH", default="python",
                        help="Python on the compute nodes (default: python)")
    launch.add_argument("--chdir", metavar="DIR",
                        help="directory the job runs in (default: the current directory)")
    out = parser.add_argument_group("output")
    out.add_argument("-o", "--output", metavar="FILE",
                     help="write the script to FILE instead of stdout (whole or not at all)")
    out.add_argument("--submit", action="store_true",
                     help="submit with sbatch and print the job id")
    parser.set_defaults(_own_options=frozenset(
        option for action in parser._actions for option in action.option_strings))


def _own_options(parser_options: set[str], py_args: list[str]) -> None:
    """Refuse kctl options that landed after WORK_DIR (they would go to the trainer)."""
    for arg in py_args:
        if arg.split("=", 1)[0] in parser_options:
            raise UsageError(f"{arg.split('=', 1)[0]} after WORK_DIR would be passed to the "
                             "trainer; put kctl options before PARTITION")


def _number(flag_value: str | None, flag: str, env: str) -> int:
    """An integer setting: the flag, else the environment variable, else the seed's default."""
    if flag_value is not None:
        return parse_int(flag_value, flag)
    value = os.environ.get(env)
    if value is None or value == "":
        return _DEFAULTS[env]
    return parse_int(value, env)


def _source(flag_value: str | None, flag: str, env: str) -> str:
    """Which of the two a setting was read from, for error messages."""
    return flag if flag_value is not None else env


def topology_from(gpus: int, gpus_per_node: int, ntasks: int,
                  names: tuple[str, str, str] = ("GPUS", "GPUS_PER_NODE", "NTASKS")) -> Topology:
    """Slurm's GPUS/GPUS_PER_NODE layout, or ``ntasks`` CPU tasks on one node when GPUS is 0.

    ``names`` say where the three values came from (flags or variables), for error messages.
    """
    gpus_name, per_node_name, ntasks_name = names
    if gpus < 0:
        raise UsageError(f"{gpus_name} must not be negative, got {gpus}")
    if gpus_per_node < 1:
        raise UsageError(f"{per_node_name} must be at least 1, got {gpus_per_node}")
    if gpus == 0:
        if ntasks < 1:
            raise UsageError(f"{ntasks_name} must be at least 1, got {ntasks}")
        return Topology.per_node(0, nodes=1, cpu_procs=ntasks)
    return Topology.from_total(gpus, gpus_per_node)


def project_root() -> str | None:
    """The source checkout kctl runs from (it holds ``trainer/`` and ``pyproject.toml``), if any."""
    root = Path(__file__).resolve().parents[2]
    if (root / "trainer" / "__main__.py").is_file() and (root / "pyproject.toml").is_file():
        return str(root)
    return None


def build(args):
    """Validate the command line and environment; return the rendered script and its job."""
    chdir = os.path.abspath(args.chdir or os.getcwd())
    if not os.path.isdir(chdir):
        raise UsageError(f"--chdir {args.chdir}: no such directory")
    gpus = _number(args.gpus, "--gpus", "GPUS")
    gpus_per_node = _number(args.gpus_per_node, "--gpus-per-node", "GPUS_PER_NODE")
    cpus_per_task = _number(args.cpus_per_task, "--cpus-per-task", "CPUS_PER_TASK")
    if args.ntasks is not None and gpus > 0:
        raise UsageError("--ntasks is for CPU jobs (--gpus 0); with GPUs there is one task per GPU")
    ntasks = _number(args.ntasks, "--ntasks", "NTASKS") if gpus == 0 else 0
    topology = topology_from(gpus, gpus_per_node, ntasks, (
        _source(args.gpus, "--gpus", "GPUS"),
        _source(args.gpus_per_node, "--gpus-per-node", "GPUS_PER_NODE"),
        _source(args.ntasks, "--ntasks", "NTASKS")))
    if cpus_per_task < 1:
        raise UsageError(f"{_source(args.cpus_per_task, '--cpus-per-task', 'CPUS_PER_TASK')} "
                         f"must be at least 1, got {cpus_per_task}")
    port = None
    port_value = args.port if args.port is not None else os.environ.get("PORT") or None
    if port_value is not None:
        name = _source(args.port, "--port", "PORT")
        port = check_port(parse_int(port_value, name), name)
    if args.srun_args is not None:
        srun_args = split_srun_args(args.srun_args, "--srun-args")
    else:
        srun_args = split_srun_args(os.environ.get("SRUN_ARGS", ""))

    config_path = str(configfiles.resolve_config(args.config, relative_to=chdir))
    configfiles.collect(config_path)  # exists, and it and its _base_ files parse
    work_dir = os.path.normpath(os.path.join(chdir, args.work_dir))
    job = Job(config=Path(config_path), topology=topology, name=args.job_name,
              work_dir=work_dir, trainer_args=tuple(args.py_args))
    return BACKEND.render(
        job, partition=args.partition, chdir=chdir, config=args.config,
        cpus_per_task=cpus_per_task, srun_args=srun_args, python=args.python,
        pythonpath=project_root(), port=port, time=args.time, account=args.account,
        qos=args.qos, constraint=args.constraint, mem=args.mem, exclusive=args.exclusive,
        requeue=args.requeue, dependency=args.dependency, signal=args.signal), job


def run(args) -> int:
    _own_options(args._own_options, args.py_args)
    dryrun, job = build(args)
    try:
        os.makedirs(job.work_dir, exist_ok=True)
    except OSError as err:
        raise KctlError(f"cannot create WORK_DIR {job.work_dir}: {err.strerror}") from None
    if args.output:
        write_whole(args.output, dryrun.text, mode=0o755)
    elif not args.submit:
        sys.stdout.write(dryrun.text)
    if args.submit:
        print(BACKEND.submit(dryrun))
    return 0
