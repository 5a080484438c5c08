"""The job model: topology arithmetic, rendezvous, trainer arguments and name rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from kctl.errors import UsageError
from kctl.job import (MAX_JOB_NAME, Job, Rendezvous, Topology, check_dns1035,
                      check_port, default_name, parse_int)


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "cfg.py"
    path.write_text("model = dict(type='X')\n")
    return path


def test_gpus_give_one_process_each():
    topology = Topology.per_node(8, nodes=2)
    assert (topology.nodes, topology.procs_per_node, topology.gpus_per_node) == (2, 8, 8)
    assert (topology.world_size, topology.uses_gpus, topology.backend) == (16, True, "nccl")


def test_no_gpus_means_cpu_processes_with_gloo():
    topology = Topology.per_node(0, nodes=3, cpu_procs=2)
    assert (topology.procs_per_node, topology.world_size) == (2, 6)
    assert (topology.uses_gpus, topology.backend) == (False, "gloo")


@pytest.mark.parametrize("kwargs, message", [
    (dict(nodes=0, procs_per_node=1, gpus_per_node=1), "nodes must be at least 1, got 0"),
    (dict(nodes=1, procs_per_node=0, gpus_per_node=0),
     "processes per node must be at least 1, got 0"),
    (dict(nodes=1, procs_per_node=1, gpus_per_node=-1), "gpus must not be negative, got -1"),
])
def test_topology_rejects_impossible_layouts(kwargs, message):
    with pytest.raises(UsageError, match=message):
        Topology(**kwargs)


def test_negative_gpus_name_the_flag():
    with pytest.raises(UsageError, match="--gpus must not be negative, got -2"):
        Topology.per_node(-2)


@pytest.mark.parametrize("total, per_node, layout", [
    (4, 8, (1, 4, 4)),
    (8, 8, (1, 8, 8)),
    (16, 8, (2, 8, 8)),
    (24, 8, (3, 8, 8)),
])
def test_slurm_totals_spread_over_nodes(total, per_node, layout):
    topology = Topology.from_total(total, per_node)
    assert (topology.nodes, topology.procs_per_node, topology.gpus_per_node) == layout
    assert topology.world_size == total


@pytest.mark.parametrize("total, per_node, message", [
    (12, 8, "GPUS=12 is not a multiple of GPUS_PER_NODE=8: use 8 or 16"),
    (8, 0, "GPUS_PER_NODE must be at least 1, got 0"),
    (0, 8, "GPUS must be at least 1 here, got 0"),
])
def test_slurm_totals_that_do_not_fit(total, per_node, message):
    with pytest.raises(UsageError, match=message):
        Topology.from_total(total, per_node)


def test_global_rank_is_node_major():
    topology = Topology.per_node(4, nodes=3)
    assert [topology.rank(n, l) for n in range(3) for l in range(4)] == list(range(12))
    with pytest.raises(UsageError, match=r"node rank 3 is outside 0\.\.2"):
        topology.rank(3, 0)
    with pytest.raises(UsageError, match=r"local rank 4 is outside 0\.\.3"):
        topology.rank(0, 4)


def test_rendezvous_checks_port_and_node_rank():
    assert Rendezvous("10.0.0.1", 29500, node_rank=1).master_port == 29500
    with pytest.raises(UsageError, match="port must be within 1-65535, got 70000"):
        Rendezvous("10.0.0.1", 70000)
    with pytest.raises(UsageError, match="node rank must not be negative, got -1"):
        Rendezvous("10.0.0.1", 29500, node_rank=-1)


def test_job_needs_an_existing_config(tmp_path):
    with pytest.raises(UsageError, match="config file not found: .*nope.py"):
        Job(config=tmp_path / "nope.py", topology=Topology.per_node(1), name="x")


def test_job_node_rank_below_nodes(config):
    with pytest.raises(UsageError, match="--node-rank 2 must be less than --nnodes 2"):
        Job(config=config, topology=Topology.per_node(1, nodes=2), name="x",
            rendezvous=Rendezvous("h", 29500, node_rank=2))


def test_trainer_arguments_resume_and_let_the_user_win(config):
    job = Job(config=config, topology=Topology.per_node(1), name="x", work_dir="/work",
              trainer_args=("--amp", "--resume", "ckpt.pth"))
    assert job.trainer_args_for("c.py", "pytorch") == [
        "c.py", "--launcher", "pytorch", "--work-dir", "/work", "--resume",
        "--amp", "--resume", "ckpt.pth"]
    assert job.trainer_args_for("c.py", "slurm", work_dir="/mnt/w")[3:5] == ["--work-dir", "/mnt/w"]
    bare = Job(config=config, topology=Topology.per_node(1), name="x")
    assert bare.trainer_args_for("c.py", "none") == ["c.py", "--launcher", "none", "--resume"]


def test_check_port_names_the_setting():
    assert check_port(1) == 1 and check_port(65535) == 65535
    for port in (0, 65536, -1):
        with pytest.raises(UsageError, match=f"PORT must be within 1-65535, got {port}"):
            check_port(port, "PORT")


def test_parse_int_names_the_setting():
    assert parse_int("42", "NNODES") == 42
    assert parse_int(7, "NNODES") == 7
    for bad in ("abc", "1.5", "", None):
        with pytest.raises(UsageError, match=f"NNODES must be a whole number, got {bad!r}"):
            parse_int(bad, "NNODES")


@pytest.mark.parametrize("config, name", [
    ("configs/resnet/resnet18_1xb64_digits.py", "resnet18-1xb64-digits"),
    ("configs/x/Swin__Base.py", "swin-base"),
    ("configs/x/2nd_try.py", "job-2nd-try"),
    ("configs/x/___.py", "job"),
    ("a/" + "x" * 80 + "-.py", "x" * MAX_JOB_NAME),
])
def test_default_name_is_a_dns_label(config, name):
    assert default_name(config) == name
    assert check_dns1035(name) == name


@pytest.mark.parametrize("name, message", [
    ("Upper", "not a DNS-1035 label"),
    ("1abc", "not a DNS-1035 label"),
    ("abc-", "not a DNS-1035 label"),
    ("a_b", "not a DNS-1035 label"),
    ("a" * 64, f"is 64 characters; at most {MAX_JOB_NAME} are allowed"),
])
def test_check_dns1035_explains(name, message):
    with pytest.raises(UsageError, match=message):
        check_dns1035(name, what="--name")
