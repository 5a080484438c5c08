"""``kctl slurm-script``: the seed's arguments and environment, checks before queueing, output."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kctl.backends.slurm import BACKEND
from kctl.cli import main
from kctl.commands.slurm_script import project_root
from kctl.job import Job, Topology

REPO = Path(__file__).resolve().parents[3]
SEED_ENV = ("GPUS", "GPUS_PER_NODE", "CPUS_PER_TASK", "SRUN_ARGS", "NTASKS", "PORT")


@pytest.fixture(autouse=True)
def workspace(tmp_path, monkeypatch):
    """A project folder with a config (inheriting a _base_ file) as the current directory."""
    for name in SEED_ENV:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "configs" / "_base_").mkdir(parents=True)
    (tmp_path / "configs" / "_base_" / "base.py").write_text("model = dict(type='Net')\n")
    (tmp_path / "configs" / "cfg.py").write_text("_base_ = ['_base_/base.py']\nlr = 0.1\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def kctl(*argv):
    """Run ``kctl slurm-script ARGV`` in this process: (exit code, stdout, stderr)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(["slurm-script", *argv])
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


POSITIONAL = ["debug", "digits", "configs/cfg.py", "work"]


def expected(workspace, topology, cpus_per_task=5, py_args=(), **options):
    """What the backend renders for the same job, given directly."""
    job = Job(config=workspace / "configs" / "cfg.py", topology=topology, name="digits",
              work_dir=str(workspace / "work"), trainer_args=tuple(py_args))
    return BACKEND.render(job, partition="debug", chdir=str(workspace), config="configs/cfg.py",
                          cpus_per_task=cpus_per_task, pythonpath=project_root(),
                          **options).text


def test_seed_defaults(workspace):
    code, out, err = kctl(*POSITIONAL)
    assert (code, err) == (0, "")
    assert out == expected(workspace, Topology.from_total(8, 8))
    assert "#SBATCH --gres=gpu:8" in out.splitlines()
    assert (workspace / "work").is_dir()  # Slurm opens work/slurm-<id>.out before the job starts


def test_environment_like_the_seed(workspace, monkeypatch):
    monkeypatch.setenv("GPUS", "16")
    monkeypatch.setenv("GPUS_PER_NODE", "8")
    monkeypatch.setenv("CPUS_PER_TASK", "3")
    monkeypatch.setenv("SRUN_ARGS", "--mpi=pmix --comment='a b'")
    monkeypatch.setenv("PORT", "21000")
    code, out, err = kctl(*POSITIONAL, "--cfg-options", "a=1")
    assert (code, err) == (0, "")
    assert out == expected(workspace, Topology.from_total(16, 8), cpus_per_task=3,
                           py_args=["--cfg-options", "a=1"],
                           srun_args=["--mpi=pmix", "--comment=a b"], port=21000)


def test_flags_win_over_environment(workspace, monkeypatch):
    monkeypatch.setenv("GPUS", "16")
    monkeypatch.setenv("CPUS_PER_TASK", "x")  # never read: the flag is given
    code, out, err = kctl("--gpus", "4", "--gpus-per-node", "4", "--cpus-per-task", "2",
                          "--srun-args=--exclusive", *POSITIONAL)
    assert (code, err) == (0, "")
    assert out == expected(workspace, Topology.from_total(4, 4), cpus_per_task=2,
                           srun_args=["--exclusive"])


@pytest.mark.parametrize("how", [("--gpus", "0", "--ntasks", "2"), ("GPUS=0", "NTASKS=2")])
def test_cpu_tasks(workspace, monkeypatch, how):
    flags = [a for a in how if "=" not in a]
    for pair in (a for a in how if "=" in a):
        monkeypatch.setenv(*pair.split("="))
    code, out, err = kctl(*flags, *POSITIONAL)
    assert (code, err) == (0, "")
    assert out == expected(workspace, Topology.per_node(0, cpu_procs=2))
    assert "--gres" not in out


def test_cpu_defaults_to_one_task(workspace):
    code, out, _ = kctl("--gpus", "0", *POSITIONAL)
    assert code == 0 and out == expected(workspace, Topology.per_node(0, cpu_procs=1))


