"""bench/gpu_checks.sh runs end to end on the CPU (``--device cpu``: its steps, tiny) and records every
figure issue 16 asks for, so that the GPU run is this one prepared script."""

import json
import subprocess

import pytest

from tests.support.trainer_runtime import REPO, trainer_env


@pytest.fixture(scope="module")
def checks(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_checks")
    env = trainer_env()
    env.pop("CUDA_VISIBLE_DEVICES")  # the script hides the GPUs itself in --device cpu
    proc = subprocess.run(["bash", "bench/gpu_checks.sh", "--device", "cpu", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    return proc, out


def test_runs_every_step_and_exits_0(checks):
    proc, out = checks
    assert proc.returncode == 0, proc.stdout[-4000:]
    for step in ("same_settings", "flags", "decode", "compiled"):
        assert f"== {step}: exit 0 after" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "compiled.log", "decode.log", "flags.log", "gpu_checks.json", "gpu_checks.txt", "same_settings.log"]
    assert (out / "gpu_checks.txt").read_text() == proc.stdout


def test_records_the_figures_of_the_goals(checks):
    results = json.loads((checks[1] / "gpu_checks.json").read_text())
    assert results["environment"]["device"] == "cpu" and results["environment"]["torch"]
    same, flags, compiled, decode = (results[k] for k in ("same_settings", "flags", "compiled", "decode"))
    for section in (same, flags):
        assert section["trainer_img_s"] > 0 and section["plain_img_s"] > 0
        assert section["ratio"] == pytest.approx(section["trainer_img_s"] / section["plain_img_s"])
    assert same["plain"] == "fused,prefetch" and flags["plain"] == "eager"
    assert "channels_last=on cudnn_benchmark=on" in flags["speed_line"]
    assert 0 < same["startup"]["first_iteration_itself_s"] < same["startup"]["first_iteration_s"]
    assert same["startup"]["bare_import_s"] > 0
    assert compiled["trainer_img_s"] > 0 and "compile=on" in compiled["speed_line"]
    assert len(compiled["compile"]["first_iterations_s"]) == 3 and compiled["compile"]["compile_s"] > 0
    assert decode["cpu"]["img_s"] > 0 and decode["gpu"] == dict(img_s=None, note="skipped: no CUDA device is visible")
    assert same["gpu_utilization_pct"] is None and same["peak_memory_mib"] is None  # GPU-only figures


def test_prints_the_summary_against_the_goals(checks):
    summary = checks[0].stdout.split("== summary (cpu)\n")[1]
    assert "1. trainer / plain loop fed the same way, same settings:" in summary and "(goal >= 0.97)" in summary
    assert "(goal >= 1.25)" in summary and "(goal <= 1.05)" in summary
    assert "4. time to the first iteration (eager):" in summary and "n/a in torch.compile" not in summary
    assert "5. JPEG data path, gpu decoding" in summary and "skipped: no CUDA device is visible" in summary
