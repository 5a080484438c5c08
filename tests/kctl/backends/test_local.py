"""The torchrun backend: the command it renders, GPU detection, and running it (exit status,
signals, no orphans) with a stub trainer that starts in milliseconds."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import stat
import sys
from pathlib import Path

import pytest

from kctl.backends import load_backend
from kctl.backends.local import TORCHRUN, command_env, exit_status, visible_gpus
from kctl.errors import UsageError
from kctl.job import Job, Rendezvous, Topology
from tests.support.local_launch import (ARGV_LINE, START_LINE, Watched, children, launch_env,
                                        rank_pids, wait_gone, write_stub_trainer)


@pytest.fixture
def stub(tmp_path) -> Path:
    """Run kctl from here: ``python -m trainer`` finds the stub trainer, and ``cfg.py`` exists."""
    return write_stub_trainer(tmp_path)


def _job(config: Path, gpus=2, nodes=1, rendezvous=None, **kw) -> Job:
    return Job(config=config, topology=Topology.per_node(gpus, nodes=nodes, cpu_procs=2),
               name="cfg", rendezvous=rendezvous, **kw)


def test_one_node_without_port_is_standalone(stub):
    dryrun = load_backend("local").render(_job(stub / "cfg.py", trainer_args=("--amp",)))
    assert dryrun.text == (f"torchrun --standalone --nnodes=1 --nproc-per-node=2 -m trainer "
                           f"{stub / 'cfg.py'} --launcher pytorch --resume --amp")
    assert dryrun.request == TORCHRUN + shlex.split(dryrun.text)[1:]
    assert dryrun.warnings == []


def test_rendezvous_is_static_and_names_this_node(stub):
    job = _job(stub / "cfg.py", gpus=8, nodes=2, work_dir="/shared/run 1",
               rendezvous=Rendezvous("10.0.0.1", 29501, node_rank=1))
    text = load_backend("local").render(job).text
    assert text == ("torchrun --nnodes=2 --node-rank=1 --master-addr=10.0.0.1 --master-port=29501 "
                    f"--nproc-per-node=8 -m trainer {stub / 'cfg.py'} --launcher pytorch "
                    "--work-dir '/shared/run 1' --resume")


def test_cpu_processes_are_announced(stub):
    dryrun = load_backend("local").render(_job(stub / "cfg.py", gpus=0))
    assert "--nproc-per-node=2" in dryrun.text
    assert dryrun.warnings == ["no GPU visible: starting 2 CPU process(es) with the gloo backend"]


def test_several_nodes_need_a_rendezvous(stub):
    with pytest.raises(UsageError, match="2 nodes needs a master address and port"):
        load_backend("local").render(_job(stub / "cfg.py", nodes=2))



@pytest.mark.parametrize("listed, present, expected", [
    (None, 2, 2),
    ("-1", 2, 0),
    ("", 2, 0),
    ("1", 2, 1),
    ("0,1,2,3", 2, 2),
    ("0,-1,1", 2, 1),
    ("0,1", 0, 0),
])
def test_visible_gpus_from_driver_and_cuda_visible_devices(tmp_path, listed, present, expected):
    for i in range(present):
        (tmp_path / f"0000:0{i}:00.0").mkdir()
    environ = {} if listed is None else {"CUDA_VISIBLE_DEVICES": listed}
    assert visible_gpus(environ, proc_gpus=str(tmp_path)) == expected


def test_visible_gpus_asks_nvidia_smi_without_the_driver_folder(tmp_path, monkeypatch):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: A (UUID: GPU-1)'\necho 'GPU 1: A (UUID: GPU-2)'\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert visible_gpus({}, proc_gpus=str(tmp_path / "absent")) == 2
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert visible_gpus({}, proc_gpus=str(tmp_path / "absent")) == 0


def test_exit_status_is_the_shells():
    assert exit_status(3) == 3
    assert exit_status(-signal.SIGKILL) == 128 + 9


def test_ranks_get_the_trainer_arguments_unchanged(stub):
    tricky = ["--cfg-options", "a=[1, 2]", "name=it's", "$HOME", "--", "x y"]
    run = Watched.kctl("run", "cfg.py", "--gpus", "2", "--", *tricky, env=launch_env(), cwd=stub)
    assert run.wait(120) == 0, run.output
    starts = run.matches(START_LINE)
    assert sorted((m[2], m[4]) for m in starts) == [("0", "2"), ("1", "2")]
    argvs = [json.loads(m[1]) for m in run.matches(ARGV_LINE)]
    assert argvs == [["cfg.py", "--launcher", "pytorch", "--resume", *tricky]] * 2
    assert run.output.count("no GPU visible") == 1


def test_exit_status_is_the_failing_ranks(stub):
    run = Watched.kctl("run", "cfg.py", "--gpus", "2",
                       env=launch_env(STUB_EXIT_RANK_1="7"), cwd=stub)
    assert run.wait(120) == 7, run.output
    assert "Traceback" not in run.output
    assert re.search(r"rank\s+: 1 .*\n.*exitcode\s+: 7", run.output)


def test_max_restarts_is_torchruns_with_a_store_per_start(stub):
    dryrun = load_backend("local").render(_job(stub / "cfg.py"), max_restarts=2)
    assert dryrun.text.startswith("TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 torchrun --standalone "
                                  "--nnodes=1 --max-restarts=2 --nproc-per-node=2 -m trainer ")
    assert dryrun.request == TORCHRUN + shlex.split(dryrun.text)[2:]
    assert command_env(dryrun.text) == {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    assert command_env(load_backend("local").render(_job(stub / "cfg.py")).text) == {}
    with pytest.raises(UsageError, match="--max-restarts must not be negative, got -1"):
        load_backend("local").render(_job(stub / "cfg.py"), max_restarts=-1)
    with pytest.raises(UsageError, match="one node without --port"):
        load_backend("local").render(_job(stub / "cfg.py", rendezvous=Rendezvous("h", 29500)),
                                     max_restarts=1)


@pytest.mark.parametrize("code", [143, 137, 1])
def test_a_failed_rank_is_restarted_with_every_rank(stub, code):
    """Rank 1 fails in its first two starts (143: preempted, checkpoint saved; 137: killed; 1):
    torchrun starts both ranks again, with the same arguments, until they finish."""
    run = Watched.kctl("run", "cfg.py", "--gpus", "2", "--max-restarts", "2",
                       env=launch_env(STUB_EXIT_RANK_1=str(code), STUB_FAILING_STARTS="2"),
                       cwd=stub)
    assert run.wait(120) == 0, run.output
    starts = run.matches(START_LINE)
    assert sorted(m[2] for m in starts) == ["0", "0", "0", "1", "1", "1"]
    argvs = {json.dumps(json.loads(m[1])) for m in run.matches(ARGV_LINE)}
    assert argvs == {json.dumps(["cfg.py", "--launcher", "pytorch", "--resume"])}


def test_restarts_run_out(stub):
    # the ranks stay up 3 s, so that rank 1 has printed its start line before rank 0's exit
    # stops it (under load a Python start can take longer than rank 0's immediate exit)
    run = Watched.kctl("run", "cfg.py", "--gpus", "2", "--max-restarts", "1",
                       env=launch_env(STUB_EXIT_RANK_0="143", STUB_SLEEP="3"), cwd=stub)
    assert run.wait(120) == 143, run.output
    assert sorted(m[2] for m in run.matches(START_LINE)) == ["0", "0", "1", "1"]
    assert "Traceback" not in run.output


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_kctl_stops_every_rank(stub, signum):
    run = Watched.kctl("run", "cfg.py", "--gpus", "2", env=launch_env(STUB_SLEEP="120"), cwd=stub)
    run.wait_matches(START_LINE, 2, timeout=120)
    ranks = rank_pids(run.proc.pid)
    assert sorted(ranks) == [0, 1]
    torchrun = children(run.proc.pid)
    run.proc.send_signal(signum)
    assert run.wait(60) == 128 + signum, run.output
    assert wait_gone(list(ranks.values()) + torchrun, timeout=30) == []


def test_a_rank_killed_by_a_signal_gives_128_plus_its_number(stub):
    run = Watched.kctl("run", "cfg.py", "--gpus", "2", env=launch_env(STUB_SLEEP="120"), cwd=stub)
    run.wait_matches(START_LINE, 2, timeout=120)
    ranks = rank_pids(run.proc.pid)
    os.kill(ranks[1], signal.SIGKILL)
    assert run.wait(60) == 128 + signal.SIGKILL, run.output
    assert wait_gone(list(ranks.values()), timeout=30) == []


def test_killing_kctl_stops_torchrun_and_the_ranks(stub):
    run = Watched.kctl("run", "cfg.py", "--gpus", "2", env=launch_env(STUB_SLEEP="120"), cwd=stub)
    run.wait_matches(START_LINE, 2, timeout=120)
    torchrun = children(run.proc.pid)
    assert [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:3] for pid in torchrun] == [
        [os.fsencode(sys.executable), b"-m", b"kctl.backends.local"]]
    pids = list(rank_pids(run.proc.pid).values()) + torchrun
    assert len(pids) == 3
    run.proc.kill()
    run.wait(30)
    assert wait_gone(pids, timeout=60) == []