def test_sbatch_options(workspace):
    code, out, err = kctl("--time", "2:00:00", "--account", "ml", "--qos", "high",
                          "--constraint", "a100", "--mem", "64G", "--exclusive", "--requeue",
                          "--dependency", "afterok:77", "--port", "29999", "--python",
                          "/opt/py/bin/python", *POSITIONAL)
    assert (code, err) == (0, "")
    assert out == expected(workspace, Topology.from_total(8, 8), time="2:00:00", account="ml",
                           qos="high", constraint="a100", mem="64G", exclusive=True,
                           requeue=True, dependency="afterok:77", port=29999,
                           python="/opt/py/bin/python")


def test_signal_before_the_time_limit(workspace):
    code, out, err = kctl("--requeue", "--time", "4:00:00", "--signal", "TERM@600", *POSITIONAL)
    assert (code, err) == (0, "")
    assert out == expected(workspace, Topology.from_total(8, 8), requeue=True, time="4:00:00",
                           signal="TERM@600")
    assert "#SBATCH --signal=TERM@600" in out.splitlines()
    code, out, err = kctl("--signal", "USR1", *POSITIONAL)
    assert code == 2 and err.startswith("kctl: error: --signal 'USR1' is not TERM or INT")


def test_relative_paths_are_fixed_at_render_time(workspace, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    code, out, _ = kctl("--chdir", str(workspace), "debug", "digits", "configs/cfg.py", "w/../w2")
    assert code == 0
    assert f"#SBATCH --chdir={workspace}" in out.splitlines()
    assert f" --work-dir {workspace}/w2 " in out
    assert (workspace / "w2").is_dir() and not (elsewhere / "w2").exists()


def test_pythonpath_is_this_checkout():
    assert project_root() == str(REPO)


@pytest.mark.parametrize("argv,env,message", [
    (["debug", "digits", "configs/cfg.py"], {}, "required: WORK_DIR"),
    ([], {}, "required: PARTITION"),
    (POSITIONAL, {"GPUS": "-1"}, "GPUS must not be negative, got -1"),
    (["--gpus", "-2", *POSITIONAL], {}, "--gpus must not be negative, got -2"),
    (POSITIONAL, {"GPUS_PER_NODE": "0"}, "GPUS_PER_NODE must be at least 1, got 0"),
    (["--gpus-per-node", "0", *POSITIONAL], {}, "--gpus-per-node must be at least 1, got 0"),
    (["--chdir", "/nonexistent", *POSITIONAL], {}, "--chdir /nonexistent: no such directory"),
    (POSITIONAL, {"CPUS_PER_TASK": "0"}, "CPUS_PER_TASK must be at least 1, got 0"),
    (["--cpus-per-task", "0", *POSITIONAL], {}, "--cpus-per-task must be at least 1"),
    (POSITIONAL, {"GPUS": "eight"}, "GPUS must be a whole number, got 'eight'"),
    (["--gpus", "2.5", *POSITIONAL], {}, "--gpus must be a whole number, got '2.5'"),
    (POSITIONAL, {"CPUS_PER_TASK": "5x"}, "CPUS_PER_TASK must be a whole number"),
    (POSITIONAL, {"GPUS": "0", "NTASKS": "0"}, "NTASKS must be at least 1, got 0"),
    (["--ntasks", "2", *POSITIONAL], {}, "--ntasks is for CPU jobs"),
    (POSITIONAL, {"GPUS": "12"}, "GPUS=12 is not a multiple of GPUS_PER_NODE=8: use 8 or 16"),
    (POSITIONAL, {"PORT": "70000"}, "PORT must be within 1-65535, got 70000"),
    (["--port", "0", *POSITIONAL], {}, "--port must be within 1-65535, got 0"),
    (POSITIONAL, {"PORT": "http"}, "PORT must be a whole number"),
    (POSITIONAL, {"SRUN_ARGS": "--comment='open"}, "SRUN_ARGS cannot be split into words"),
    (["debug", "digits", "configs/missing.py", "work"], {}, "config file not found"),
    (["debug", "bad name", "configs/cfg.py", "work"], {}, "JOB_NAME 'bad name' contains ' '"),
    (["debug", "a#b", "configs/cfg.py", "work"], {}, "JOB_NAME 'a#b' contains '#'"),
    (["deb ug", "digits", "configs/cfg.py", "work"], {}, "PARTITION 'deb ug' is not"),
    ([*POSITIONAL, "--gpus", "2"], {}, "--gpus after WORK_DIR would be passed to the trainer"),
    ([*POSITIONAL, "--submit"], {}, "--submit after WORK_DIR"),
    (["--time", "soon", *POSITIONAL], {}, "--time 'soon' is not a Slurm time limit"),
])
def test_bad_input_is_one_line(workspace, monkeypatch, argv, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, out, err = kctl(*argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(("kctl: error: ", "kctl slurm-script: error: "))
    assert message in err
    assert not (workspace / "work").exists()


def test_config_syntax_error_names_file_and_line(workspace):
    (workspace / "configs" / "_base_" / "base.py").write_text("model = dict(\n")
    code, out, err = kctl(*POSITIONAL)
    assert code == 2 and out == ""
    assert "syntax error in config" in err and "base.py, line 1" in err


def test_output_file_is_whole_and_executable(workspace):
    code, out, err = kctl("-o", "job.sh", *POSITIONAL)
    assert (code, out, err) == (0, "", "")
    script = workspace / "job.sh"
    assert script.read_text() == expected(workspace, Topology.from_total(8, 8))
    assert script.stat().st_mode & stat.S_IXUSR


def test_nothing_written_on_error(workspace):
    script = workspace / "job.sh"
    script.write_text("old\n")
    code, _, _ = kctl("-o", "job.sh", "--gpus", "3", "--gpus-per-node", "2", *POSITIONAL)
    assert code == 2
    assert script.read_text() == "old\n"
    assert sorted(p.name for p in workspace.iterdir()) == ["configs", "job.sh"]


@pytest.fixture
def fake_sbatch(workspace, monkeypatch):
    bin_dir = workspace / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "sbatch"
    tool.write_text(f"#!/bin/bash\nprintf '%s\\n' \"$@\" > {workspace}/argv\n"
                    f"cat > {workspace}/stdin\n"
                    'if [ -n "$FAIL" ]; then echo "sbatch: error: $FAIL" >&2; exit 1; fi\n'
                    "echo 4242\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return workspace


def test_submit_prints_the_job_id(fake_sbatch):
    code, out, err = kctl("--submit", "--dependency", "afterok:41", *POSITIONAL)
    assert (code, out, err) == (0, "4242\n", "")
    assert (fake_sbatch / "argv").read_text().split() == ["--parsable"]
    script = (fake_sbatch / "stdin").read_text()
    assert script == expected(fake_sbatch, Topology.from_total(8, 8), dependency="afterok:41")
    assert "#SBATCH --dependency=afterok:41" in script.splitlines()


def test_submit_and_keep_the_script(fake_sbatch):
    code, out, _ = kctl("--submit", "-o", "job.sh", *POSITIONAL)
    assert (code, out) == (0, "4242\n")
    assert (fake_sbatch / "job.sh").read_text() == (fake_sbatch / "stdin").read_text()


def test_submit_failure(fake_sbatch, monkeypatch):
    monkeypatch.setenv("FAIL", "Batch job submission failed: Invalid partition name specified")
    code, out, err = kctl("--submit", *POSITIONAL)
    assert (code, out) == (1, "")
    assert err == ("kctl: error: sbatch failed: sbatch: error: Batch job submission failed: "
                   "Invalid partition name specified\n")


def test_as_a_process(workspace):
    """The real command line: exit codes and one-line errors, not only main()."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "GPUS": "2", "GPUS_PER_NODE": "2"}
    ok = subprocess.run([sys.executable, "-m", "kctl", "slurm-script", *POSITIONAL, "--amp"],
                        env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.rstrip().endswith("--resume --amp")
    bad = subprocess.run([sys.executable, "-m", "kctl", "slurm-script", *POSITIONAL],
                         env={**env, "GPUS": "-1"}, capture_output=True, text=True)
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr == "kctl: error: GPUS must not be negative, got -1\n"
