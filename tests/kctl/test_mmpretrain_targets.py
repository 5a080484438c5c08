"""MMPretrain's own configs on every launcher (issue 12), named ``mmpretrain::FAMILY/NAME.py``.

In the MMPretrain environment (:mod:`tests.support.mmpretrain_env`): kctl finds the installed package's
config without importing it; ``kctl train`` ships the config and every ``_base_`` file it reaches in its
ConfigMap; ResNet-18's ImageNet config under ``kctl run --gpus 2`` (two CPU ranks), SIGKILLed mid-epoch
and run again, ends with the uninterrupted run's weights, and so does the same job as a 2-node
PyTorchJob run by the operator emulator.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.local_launch import REPO, rank_pids
from tests.support.mmpretrain_env import mmpretrain_env
from tests.support.mmpretrain_job import (RESNET18, RESUMED, TIMEOUT, final_weights, kctl, trainer_options)
from tests.support.containers import Image, ProcessRuntime
from tests.support.operator_emulator import OperatorEmulator

SWIN = "mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py"
#: The files SWIN reaches through ``_base_``, relative to MMPretrain's config tree.
SWIN_TREE = ("swin_transformer/swin-tiny_16xb64_in1k.py", "_base_/models/swin_transformer/tiny_224.py",
             "_base_/datasets/imagenet_bs64_swin_224.py", "_base_/schedules/imagenet_bs1024_adamw_swin.py",
             "_base_/default_runtime.py")


def run(python: Path, *argv: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), *argv], cwd=REPO, env=mmpretrain_env(python, **env), input=stdin,
                          capture_output=True, text=True, timeout=120)


def package_configs(python: Path) -> Path:
    code = "import importlib.util as u; print(u.find_spec('mmpretrain').submodule_search_locations[0])"
    return Path(run(python, "-c", code).stdout.strip()) / ".mim" / "configs"


def test_kctl_train_ships_the_config_and_every_base_it_reaches(mmpretrain_python):
    proc = run(mmpretrain_python, "-m", "kctl", "train", SWIN, "--gpus", "8", "--nodes", "2", "--work-dir-pvc",
               "ckpt", "--dry-run", "-o", "yaml")
    assert proc.returncode == 0, proc.stderr
    objects = [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
    config_map = next(o for o in objects if o["kind"] == "ConfigMap")
    volume = next(v for v in objects[-1]["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["volumes"]
                  if "configMap" in v)
    shipped = {item["path"]: config_map["data"][item["key"]] for item in volume["configMap"]["items"]}
    configs = package_configs(mmpretrain_python)
    assert shipped == {path: (configs / path).read_text() for path in SWIN_TREE}
    container = objects[-1]["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
    assert f"/config/{SWIN_TREE[0]}" in container["command"] + container.get("args", [])
    checked = run(mmpretrain_python, "-m", "kctl", "validate", "-", stdin=proc.stdout)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_kctl_never_imports_mmpretrain_or_torch(mmpretrain_python):
    code = f"""\
import contextlib, io, json, sys
import kctl
from kctl.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    codes = [main(["train", "{SWIN}", "--gpus", "8", "--dry-run"]),
             main(["run", "{RESNET18}", "--gpus", "2", "--dry-run"])]
print(json.dumps([codes, sorted(m for m in sys.modules if m.split(".")[0] in
                                ("mmpretrain", "mmcv", "mmengine", "torch", "torchvision"))]))
