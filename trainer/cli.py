"""``python -m trainer``: the command line of MMPretrain's ``tools/train.py``.

The flags and their meaning are MMPretrain's (see :func:`build_parser`); the run itself is in
:mod:`trainer.run`. Parsing imports neither torch nor mmengine's Runner, so ``--help`` and bad input
answer at once.
"""

from __future__ import annotations

import argparse
import os
import sys

from trainer import performance
from trainer.errors import TrainerError
from trainer.malloc import keep_freed_memory
from trainer.preemption import Preempted
from trainer.threads import wait_policy

DESCRIPTION = "Train a model (MMPretrain's tools/train.py on mmengine's Runner; CPU or GPU)."

EPILOG = """\
GPUs are used automatically when present; CUDA_VISIBLE_DEVICES=-1 (or empty) trains on the CPU.

environment variables:
  TRAINER_AMP_DTYPE   dtype used by --amp: auto (default) = float16 on CUDA, bfloat16 on CPUs with
                      native bf16 (AVX512-BF16 or AMX), else float32 with a warning; bf16 forces
                      bfloat16 (also on CPUs without native bf16, where it is slow); fp16 (CUDA only);
                      fp32 turns mixed precision off
  TRAINER_TRUSTED_CHECKPOINTS
                      checkpoint files or directories (separated by '%s') that may be fully
                      unpickled besides work_dir and --resume PATH; other checkpoints load weights-only
  TRAINER_DEBUG=1     show the Python traceback of an unexpected error instead of one line
  OMP_WAIT_POLICY     set to PASSIVE (idle OpenMP threads sleep at once instead of spinning) when
                      this node's ranks x OMP_NUM_THREADS exceed its cores; otherwise OpenMP's
                      default (faster on cores of your own). Set PASSIVE where other jobs share them

SIGTERM or SIGINT stops training after the current iteration: rank 0 saves a checkpoint and every rank
exits with status 143 (run again with --resume to continue exactly where it stopped).

exit status: 0 done, 1 failed, 2 bad command line, config options or launch environment, 143 preempted
(checkpoint saved: retry with --resume), 130 interrupted (a second SIGINT).
""" % os.pathsep


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``trainer: error: ...``) and exit status 2."""

    def error(self, message):
        sys.stderr.write(f"trainer: error: {message} (see --help)\n")
        sys.exit(2)


class DictAction(argparse.Action):
    """mmengine's ``DictAction`` (``KEY=VALUE`` pairs, lists ``a,b`` / ``[a,b]`` / ``[(a,b),(c,d)]``).

    Unlike mmengine's, a pair without ``=`` or with unbalanced brackets is a usage error, not a
    traceback.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        from mmengine.config import DictAction as MMDictAction

        options = dict(getattr(namespace, self.dest, None) or {})
        for pair in values:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                parser.error(f"argument {option_string}: expected KEY=VALUE, got {pair!r}")
            try:
                options[key] = MMDictAction._parse_iterable(value)
            except (AssertionError, RecursionError):
                parser.error(f"argument {option_string}: cannot parse the value of {pair!r} "
                             "(lists are a,b or \"[a,b]\" or \"[(a,b),(c,d)]\"; dict(...) is not supported)")
        setattr(namespace, self.dest, options)


def build_parser(prog: str = "python -m trainer") -> ArgumentParser:
    """The parser of ``python -m trainer`` (same flags and defaults as MMPretrain's tools/train.py)."""
    parser = ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="train config file path")
    parser.add_argument("--work-dir", help="the dir to save logs and models "
                        "(default: work_dir in the config, else ./work_dirs/<config file name>)")
    parser.add_argument("--resume", nargs="?", type=str, const="auto",
                        help="If specify checkpoint path, resume from it, while if not specify, try to "
                        "auto resume from the latest checkpoint in the work directory.")
    parser.add_argument("--amp", action="store_true",
                        help="enable automatic-mixed-precision training (see TRAINER_AMP_DTYPE)")
    parser.add_argument("--no-validate", action="store_true",
                        help="whether not to evaluate the checkpoint during training")
    parser.add_argument("--auto-scale-lr", action="store_true",
                        help="whether to auto scale the learning rate according to the actual batch "
                        "size and the original batch size.")
    parser.add_argument("--no-pin-memory", action="store_true",
                        help="whether to disable the pin_memory option in dataloaders.")
    parser.add_argument("--no-persistent-workers", action="store_true",
                        help="whether to disable the persistent_workers option in dataloaders.")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction,
                        help="override some settings in the used config, the key-value pair in xxx=yyy "
                        "format will be merged into config file. If the value to be overwritten is a "
                        "list, it should be like key=\"[a,b]\" or key=a,b It also allows nested "
                        "list/tuple values, e.g. key=\"[(a,b),(c,d)]\" Note that the quotation marks "
                        "are necessary and that no white space is allowed.")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none",
                        help="job launcher")
    performance.add_arguments(parser)
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank (older).
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def parse_args(argv: list[str] | None = None, prog: str = "python -m trainer") -> argparse.Namespace:
    """Parse the command line; like MMPretrain, ``--local-rank`` sets ``LOCAL_RANK`` if it is unset."""
    args = build_parser(prog).parse_args(argv)
    if "LOCAL_RANK" not in os.environ:
        os.environ["LOCAL_RANK"] = str(args.local_rank)
    return args


def main(argv: list[str] | None = None, prog: str = "python -m trainer") -> int:
    """Entry point of ``python -m trainer`` and ``tools/train.py``; returns the exit status."""
    args = parse_args(argv, prog)
    keep_freed_memory()
    if "OMP_WAIT_POLICY" not in os.environ:  # before anything imports torch
        policy = wait_policy(args.launcher)
        if policy:
            os.environ["OMP_WAIT_POLICY"] = policy
    from trainer.run import train

    try:
        train(args)
    except TrainerError as err:
        sys.stderr.write(f"trainer: error: {err}\n")
        return err.exit_code
    except Preempted as stop:
        # The checkpoint is saved and fsynced. Leave at once: tearing gloo down while the peers
        # exit too can end in std::terminate (SIGABRT) instead of the documented 143.
        import logging

        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(stop.exit_code)
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # an unexpected failure: still one line unless TRAINER_DEBUG is set
        if os.environ.get("TRAINER_DEBUG"):
            raise
        message = " ".join(str(err).split()) or "(no message)"
        sys.stderr.write(f"trainer: error: {type(err).__name__}: {message} "
                         "(set TRAINER_DEBUG=1 for the traceback)\n")
        return 1
    return 0
