"""``tools/slurm_train.sh``: MMPretrain's interface, kctl's renderer, srun-like blocking.

Most tests run it against fake ``sbatch``/``scontrol``/``scancel`` (a scripted job life); the last
one runs it on the real Slurm cluster with the real trainer.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "slurm_train.sh"
SEED_ENV = ("GPUS", "GPUS_PER_NODE", "CPUS_PER_TASK", "SRUN_ARGS", "NTASKS", "PORT")

FAKE_SBATCH = """#!/bin/bash
printf '%s\\n' "$@" > "$FAKE/sbatch.argv"
cat > "$FAKE/sbatch.stdin"
echo 77
"""
# Each call answers with the next line of $FAKE/states ("STATE EXITCODE [LOG TEXT]"; the last line
# repeats) and appends LOG TEXT to the job's log, as the running job would.
FAKE_SCONTROL = """#!/bin/bash
[ "$*" = "show job -o 77" ] || { echo "unexpected: scontrol $*" >&2; exit 9; }
n=$(( $(cat "$FAKE/calls" 2>/dev/null || echo 0) + 1 )); echo $n > "$FAKE/calls"
line=$(sed -n "${n}p" "$FAKE/states"); [ -n "$line" ] || line=$(tail -n1 "$FAKE/states")
set -- $line; state=$1; code=$2; shift 2
[ $# -gt 0 ] && echo "$*" >> "$FAKE_LOG"
echo "JobId=77 JobName=job UserId=root(0) JobState=$state Reason=None ExitCode=$code"
"""
FAKE_SCANCEL = """#!/bin/bash
echo "$@" >> "$FAKE/scancel.argv"
"""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A workspace (config, fake Slurm tools on PATH) as the current directory."""
    for name in SEED_ENV:
        monkeypatch.delenv(name, raising=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("sbatch", FAKE_SBATCH), ("scontrol", FAKE_SCONTROL),
                       ("scancel", FAKE_SCANCEL)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "cfg.py").write_text("lr = 0.1\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE", str(tmp_path))
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "work" / "slurm-77.out"))
    monkeypatch.setenv("PYTHON", sys.executable)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def job_life(fake: Path, *states: str) -> None:
    (fake / "states").write_text("".join(f"{s}\n" for s in states))


def slurm_train(*args, timeout=120, **kwargs):
    return subprocess.run([str(TOOL), *args], capture_output=True, text=True, timeout=timeout,
                          **kwargs)


def test_blocks_streams_the_log_and_succeeds(fake):
    job_life(fake, "PENDING 0:0", "RUNNING 0:0 hello from rank 0", "RUNNING 0:0",
             "COMPLETING 0:0 epoch 1 done", "COMPLETED 0:0")
    proc = slurm_train("debug", "job", "cfg.py", "work", "--cfg-options", "a=b c", "--amp")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hello from rank 0\nepoch 1 done\n"
    assert f"submitted job 77, output in {fake}/work/slurm-77.out" in proc.stderr
    assert (fake / "sbatch.argv").read_text().split() == ["--parsable"]


def test_one_renderer_with_kctl(fake, monkeypatch):
    """The job submitted is exactly `kctl slurm-script`'s script for the same input."""
    monkeypatch.setenv("GPUS", "16")
    monkeypatch.setenv("SRUN_ARGS", "--mpi=pmix --comment='x y'")
    job_life(fake, "COMPLETED 0:0")
    assert slurm_train("gpu", "job", "cfg.py", "work", "--amp").returncode == 0
    kctl = subprocess.run(
        [sys.executable, "-m", "kctl", "slurm-script", "--python", sys.executable,
         "gpu", "job", "cfg.py", "work", "--amp"],
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert kctl.returncode == 0, kctl.stderr
    assert (fake / "sbatch.stdin").read_text() == kctl.stdout
    assert "#SBATCH --nodes=2" in kctl.stdout and "#SBATCH --cpus-per-task=5" in kctl.stdout


@pytest.mark.parametrize("final,code", [("FAILED 3:0", 3), ("CANCELLED 0:15", 143),
                                        ("TIMEOUT 0:0", 1), ("NODE_FAIL 0:0", 1)])
def test_exit_status_is_the_jobs(fake, final, code):
    job_life(fake, "RUNNING 0:0 working", final)
    proc = slurm_train("debug", "job", "cfg.py", "work")
    assert proc.returncode == code
    assert proc.stdout == "working\n"
    state, exit_code = final.split()
    assert f"job 77 ended {state} (ExitCode={exit_code})" in proc.stderr


@pytest.mark.parametrize("args,env,message", [
    (["debug", "job", "cfg.py"], {}, "usage: "),
    (["debug", "job", "cfg.py", "work"], {"GPUS": "-1"}, "kctl: error: GPUS must not be negative"),
    (["debug", "job", "cfg.py", "work"], {"CPUS_PER_TASK": "x"},
     "kctl: error: CPUS_PER_TASK must be a whole number"),
    (["debug", "job", "missing.py", "work"], {}, "kctl: error: config file not found"),
    (["debug", "a job", "cfg.py", "work"], {}, "kctl: error: JOB_NAME 'a job' contains ' '"),
])
def test_bad_input_submits_nothing(fake, monkeypatch, args, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    proc = slurm_train(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (fake / "sbatch.argv").exists()


@pytest.mark.parametrize("delay", [0, 0.5], ids=["at-once", "while-it-waits"])
def test_interrupt_cancels_the_job(fake, delay):
    """SIGINT to the script alone (not its process group), also while it waits between two polls. The
    script starts with SIGINT's default action, as from a terminal: a shell cannot trap a signal that
    was ignored when it started (as it is for anything started with & from a non-interactive shell)."""
    job_life(fake, "RUNNING 0:0 started")
    proc = subprocess.Popen([str(TOOL), "debug", "job", "cfg.py", "work"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout.readline() == "started\n"
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "cancelled job 77" in err
    assert (fake / "scancel.argv").read_text() == "77\n"


@pytest.mark.slurm
def test_seed_example_on_a_real_cluster(slurm_cluster, tmp_path):
    """GPUS=2 GPUS_PER_NODE=2 tools/slurm_train.sh PARTITION JOB CONFIG WORK_DIR --cfg-options ..."""
    work = tmp_path / "work"
    env = {k: v for k, v in os.environ.items() if k not in SEED_ENV}
    env.update(GPUS="2", GPUS_PER_NODE="2", PYTHON=sys.executable)
    proc = slurm_train(slurm_cluster.partition, "job", "configs/resnet/resnet18_1xb64_digits.py",
                       str(work), "--cfg-options", "train_cfg.max_epochs=1",
                       "train_dataloader.dataset.indices=128", "val_dataloader.dataset.indices=64",
                       cwd=REPO, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-3000:]
    job_id = re.search(r"submitted job (\d+)", proc.stderr).group(1)
    # blocking like srun: when it returns, the job is over and its whole log was printed
    assert proc.stdout == (work / f"slurm-{job_id}.out").read_text()
    lines = re.findall(r"^trainer: launcher=slurm rank=(\d) local_rank=\d world_size=2 ", proc.stdout,
                       re.M)
    assert sorted(lines) == ["0", "1"]
    assert (work / "epoch_1.pth").is_file()
