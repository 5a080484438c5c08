"""The Slurm backend: golden scripts, what the script does when run, and what it refuses.

The script is executed with a fake ``srun`` and ``scontrol`` on PATH (they print what they get as
JSON), so the tests see the exact argv and environment the ranks would start with.
Set ``KCTL_UPDATE_GOLDEN=1`` to rewrite the golden files after an intended change.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from kctl.backends.slurm import BACKEND, PORT_BASE, PORT_SPAN, check_job_name, sbatch_value
from kctl.errors import KctlError, UsageError
from kctl.job import Job, Topology

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "slurm"
CONFIG = "configs/resnet/resnet18_1xb64_digits.py"
PROJECT = "/home/user/mmpretrain"
WORK_DIR = "/shared/work_dirs/digits"


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "cfg.py"
    path.write_text("x = 1\n")
    return path


def make_job(config_file, topology, name="digits", work_dir=WORK_DIR, py_args=()):
    return Job(config=config_file, topology=topology, name=name, work_dir=work_dir,
               trainer_args=tuple(py_args))


def render(config_file, topology, py_args=(), **options):
    options.setdefault("partition", "gpu")
    options.setdefault("chdir", PROJECT)
    options.setdefault("config", CONFIG)
    options.setdefault("pythonpath", PROJECT)
    job = make_job(config_file, topology, py_args=py_args,
                   **{k: options.pop(k) for k in ("name", "work_dir") if k in options})
    return BACKEND.render(job, **options)


GOLDEN_CASES = {
    # MMPretrain's slurm_train.sh defaults: GPUS=8 GPUS_PER_NODE=8 CPUS_PER_TASK=5
    "seed-defaults": dict(topology=Topology.from_total(8, 8), cpus_per_task=5),
    "1gpu": dict(topology=Topology.from_total(1, 8), cpus_per_task=5),
    "16gpus-2nodes": dict(topology=Topology.from_total(16, 8), cpus_per_task=5),
    "cpu-2tasks": dict(topology=Topology.per_node(0, nodes=1, cpu_procs=2), cpus_per_task=1),
    "all-options": dict(
        topology=Topology.from_total(16, 8), cpus_per_task=8,
        py_args=["--cfg-options", "train_cfg.max_epochs=2", "--amp"],
        srun_args=["--mpi=pmix", "--comment=two words"], python="/opt/conda/bin/python",
        port=29999, time="1-00:00:00", account="ml", qos="high", constraint="a100&ib",
        mem="64G", exclusive=True, requeue=True, dependency="afterok:1234"),
}


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden_script(case, config_file):
    text = render(config_file, **dict(GOLDEN_CASES[case])).text
    path = GOLDEN / f"{case}.sh"
    if os.environ.get("KCTL_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text()
    check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def sbatch_lines(text):
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith("#SBATCH ")]


@pytest.mark.parametrize("gpus,per_node,nodes,tasks,per_task", [
    (8, 8, 1, 8, 8), (1, 8, 1, 1, 1), (16, 8, 2, 16, 8), (32, 4, 8, 32, 4)])
def test_allocation_follows_the_topology(config_file, gpus, per_node, nodes, tasks, per_task):
    lines = sbatch_lines(render(config_file, Topology.from_total(gpus, per_node)).text)
    assert f"--nodes={nodes}" in lines
    assert f"--ntasks={tasks}" in lines
    assert f"--ntasks-per-node={per_task}" in lines
    assert f"--gres=gpu:{per_task}" in lines
    assert f"--output={WORK_DIR}/slurm-%j.out" in lines
    assert f"--error={WORK_DIR}/slurm-%j.out" in lines


def test_cpu_job_asks_for_no_gpus(config_file):
    lines = sbatch_lines(render(config_file, Topology.per_node(0, cpu_procs=3)).text)
    assert not [line for line in lines if line.startswith("--gres")]
    assert "--ntasks=3" in lines and "--nodes=1" in lines


def test_optional_directives_only_when_asked(config_file):
    plain = sbatch_lines(render(config_file, Topology.from_total(2, 2)).text)
    assert {line.split("=")[0] for line in plain} == {
        "--partition", "--job-name", "--nodes", "--ntasks", "--ntasks-per-node", "--cpus-per-task",
        "--gres", "--chdir", "--output", "--error"}


FAKE_SRUN = """\
import json, os, sys
seen = ("MASTER_ADDR", "MASTER_PORT", "PYTHONPATH", "SRUN_CPUS_PER_TASK")
with open(os.environ["FAKE_SRUN_RECORD"], "w") as out:
    json.dump(dict(argv=sys.argv[1:], env={k: os.environ.get(k) for k in seen}), out)