"""
    proc = run(mmpretrain_python, "-c", code)
    assert json.loads(proc.stdout) == [[0, 0], []], proc.stderr


def test_every_launcher_takes_a_package_config_name(mmpretrain_python, tmp_path):
    configs = package_configs(mmpretrain_python)
    resolved = str(configs / "resnet/resnet18_8xb32_in1k.py")
    dry_run = run(mmpretrain_python, "-m", "kctl", "run", RESNET18, "--gpus", "2", "--dry-run")
    assert dry_run.returncode == 0 and f"-m trainer {resolved} --launcher pytorch" in dry_run.stdout, dry_run
    dist_train = subprocess.run(["bash", "tools/dist_train.sh", RESNET18, "2"], cwd=REPO, capture_output=True,
                                text=True, env=mmpretrain_env(mmpretrain_python, KCTL_DRY_RUN="1",
                                                              PYTHON=str(mmpretrain_python)))
    assert dist_train.stdout == dry_run.stdout, dist_train.stderr
    script = run(mmpretrain_python, "-m", "kctl", "slurm-script", "--gpus", "0", "debug", "r18", RESNET18,
                 str(tmp_path / "work"))  # the trainer resolves the name again on the compute node
    assert script.returncode == 0 and f"-m trainer {RESNET18} --launcher slurm" in script.stdout, script
    flat = run(mmpretrain_python, "-m", "kctl", "config", "flatten", RESNET18)
    assert flat.returncode == 0 and "default_scope = 'mmpretrain'" in flat.stdout, flat.stderr
    typo = run(mmpretrain_python, "-m", "kctl", "train", "mmpretrain::resnet/resnet18_8xb32_in1.py", "--gpus", "1",
               "--dry-run")
    assert typo.returncode == 2 and re.fullmatch(
        r"kctl: error: mmpretrain::resnet/resnet18_8xb32_in1.py: no such config in mmpretrain's config tree "
        r"\S+; nearest: mmpretrain::resnet/resnet18_8xb32_in1k.py, .*\n", typo.stderr), typo.stderr


# ---- the same weights on every launcher ----------------------------------------------------------------------

def kctl_run(python: Path, data: Path, work_dir: Path):
    """``kctl run RESNET18 --gpus 2 --work-dir WORK_DIR -- --cfg-options ...``: two CPU ranks, one
    image each per step (4 iterations an epoch, 2 epochs)."""
    return kctl(python, "run", RESNET18, "--gpus", "2", "--work-dir", str(work_dir), "--",
                *trainer_options(data, per_process_batch=1))


@pytest.fixture(scope="module")
def two_rank_reference(mmpretrain_python, tiny_imagenet, tmp_path_factory) -> str:
    """The final weights' sha256 of ``kctl run --gpus 2``, uninterrupted (the same on both ranks)."""
    reference = kctl_run(mmpretrain_python, tiny_imagenet, tmp_path_factory.mktemp("reference") / "work")
    assert reference.wait(TIMEOUT) == 0, reference.output[-3000:]
    shas = final_weights(reference.output)
    assert len(shas) == 2 and len(set(shas.values())) == 1, reference.output[-3000:]
    return shas[0]


def test_kctl_run_two_ranks_sigkilled_mid_epoch_resume_exactly(two_rank_reference, mmpretrain_python,
                                                               tiny_imagenet, tmp_path):
    work = tmp_path / "work"
    first = kctl_run(mmpretrain_python, tiny_imagenet, work)
    first.wait_matches(re.compile(r"Epoch\(train\)\s*\[2\]\[1/4\]"), 1, TIMEOUT)
    ranks = rank_pids(first.proc.pid)
    assert sorted(ranks) == [0, 1], first.output[-3000:]
    os.kill(ranks[1], signal.SIGKILL)
    assert first.wait(TIMEOUT) == 128 + signal.SIGKILL, first.output[-3000:]
    assert not final_weights(first.output)

    again = kctl_run(mmpretrain_python, tiny_imagenet, work)
    assert again.wait(TIMEOUT) == 0, again.output[-3000:]
    assert RESUMED.findall(again.output) == [(str(work / "epoch_1.pth"), "1", "4")]
    assert final_weights(again.output) == {0: two_rank_reference, 1: two_rank_reference}


def test_a_two_node_pytorchjob_ends_with_kctl_runs_weights(two_rank_reference, mmpretrain_python, tiny_imagenet,
                                                           tmp_path):
    """``kctl train --nodes 2 --gpus 0 --cpu 1``: one CPU rank per pod, in an image whose Python is the
    MMPretrain environment's; the data on a claim mounted at /data."""
    proc = run(mmpretrain_python, "-m", "kctl", "train", RESNET18, "--nodes", "2", "--gpus", "0", "--cpu", "1",
               "--work-dir-pvc", "shared", "--data-pvc", "imagenet:/data", "--name", "r18", "--dry-run", "--",
               *trainer_options(Path("/data"), per_process_batch=1))
    assert proc.returncode == 0, proc.stderr
    objects = [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
    image = Image(bin_dir=mmpretrain_python.parent,
                  entrypoint=(str(mmpretrain_python), str(REPO / "image" / "entrypoint.py")))
    (tmp_path / "pvc" / "shared").mkdir(parents=True)
    (tmp_path / "pvc" / "imagenet").symlink_to(tiny_imagenet)
    with OperatorEmulator(objects, tmp_path / "emu", pvc_root=tmp_path / "pvc",
                          runtime=ProcessRuntime(image)) as emulator:
        emulator.start()
        assert emulator.wait(timeout=TIMEOUT) == "Succeeded", emulator.report()
        restarts = [(p.restarts, p.recreations) for p in emulator.pods.values()]
        log = "\n".join(emulator.all_logs(pod) for pod in ("r18-master-0", "r18-worker-0"))
    assert emulator.leftover_processes() == []
    assert restarts == [(0, 0), (0, 0)]
    assert final_weights(log) == {0: two_rank_reference, 1: two_rank_reference}
