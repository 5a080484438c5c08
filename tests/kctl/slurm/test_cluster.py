"""``kctl slurm-script`` jobs on a real Slurm cluster, with the real trainer.

The demo config trains on a subset (128 training, 64 validation images: one step per rank and
epoch) so a job takes seconds of compute; two CPU tasks per job (gloo).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CONFIG = "configs/resnet/resnet18_1xb64_digits.py"
SUBSET = ["train_dataloader.dataset.indices=128", "val_dataloader.dataset.indices=64"]

pytestmark = pytest.mark.slurm


def contract_lines(log: str) -> dict[int, dict[str, str]]:
    """The trainer's start line of every rank, by rank."""
    ranks = {}
    for match in re.finditer(r"^trainer: launcher=(\S+) rank=(\d+) local_rank=(\d+) "
                             r"world_size=(\d+) backend=(\S+) device=(\S+)$", log, re.M):
        launcher, rank, local_rank, world_size, backend, device = match.groups()
        ranks[int(rank)] = dict(launcher=launcher, local_rank=local_rank, world_size=world_size,
                                backend=backend, device=device)
    return ranks


def slurm_script(cluster, work_dir: Path, *args: str, python: str = sys.executable,
                 flags=()) -> subprocess.CompletedProcess:
    """``kctl slurm-script --gpus 0 --ntasks 2 ...`` run from the repository root."""
    argv = [sys.executable, "-m", "kctl", "slurm-script", "--gpus", "0", "--ntasks", "2",
            "--cpus-per-task", "1", "--python", python, *flags,
            cluster.partition, "digits", CONFIG, str(work_dir), *args]
    proc = subprocess.run(argv, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


def finished(cluster, job_id: str, work_dir: Path, state: str = "COMPLETED") -> str:
    """Wait for the job; check its final state; return its log."""
    job = cluster.wait(job_id)
    log_file = work_dir / f"slurm-{job_id}.out"
    log = log_file.read_text() if log_file.exists() else "(no log)"
    assert job["JobState"] == state, f"job {job_id}: {job['JobState']} {job.get('ExitCode')}\n{log[-3000:]}"
    return log


def test_two_cpu_tasks_train_and_checkpoint(slurm_cluster, tmp_path):
    work = tmp_path / "work"
    proc = slurm_script(slurm_cluster, work, "--cfg-options", "train_cfg.max_epochs=1", *SUBSET,
                        flags=["--submit", "-o", str(tmp_path / "job.sh")])
    job_id = proc.stdout.strip()
    assert job_id.isdigit()
    log = finished(slurm_cluster, job_id, work)
    ranks = contract_lines(log)
    assert sorted(ranks) == [0, 1]
    for rank, line in ranks.items():
        assert line == dict(launcher="slurm", local_rank=str(rank), world_size="2",
                            backend="gloo", device="cpu")
    assert re.search(rf"^kctl: job {job_id} nodes=\S+ master=\S+ port={20000 + int(job_id) % 10000} "
                     r"world_size=2$", log, re.M)
    digests = set(re.findall(r"^trainer: rank=[01] final_weights_sha256=(\w+)$", log, re.M))
    assert len(digests) == 1, log[-2000:]
    assert (work / "epoch_1.pth").is_file()
    assert Path((work / "last_checkpoint").read_text().strip()) == work / "epoch_1.pth"


def test_hostile_arguments_reach_every_rank_intact(slurm_cluster, tmp_path):
    """Through real sbatch and srun: the same argv on each rank, nothing executed."""
    pwned = tmp_path / "pwned"
    fake_python = tmp_path / "py"
    fake_python.write_text(f"#!{sys.executable}\n"
                           "import json, os, sys\n"
                           "rank = os.environ['SLURM_PROCID']\n"
                           f"with open(os.path.join({str(tmp_path)!r}, 'argv-' + rank), 'w') as f:\n"
                           "    json.dump(sys.argv[1:], f)\n")
    fake_python.chmod(0o755)
    hostile = ["--cfg-options", f"a=$(touch {pwned})", f"b=`touch {pwned}`",
               f"c=x; touch {pwned}", "d='q' \"dq\" two  spaces", "e=$HOME *"]
    work = tmp_path / "work"
    job_id = slurm_script(slurm_cluster, work, *hostile, python=str(fake_python),
                          flags=["--submit"]).stdout.strip()
    finished(slurm_cluster, job_id, work)
    expected = ["-u", "-m", "trainer", CONFIG, "--launcher", "slurm", "--work-dir", str(work),
                "--resume", *hostile]
    for rank in ("0", "1"):
        assert json.loads((tmp_path / f"argv-{rank}").read_text()) == expected
    assert not pwned.exists()


def test_cancelled_job_resumes_from_its_last_checkpoint(slurm_cluster, tmp_path):
    """scancel: Slurm sends SIGTERM, the trainer saves where it stopped (within KillWait) and the
    job stays CANCELLED (the --requeue script does not bring back a cancelled job); the same
    script submitted again resumes from that checkpoint and trains the remaining epochs."""
    work = tmp_path / "work"
    script = tmp_path / "job.sh"
    epochs = 4
    slurm_script(slurm_cluster, work, "--cfg-options", f"train_cfg.max_epochs={epochs}", *SUBSET,
                 flags=["--requeue", "-o", str(script)])
    first = slurm_cluster.sbatch(script)
    pointer = work / "last_checkpoint"
    slurm_cluster.wait(first, until=lambda job: pointer.exists())
    slurm_cluster.cancel(first)
    log = finished(slurm_cluster, first, work, state="CANCELLED")
    assert slurm_cluster.job(first).get("Restarts") == "0"
    saved = Path(pointer.read_text().strip())
    stopped = re.search(r"^trainer: preempted at epoch=(\d+) iter=\d+, saved (\S+)$", log, re.M)
    if stopped:  # SIGTERM came before the end; else the job was cancelled while it finished
        assert stopped[2] == str(saved)
    resumed = re.fullmatch(r"(epoch|iter)_(\d+)\.pth", saved.name)
    assert resumed, saved
    done = int(stopped[1]) if stopped else int(resumed[2])
    assert 1 <= done < epochs, f"nothing left to resume after epoch {done}\n{log[-2000:]}"

    second = slurm_cluster.sbatch(script)  # the same script, as after a requeue
    log = finished(slurm_cluster, second, work)
    assert re.search(rf"^trainer: resumed from {re.escape(str(saved))} at epoch={done} iter=\d+$",
                     log, re.M), log[-3000:]
    saved_now = [int(n) for n in re.findall(r"Saving checkpoint at (\d+) epochs", log)]
    assert saved_now == list(range(done + 1, epochs + 1))
    assert (work / f"epoch_{epochs}.pth").is_file()