"""


def run_script(tmp_path, text, job_id="1234", nodelist="node[7-8]", hosts=("node7", "node8"),
               env=None):
    """Run ``text`` like slurmd would, with a fake srun/scontrol; return what srun got."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = tmp_path / "srun.json"
    (bin_dir / "srun").write_text(f"#!{sys.executable}\n" + FAKE_SRUN)
    (bin_dir / "scontrol").write_text(
        "#!/bin/bash\n"
        f'[ "$1 $2 $3" = "show hostnames {nodelist}" ] || exit 3\n'
        f"printf '%s\\n' {' '.join(hosts)}\n")
    for tool in ("srun", "scontrol"):
        (bin_dir / tool).chmod(0o755)
    script = tmp_path / "job.sh"
    script.write_text(text)
    run_env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path),
               "FAKE_SRUN_RECORD": str(record),
               "SLURM_JOB_ID": job_id, "SLURM_JOB_NODELIST": nodelist, **(env or {})}
    proc = subprocess.run(["bash", str(script)], env=run_env, cwd=tmp_path, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(record.read_text()), proc.stdout


def test_hostile_arguments_arrive_intact_and_nothing_runs(tmp_path, config_file):
    pwned = tmp_path / "pwned"
    py_args = [
        "--cfg-options", f"a=$(touch {pwned})", f"b=`touch {pwned}`", f"c=x; touch {pwned}",
        f"d=x && touch {pwned} || true", "e='single' \"double\"", "f=two  spaces", "g=$HOME",
        "h=*", "i=line\nbreak", "j=back\\slash", "k=!bang", "--amp"]
    srun_args = f"--comment='a b' $(touch {pwned}) ;touch {pwned} `touch {pwned}` --export=ALL"
    job = make_job(config_file, Topology.from_total(2, 2), py_args=py_args)
    text = BACKEND.render(job, partition="gpu", chdir=PROJECT, config=CONFIG,
                          srun_args=shlex.split(srun_args), python="/opt/py env/bin/python",
                          pythonpath=PROJECT).text
    got, stdout = run_script(tmp_path, text)
    assert not pwned.exists()
    assert got["argv"] == ["--kill-on-bad-exit=1", *shlex.split(srun_args),
                           "/opt/py env/bin/python", "-u", "-m", "trainer",
                           *job.trainer_args_for(CONFIG, "slurm", WORK_DIR)]
    assert "--resume" in got["argv"]


def test_rendezvous_is_the_same_for_all_ranks(tmp_path, config_file):
    text = render(config_file, Topology.from_total(16, 8)).text
    got, stdout = run_script(tmp_path, text, job_id="98765")
    port = PORT_BASE + 98765 % PORT_SPAN
    assert not 32768 <= port <= 60999
    assert got["env"]["MASTER_PORT"] == str(port)
    assert got["env"]["MASTER_ADDR"] == "node7"
    assert got["env"]["PYTHONPATH"] == PROJECT
    assert got["env"]["SRUN_CPUS_PER_TASK"] == "5"
    assert (f"kctl: job 98765 nodes=node[7-8] master=node7 port={port} world_size=16"
            in stdout.splitlines())


def test_fixed_port_and_existing_pythonpath(tmp_path, config_file):
    text = render(config_file, Topology.from_total(2, 2), port=23456).text
    got, _ = run_script(tmp_path, text, env={"PYTHONPATH": "/site"})
    assert got["env"]["MASTER_PORT"] == "23456"
    assert got["env"]["PYTHONPATH"] == f"{PROJECT}:/site"


def test_script_refuses_to_run_outside_slurm(tmp_path, config_file):
    script = tmp_path / "job.sh"
    script.write_text(render(config_file, Topology.from_total(2, 2)).text)
    proc = subprocess.run(["bash", str(script)], env={"PATH": os.environ["PATH"]},
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "submit it with sbatch" in proc.stderr


@pytest.mark.parametrize("name", ["digits", "resnet18_1xb64.v2", "a-b+c@d:e,f", "x$(id)", "é", "n" * 1024])
def test_job_names_slurm_takes(name):
    assert check_job_name(name) == name


@pytest.mark.parametrize("name,why", [
    ("", "empty"), ("n" * 1025, "at most 1024"), ("two words", "' '"), ("tab\tname", "'\\t'"),
    ('a"b', "'\"'"), ("a'b", "\"'\""), ("a\\b", "'\\\\'"), ("a#b", "'#'"), ("nl\n", "'\\n'")])
def test_job_names_slurm_would_refuse_or_misread(name, why):
    with pytest.raises(UsageError, match="JOB_NAME") as err:
        check_job_name(name)
    assert why in str(err.value)


def test_values_with_blanks_are_quoted_for_sbatch():
    assert sbatch_value("plain", "x") == "plain"
    assert sbatch_value("/a b/c", "x") == '"/a b/c"'
    assert sbatch_value("a#b", "x") == '"a#b"'
    for bad in ('a"b', "a\\b", "a\nb", ""):
        with pytest.raises(UsageError):
            sbatch_value(bad, "x")


def test_percent_in_work_dir_is_literal(config_file):
    text = render(config_file, Topology.from_total(2, 2), work_dir="/data/100%j_x").text
    assert "#SBATCH --output=/data/100%%j_x/slurm-%j.out" in text.splitlines()


@pytest.mark.parametrize("option,value,message", [
    ("partition", "a b", "PARTITION"), ("partition", "p;q", "PARTITION"),
    ("partition", "", "PARTITION"), ("time", "2h", "--time"), ("time", "1:2:3:4", "--time"),
    ("mem", "64 G", "--mem"), ("mem", "lots", "--mem"), ("dependency", "after ok", "--dependency"),
    ("dependency", "afterok:$(id)", "--dependency"), ("account", 'a"b', "--account"),
    ("cpus_per_task", 0, "CPUS_PER_TASK"), ("port", 0, "port"), ("port", 65536, "port"),
    ("chdir", "relative", "--chdir"), ("work_dir", "relative/dir", "WORK_DIR"),
    ("name", "bad name", "JOB_NAME")])
def test_bad_values_are_usage_errors(config_file, option, value, message):
    with pytest.raises(UsageError, match=message):
        render(config_file, Topology.from_total(2, 2), **{option: value})


@pytest.mark.parametrize("value", ["60", "30:00", "2:00:00", "1-0", "1-12:00", "7-00:00:00",
                                   "UNLIMITED"])
def test_slurm_time_formats(config_file, value):
    text = render(config_file, Topology.from_total(2, 2), time=value).text
    assert f"#SBATCH --time={value}" in text.splitlines()


@pytest.fixture
def fake_sbatch(tmp_path, monkeypatch):
    """An ``sbatch`` on PATH that records argv and stdin and answers like the given script."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()

    def install(body):
        path = bin_dir / "sbatch"
        path.write_text("#!/bin/bash\n"
                        f'printf "%s\\n" "$@" > {tmp_path}/sbatch.argv\n'
                        f"cat > {tmp_path}/sbatch.stdin\n" + body)
        path.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
        return tmp_path
    return install


@pytest.mark.parametrize("answer,job_id", [("4242", "4242"), ("4243;cluster2", "4243")])
def test_submit_pipes_the_script_to_sbatch(config_file, fake_sbatch, answer, job_id):
    where = fake_sbatch(f"echo {shlex.quote(answer)}\n")
    dryrun = render(config_file, Topology.from_total(2, 2))
    assert BACKEND.submit(dryrun) == job_id
    assert (where / "sbatch.argv").read_text().split() == ["--parsable"]
    assert (where / "sbatch.stdin").read_text() == dryrun.text


def test_submit_failure_is_one_line(config_file, fake_sbatch):
    fake_sbatch("echo 'sbatch: error: Batch job submission failed: Invalid partition name "
                "specified' >&2\nexit 1\n")
    with pytest.raises(KctlError, match="^sbatch failed: sbatch: error: Batch job submission "
                       "failed: Invalid partition name specified$"):
        BACKEND.submit(render(config_file, Topology.from_total(2, 2)))


def test_submit_without_sbatch(config_file, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KctlError, match="sbatch not found"):
        BACKEND.submit(render(config_file, Topology.from_total(2, 2)))

    assert BACKEND.template == "sbatch.sh.j2"


# --- preemption: the --requeue script, run with a fake srun and scontrol ------------------------

FAKE_SRUN_EXITING = """\
import os, signal, sys, time
if os.environ.get("SIGNAL_BATCH_SCRIPT"):  # Slurm ends the job: the batch script gets SIGTERM too
    os.kill(os.getppid(), signal.SIGTERM)
    time.sleep(0.5)
sys.exit(int(os.environ["FAKE_SRUN_EXIT"]))
"""


def run_requeue_script(tmp_path, text, srun_exit, signal_batch_script=False):
    """Run ``text`` with a fake srun exiting ``srun_exit``; return (exit status, stdout, the
    scontrol calls other than ``show hostnames``)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.calls"
    (bin_dir / "srun").write_text(f"#!{sys.executable}\n" + FAKE_SRUN_EXITING)
    (bin_dir / "scontrol").write_text(
        "#!/bin/bash\n"
        'if [ "$1 $2" = "show hostnames" ]; then echo node1; exit 0; fi\n'
        f'echo "$*" >> {calls}\n')
    for tool in ("srun", "scontrol"):
        (bin_dir / tool).chmod(0o755)
    script = tmp_path / "job.sh"
    script.write_text(text)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path),
           "SLURM_JOB_ID": "77", "SLURM_JOB_NODELIST": "node1", "FAKE_SRUN_EXIT": str(srun_exit)}
    if signal_batch_script:
        env["SIGNAL_BATCH_SCRIPT"] = "1"
    proc = subprocess.run(["bash", str(script)], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    return proc.returncode, proc.stdout, calls.read_text().splitlines() if calls.exists() else []


def test_tasks_that_saved_and_stopped_requeue_the_job(tmp_path, config_file):
    """143 with the job still running (``--signal``, ``scancel --signal=TERM``): requeue."""
    text = render(config_file, Topology.from_total(2, 2), requeue=True).text
    code, out, calls = run_requeue_script(tmp_path, text, 143)
    assert (code, calls) == (0, ["requeue 77"])
    assert ("kctl: job 77: the trainer saved a checkpoint and stopped (exit 143): requeued"
            in out.splitlines())


def test_slurm_ending_the_job_is_not_answered_with_a_requeue(tmp_path, config_file):
    """scancel, preemption, time limit: the batch script gets SIGTERM too; Slurm decides (a
    cancelled job stays cancelled, a preempted one Slurm requeues itself)."""
    text = render(config_file, Topology.from_total(2, 2), requeue=True).text
    code, _, calls = run_requeue_script(tmp_path, text, 143, signal_batch_script=True)
    assert (code, calls) == (143, [])


@pytest.mark.parametrize("srun_exit", [0, 1, 137])
def test_other_ends_are_passed_on(tmp_path, config_file, srun_exit):
    text = render(config_file, Topology.from_total(2, 2), requeue=True).text
    code, _, calls = run_requeue_script(tmp_path, text, srun_exit)
    assert (code, calls) == (srun_exit, [])


def test_without_requeue_143_ends_the_job(tmp_path, config_file):
    text = render(config_file, Topology.from_total(2, 2)).text
    assert "--open-mode" not in text and "scontrol requeue" not in text
    code, _, calls = run_requeue_script(tmp_path, text, 143)
    assert (code, calls) == (143, [])


def test_requeued_runs_append_to_one_log(config_file):
    lines = sbatch_lines(render(config_file, Topology.from_total(2, 2), requeue=True).text)
    assert "--requeue" in lines and "--open-mode=append" in lines


@pytest.mark.parametrize("options,expected", [
    (dict(requeue=True, time="1-00:00:00"), "TERM@120"),
    (dict(requeue=True, time="1:00:00", signal="INT@300"), "INT@300"),
    (dict(requeue=True), None),
    (dict(requeue=True, time="UNLIMITED"), None),
    (dict(time="1:00:00"), None),
    (dict(time="1:00:00", signal="TERM@60"), "TERM@60"),
    (dict(signal="R:SIGTERM@90"), "R:SIGTERM@90"),
    (dict(signal="15"), "15")])
def test_signal_before_the_time_limit(config_file, options, expected):
    lines = sbatch_lines(render(config_file, Topology.from_total(2, 2), **options).text)
    assert [line for line in lines if line.startswith("--signal")] == (
        [f"--signal={expected}"] if expected else [])


@pytest.mark.parametrize("value,message", [
    ("USR1@90", "TERM or INT"), ("TERM@", "TERM or INT"), ("TERM@1m", "TERM or INT"),
    ("TERM@90 #x", "TERM or INT"), ("B:TERM@90", "only the batch shell")])
def test_signals_the_trainer_does_not_save_on_are_refused(config_file, value, message):
    with pytest.raises(UsageError, match=message):
        render(config_file, Topology.from_total(2, 2), signal=value)


def test_compute_threads_follow_cpus_per_task(tmp_path, config_file):
    text = render(config_file, Topology.per_node(0, cpu_procs=2), cpus_per_task=3).text
    assert "export OMP_NUM_THREADS=${OMP_NUM_THREADS:-3}" in text.splitlines()
