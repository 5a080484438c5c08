"""tools/dist_train.sh: MMPretrain's interface and examples, run by ``kctl run``.

Golden files (tests/kctl/golden/local/<case>.txt) hold the torchrun command that the seed's example
forms print with ``KCTL_DRY_RUN=1``; the same command must come from the equivalent ``kctl run``
flags. The repository path is written ``{REPO}``. Set ``KCTL_UPDATE_GOLDEN=1`` to rewrite them
after an intended change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.local_launch import (ARGV_LINE, REPO, START_LINE, Watched, kctl, launch_env,
                                        write_stub_trainer)

GOLDEN = REPO / "tests" / "kctl" / "golden" / "local"
CFG = "configs/resnet/resnet18_1xb64_digits.py"
ABS_CFG = str(REPO / CFG)
SCRIPT = "./tools/dist_train.sh"

#: case: (environment, how the seed's docs call dist_train.sh, the same as `kctl run` arguments)
CASES = {
    # PORT=29666 bash ./tools/dist_train.sh ${CONFIG_FILE} ${GPU_NUM}
    "port_29666": ({"PORT": "29666"}, [SCRIPT, CFG, "2"], [CFG, "--gpus", "2", "--port", "29666"]),
    # CUDA_VISIBLE_DEVICES=0,1,2,3 PORT=29500 bash ./tools/dist_train.sh ${CONFIG_FILE1} 4 [PY_ARGS]
    "four_devices_port_29500": (
        {"CUDA_VISIBLE_DEVICES": "0,1,2,3", "PORT": "29500"}, [SCRIPT, CFG, "4", "--amp"],
        [CFG, "--gpus", "4", "--port", "29500", "--", "--amp"]),
    # NNODES=2 NODE_RANK=0 PORT=$MASTER_PORT MASTER_ADDR=$MASTER_ADDR bash tools/dist_train.sh ...
    "node0_of_2": (
        {"NNODES": "2", "NODE_RANK": "0", "PORT": "29510", "MASTER_ADDR": "10.1.0.1"},
        ["tools/dist_train.sh", CFG, "8"],
        [CFG, "--gpus", "8", "--nnodes", "2", "--node-rank", "0", "--port", "29510",
         "--master-addr", "10.1.0.1"]),
    "node1_of_2": (
        {"NNODES": "2", "NODE_RANK": "1", "PORT": "29510", "MASTER_ADDR": "10.1.0.1"},
        ["tools/dist_train.sh", CFG, "8"],
        [CFG, "--gpus", "8", "--nnodes", "2", "--node-rank", "1", "--port", "29510",
         "--master-addr", "10.1.0.1"]),
    # the same with $MASTER_PORT and $MASTER_ADDR unset: dist_train.sh's defaults on node 0
    "node0_of_2_defaults": (
        {"NNODES": "2", "NODE_RANK": "0", "PORT": "", "MASTER_ADDR": ""},
        ["tools/dist_train.sh", CFG, "8"], [CFG, "--gpus", "8", "--nnodes", "2"]),
    # no PORT on one node: a free port; PY_ARGS with spaces and brackets kept word for word
    "py_args": (
        {}, [SCRIPT, CFG, "2", "--work-dir", "work_dirs/digits 2", "--cfg-options",
             "train_cfg.max_epochs=1", "model.head.topk=[1, 5]"],
        [CFG, "--gpus", "2", "--", "--work-dir", "work_dirs/digits 2", "--cfg-options",
         "train_cfg.max_epochs=1", "model.head.topk=[1, 5]"]),
    # absolute paths, called from elsewhere
    "absolute_paths": (
        {"PORT": "29501"}, [str(REPO / "tools" / "dist_train.sh"), ABS_CFG, "1"],
        [ABS_CFG, "--gpus", "1", "--port", "29501"]),
}


def _script_env(**extra: str) -> dict[str, str]:
    """The script runs kctl with $PYTHON: this interpreter."""
    return launch_env(PYTHON=sys.executable, **extra)


def _normalised(text: str) -> str:
    return text.replace(str(REPO), "{REPO}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_seed_forms_match_kctl_run_and_golden(case, tmp_path):
    env, script_args, kctl_args = CASES[case]
    seed = subprocess.run(["bash", *script_args], cwd=REPO, capture_output=True, text=True,
                          env=_script_env(KCTL_DRY_RUN="1", **env), timeout=60)
    assert seed.returncode == 0, seed.stderr
    direct = kctl("run", "--dry-run", *kctl_args, env=launch_env(**env))
    assert direct.returncode == 0, direct.stderr
    assert direct.stdout == seed.stdout

    golden = GOLDEN / f"{case}.txt"
    if os.environ.get("KCTL_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(_normalised(seed.stdout))
    assert _normalised(seed.stdout) == golden.read_text(), \
        f"regenerate with KCTL_UPDATE_GOLDEN=1 (see {golden})"


def test_golden_files_are_all_tested():
    assert sorted(p.stem for p in GOLDEN.glob("*.txt")) == sorted(CASES)


def test_too_few_arguments_print_the_usage():
    result = subprocess.run(["bash", SCRIPT, CFG], cwd=REPO, capture_output=True, text=True,
                            env=_script_env(), timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: [NNODES=1] [NODE_RANK=0] [PORT=29500] "
                                    "[MASTER_ADDR=127.0.0.1] ./tools/dist_train.sh CONFIG GPU_NUM")


def test_runs_from_anywhere_and_exits_with_the_failing_ranks_status(tmp_path: Path):
    """From another folder, without PYTHONPATH: the script makes the repository importable."""
    stub = write_stub_trainer(tmp_path)
    env = _script_env(STUB_EXIT_RANK_1="5")
    del env["PYTHONPATH"]
    run = Watched(["bash", str(REPO / "tools" / "dist_train.sh"), "cfg.py", "2", "--cfg-options",
                   "a=[1, 2]"], env=env, cwd=stub)
    assert run.wait(120) == 5, run.output
    assert sorted(int(m[2]) for m in run.matches(START_LINE)) == [0, 1]
    assert [json.loads(m[1]) for m in run.matches(ARGV_LINE)] == [
        ["cfg.py", "--launcher", "pytorch", "--resume", "--cfg-options", "a=[1, 2]"]] * 2
