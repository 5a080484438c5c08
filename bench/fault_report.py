"""Fault report: seeded kill-and-resume trials per launcher, and what each one cost.

Every trial trains the small job of ``tests/support/tiny_job.py`` (the digits demo cut to 2 epochs
x 8 iterations, 2 CPU ranks with gloo), interrupts it once after an iteration drawn from a seeded
``random.Random`` (any of 2..15, so sometimes before the first checkpoint), lets the launcher
bring it back, and compares the result with one uninterrupted ``kctl run --gpus 2`` of the same
job (trained first):

- ``kctl run, SIGKILL a rank``: ``kctl run --max-restarts 2``; torchrun restarts both ranks.
- ``kctl run, SIGTERM kctl``: Ctrl-C/SIGTERM to kctl (exit 143), then the same command again.
- ``PyTorchJob, SIGKILL a rank``: ``kctl train --nodes 2 --gpus 0 --cpu 1``'s manifest in the
  operator emulator (tests/support/operator_emulator.py); the kubelet restarts the container.
- ``PyTorchJob, pod deleted``: the same, one pod deleted (preemption, eviction): SIGTERM, 30 s
  grace; the operator creates it again.
- ``Slurm, scancel --signal=TERM``: ``kctl slurm-script --requeue``; the script requeues the job.
- ``Slurm, scontrol requeue``: preemption as Slurm does it (SIGTERM, KillWait, requeue).

Columns: trials; resumed OK (restarted by the launcher, finished exactly the configured epochs,
and resumed from a checkpoint whenever one had been written before the fault); iterations lost
(max over trials: iterations done before the fault that were trained again); final weights equal
to the uninterrupted run (every rank's sha256 and every tensor of the last checkpoint).

Slurm rows need a running cluster (``sinfo`` answers; start one as root with
``.ci/slurm/start-local-slurm.sh``), else they say "skipped: no Slurm". A requeued job waits
about 2 minutes before Slurm starts it again; the bench starts it as soon as the previous run
has left (``SlurmCluster.start_requeued`` of tests/support/slurm.py).

Usage (from the repository root; 3 trials of every row take about 8 minutes on 2 shared
cores)::

    python bench/fault_report.py                 # 3 trials per launcher
    python bench/fault_report.py --trials 10 --seed 1 --launchers kctl-run-kill,pytorchjob
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.local_launch import rank_pids  # noqa: E402
from tests.support.slurm import SlurmCluster  # noqa: E402
from tests.support.tiny_job import (  # noqa: E402
    EPOCHS, ITERS_PER_EPOCH, RANKS, TIMEOUT, TOTAL_ITERS, Reference, compare_checkpoints,
    emulated_tiny_job, final_weights, kctl_run, last_checkpoint, preempted_points, resumed_points,
    saved_epochs, slurm_script, train_reference, trainer_pids, wait_for_iteration)

SLURM_FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
               "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


@dataclass
class Trial:
    """What one interrupted run came to."""

    resumed_ok: bool
    lost: int | None  # iterations trained again; None when the run did not finish
    equal: bool
    note: str = ""


@dataclass
class Outcome:
    """What a trial's launch left: its whole output, work dir, whether the launcher restarted it,
    how far training had got at the fault, and which checkpoint existed then."""

    log: str
    work_dir: Path
    restarted: bool
    seen: int
    pointer_before: str | None
    finished: bool


def judge(reference: Reference, outcome: Outcome, sigterm: bool) -> Trial:
    """Score an outcome against the uninterrupted run."""
    log, work = outcome.log, outcome.work_dir
    exact = saved_epochs(work)[-1:] == [EPOCHS] and last_checkpoint(work) == f"epoch_{EPOCHS}.pth"
    resumes = resumed_points(log)
    if sigterm:
        stops = preempted_points(log)
        from_point = resumes[-1].iteration if resumes else 0
        lost = (stops[-1].iteration - from_point) if stops else outcome.seen
    else:
        from_point = resumes[-1].iteration if resumes else 0
        lost = outcome.seen - from_point
    resumed_ok = (outcome.finished and outcome.restarted and exact
                  and (outcome.pointer_before is None or bool(resumes)))
    shas = final_weights(log)
    equal = False
    if outcome.finished and exact and shas == {rank: reference.sha for rank in range(RANKS)}:
        report = compare_checkpoints(reference.checkpoint, work / f"epoch_{EPOCHS}.pth")
        report.pop("tensors")
        equal = all(not keys for keys in report.values())
    note = "" if outcome.finished else "did not finish"
    return Trial(resumed_ok, lost if outcome.finished else None, equal, note)


# -- launchers -----------------------------------------------------------------------------------

def kctl_run_kill(work: Path, iteration: int, rank: int) -> Outcome:
    run = kctl_run(work, "--max-restarts", "2")
    try:
        seen = wait_for_iteration(lambda: run.output, iteration)
        pointer = last_checkpoint(work)
        os.kill(rank_pids(run.proc.pid)[rank], signal.SIGKILL)
        code = run.wait(TIMEOUT)
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()
    restarted = run.output.count("trainer: launcher=pytorch rank=0 ") == 2
    return Outcome(run.output, work, restarted, seen, pointer, code == 0)


def kctl_run_term(work: Path, iteration: int, rank: int) -> Outcome:
    first = kctl_run(work)
    try:
        seen = wait_for_iteration(lambda: first.output, iteration)
        pointer = last_checkpoint(work)
        first.proc.send_signal(signal.SIGTERM)
        stopped = first.wait(TIMEOUT)
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
            first.proc.wait()
    second = kctl_run(work)  # the same command again
    try:
        code = second.wait(TIMEOUT)
    finally:
        if second.proc.poll() is None:
            second.proc.kill()
            second.proc.wait()
    return Outcome(first.output + "\n" + second.output, work, stopped == 143, seen, pointer,
                   code == 0)


def pytorchjob_kill(work: Path, iteration: int, rank: int) -> Outcome:
    with emulated_tiny_job(work, iteration) as job:
        emulator, names = job.emulator, job.names
        pointer = last_checkpoint(job.work_dir)
        for pid in trainer_pids(emulator.pods[names[rank]].process.pid):
            os.kill(pid, signal.SIGKILL)
        phase = emulator.wait(timeout=TIMEOUT)
        restarted = emulator.pods[names[rank]].restarts >= 1
        log = "\n".join(emulator.logs(name) for name in names)
    return Outcome(log, job.work_dir, restarted, job.seen, pointer, phase == "Succeeded")


def pytorchjob_delete(work: Path, iteration: int, rank: int) -> Outcome:
    with emulated_tiny_job(work, iteration, grace_period=30) as job:
        emulator, names = job.emulator, job.names
        pointer = last_checkpoint(job.work_dir)
        emulator.delete_pod(names[rank])
        phase = emulator.wait(timeout=TIMEOUT)
        restarted = emulator.pods[names[rank]].recreations >= 1
        # rank 0's every container (the preempted line), then the worker's last one
        log = emulator.all_logs(names[0]) + "\n" + emulator.logs(names[1])
    return Outcome(log, job.work_dir, restarted, job.seen, pointer, phase == "Succeeded")


def slurm_partition() -> str | None:
    """The default partition of a Slurm cluster that answers, or None."""
    if not shutil.which("sinfo"):
        return None
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    names = proc.stdout.split()
    if proc.returncode or not names:
        return None
    default = [n for n in names if n.endswith("*")]
    return (default or names)[0].rstrip("*")


def scontrol_job(job_id: str) -> dict[str, str]:
    import re

    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True,
                         text=True, timeout=60).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def slurm_trial(work: Path, iteration: int, stop: list[str]) -> Outcome:
    partition = slurm_partition()
    job_id = slurm_script(partition, work, "--requeue", "--submit").stdout.strip()
    log = work / f"slurm-{job_id}.out"
    read = lambda: log.read_text(errors="replace") if log.exists() else ""  # noqa: E731
    try:
        seen = wait_for_iteration(read, iteration, interval=0.3)
        pointer = last_checkpoint(work)
        subprocess.run([*stop, job_id], check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + TIMEOUT
        released = False
        while time.monotonic() < deadline:
            job = scontrol_job(job_id)
            if job.get("JobState") in SLURM_FINAL:
                break
            if job.get("JobState") == "PENDING" and int(job.get("Restarts", 0)) and not released:
                SlurmCluster(partition, 0, 0, Path()).start_requeued(job_id)
                released = True
            time.sleep(0.5)
    finally:
        if scontrol_job(job_id).get("JobState") not in SLURM_FINAL:
            subprocess.run(["scancel", job_id], capture_output=True, timeout=60)
    return Outcome(read(), work, int(job.get("Restarts", 0)) >= 1, seen, pointer,
                   job.get("JobState") == "COMPLETED")


def slurm_signal(work: Path, iteration: int, rank: int) -> Outcome:
    return slurm_trial(work, iteration, ["scancel", "--signal=TERM"])


def slurm_preempt(work: Path, iteration: int, rank: int) -> Outcome:
    return slurm_trial(work, iteration, ["scontrol", "requeue"])


#: name -> (row label, trial function, stopped by SIGTERM (saves) rather than SIGKILL, needs Slurm)
LAUNCHERS = {
    "kctl-run-kill": ("kctl run, SIGKILL a rank", kctl_run_kill, False, False),
    "kctl-run-term": ("kctl run, SIGTERM kctl + rerun", kctl_run_term, True, False),
    "pytorchjob": ("PyTorchJob (emulated), SIGKILL a rank", pytorchjob_kill, False, False),
    "pytorchjob-delete": ("PyTorchJob (emulated), pod deleted", pytorchjob_delete, True, False),
    "slurm-signal": ("Slurm, scancel --signal=TERM", slurm_signal, True, True),
    "slurm-preempt": ("Slurm, scontrol requeue (preempt)", slurm_preempt, True, True),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=3, help="trials per launcher (default 3)")
    parser.add_argument("--seed", type=int, default=6, help="seed of the faults (default 6)")
    parser.add_argument("--launchers", default=",".join(LAUNCHERS),
                        help=f"comma-separated, of {', '.join(LAUNCHERS)} (default: all)")
    parser.add_argument("--keep", action="store_true",
                        help="keep every work folder (those of odd trials are always kept)")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.launchers.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in LAUNCHERS]
    if unknown or args.trials < 1:
        parser.error(f"unknown launcher(s) {unknown}" if unknown else "--trials must be >= 1")

    root = Path(tempfile.mkdtemp(prefix="fault_report_"))
    print(f"work folders in {root}; reference: kctl run --gpus 2, uninterrupted", flush=True)
    started = time.monotonic()
    reference = train_reference(root / "reference")
    rows, kept = [], []
    have_slurm = slurm_partition() is not None
    for name in chosen:
        label, trial_fn, sigterm, needs_slurm = LAUNCHERS[name]
        if needs_slurm and not have_slurm:
            rows.append((label, "skipped: no Slurm", "", "", ""))
            continue
        trials = []
        for i in range(args.trials):
            rng = random.Random(f"{args.seed}-{name}-{i}")
            iteration, rank = rng.randint(2, TOTAL_ITERS - 1), rng.randrange(RANKS)
            work = root / f"{name}-{i}"
            work.mkdir()
            try:
                outcome = trial_fn(work, iteration, rank)
                trial = judge(reference, outcome, sigterm)
            except (AssertionError, OSError, subprocess.SubprocessError) as err:
                # a wait ran out, a launch failed to start, a Slurm command failed
                trial = Trial(False, None, False, " ".join(str(err).split())[:120])
            trials.append(trial)
            odd = not (trial.resumed_ok and trial.equal) or (sigterm and trial.lost != 0)
            if odd:  # kept for a look, whatever --keep says
                kept.append(work)
            print(f"  {label}: trial {i + 1}: fault after iteration {iteration}, rank {rank}: "
                  f"resumed_ok={trial.resumed_ok} lost={trial.lost} equal={trial.equal} "
                  f"{trial.note}{f' (kept: {work})' if odd else ''}".rstrip(), flush=True)
        lost = [t.lost for t in trials if t.lost is not None]
        rows.append((label, str(len(trials)), f"{sum(t.resumed_ok for t in trials)}/{len(trials)}",
                     str(max(lost)) if lost else "-",
                     f"{sum(t.equal for t in trials)}/{len(trials)}"))

    header = ("launcher", "trials", "resumed OK", "iterations lost (max)", "final weights equal")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print(f"\nseed {args.seed}; {ITERS_PER_EPOCH} iterations per epoch, {EPOCHS} epochs; "
          f"{time.monotonic() - started:.0f} s\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
    if not args.keep:
        for path in root.iterdir():
            if path not in kept:
                shutil.rmtree(path, ignore_errors=True)
        if not kept:
            root.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
