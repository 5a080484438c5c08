"""A ``_base_`` config installed through the chart reaches the pods complete.

The chart's output runs in the operator emulator (tests/support/operator_emulator.py): the pods
see the config where the command says, mmengine loads it to the same config as the tree on disk,
and the trainer trains one short epoch across two pods.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import yaml
from mmengine.config import Config

from kctl.configfiles import collect
from kctl.validate.manifest import load_documents
from tests.charts.conftest import CHART, DEMO_CONFIG, ROOT
from tests.support.operator_emulator import OperatorEmulator

#: One short epoch on a slice of the digits (validation included: the trainer gathers its results
#: over the process group, so pods on different nodes need no shared working directory).
TINY = ["--cfg-options", "train_cfg.max_epochs=1", "train_dataloader.dataset.indices=128",
        "val_dataloader.dataset.indices=64"]


def _config_in_pod(emulator: OperatorEmulator, pod_name: str) -> Config:
    """Create the pod's volumes (without starting it) and load the config its command names."""
    local = emulator.prepare(pod_name).process
    config = local.argv[local.argv.index("trainer") + 1]
    return Config.fromfile(config, import_custom_modules=False)


def test_config_files_tree_arrives_whole(helm, tmp_path):
    tree = collect(DEMO_CONFIG)
    values = tmp_path / "tree.yaml"
    values.write_text(yaml.safe_dump({
        "configName": tree.main,
        "configFiles": {rel: path.read_text() for rel, path in tree.files.items()}}))
    objects = helm.template("digits", "-f", str(values), "--set", "nodes=2",
                            "--set", "workDirSize=1Gi")
    expected = Config.fromfile(str(DEMO_CONFIG), import_custom_modules=False).to_dict()
    with OperatorEmulator(objects, tmp_path / "emu") as emulator:
        for pod in ("digits-master-0", "digits-worker-0"):
            assert _config_in_pod(emulator, pod).to_dict() == expected


def test_flattened_config_through_the_chart_trains_one_epoch_on_two_pods(helm, tmp_path):
    # The README's command line, word for word: process substitution feeds kctl's flat file.
    helm_cmd = (f"{shlex.quote(str(helm.binary))} template digits {shlex.quote(str(CHART))} "
                f"--set-file config=<({shlex.quote(sys.executable)} -m kctl config flatten "
                f"{shlex.quote(str(DEMO_CONFIG))}) --set configName=resnet18_1xb64_digits.py "
                "--set nodes=2 --set workDirSize=1Gi "
                f"--set 'trainerArgs={{{','.join(TINY)}}}'")
    proc = subprocess.run(["bash", "-c", helm_cmd], capture_output=True, text=True, cwd=ROOT,
                          env={**helm.env, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    objects = load_documents(proc.stdout)
    config_map = next(o for o in objects if o["kind"] == "ConfigMap")
    assert "_base_" not in config_map["data"]["resnet18_1xb64_digits.py"]

    pvc_root = tmp_path / "pvc"
    with OperatorEmulator(objects, tmp_path / "emu", pvc_root=pvc_root,
                          restart_delay=0.5) as emulator:
        assert _config_in_pod(emulator, "digits-master-0").to_dict() == Config.fromfile(
            str(DEMO_CONFIG), import_custom_modules=False).to_dict()
        emulator.start()
        phase = emulator.wait(timeout=480)
        assert phase == "Succeeded", emulator.report()
        logs = {pod: emulator.all_logs(pod) for pod in ("digits-master-0", "digits-worker-0")}
        assert [(p.restarts, p.recreations) for p in emulator.pods.values()] == [(0, 0)] * 2
    assert emulator.leftover_processes() == []

    work_dir = pvc_root / "digits-work-dir" / "digits"
    assert (work_dir / "epoch_1.pth").is_file()
    assert (work_dir / "last_checkpoint").is_file()
    starts = sorted(re.findall(r"trainer: launcher=pytorch rank=(\d) local_rank=0 world_size=2 "
                               r"backend=gloo device=cpu", "".join(logs.values())))
    assert starts == ["0", "1"]
    weights = set(re.findall(r"trainer: rank=\d final_weights_sha256=([0-9a-f]{64})",
                             "".join(logs.values())))
    assert len(weights) == 1  # both ranks end with the same model
