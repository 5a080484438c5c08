"""``--amp``: the dtype chosen per device and CPU (trainer.amp), and that bf16 is really computed."""

import pytest
from mmengine.config import Config

from tests.support.trainer_runtime import TINY_CONFIG, lines_with, run_trainer, trainer_env, write_config
from trainer import amp
from trainer.amp import configure_amp, cpu_has_native_bf16
from trainer.errors import UsageError


@pytest.mark.parametrize("line, native", [
    ("flags\t\t: fpu sse avx2 avx512f avx512_bf16", True),
    ("flags\t\t: fpu sse avx2 amx_tile amx_bf16", True),
    ("Features\t: fp asimd bf16 i8mm", True),
    ("flags\t\t: fpu sse avx2 avx512f avx512_vnni", False),
])
def test_native_bf16_detection_from_cpuinfo(tmp_path, line, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\n{line}\n\nprocessor\t: 1\n{line}\n")
    assert cpu_has_native_bf16(str(cpuinfo)) is native


def _cfg(**wrapper):
    return Config(dict(optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1), **wrapper)))


@pytest.fixture
def cpu(monkeypatch):
    """Set whether the CPU has native bf16."""
    def set_native(native):
        monkeypatch.setattr(amp, "cpu_has_native_bf16", lambda: native)
    return set_native


def test_without_amp_nothing_changes():
    cfg = _cfg()
    assert configure_amp(cfg, False, cuda=True, environ={}) == "float32"
    assert "type" not in cfg.optim_wrapper


def test_cuda_uses_amp_optim_wrapper_fp16_dynamic_scaling():
    cfg = _cfg()
    assert configure_amp(cfg, True, cuda=True, environ={}) == "float16"
    assert (cfg.optim_wrapper.type, cfg.optim_wrapper.loss_scale, cfg.optim_wrapper.dtype) == (
        "AmpOptimWrapper", "dynamic", "float16")


def test_cuda_bf16_on_request():
    cfg = _cfg()
    assert configure_amp(cfg, True, cuda=True, environ=dict(TRAINER_AMP_DTYPE="bf16")) == "bfloat16"
    assert (cfg.optim_wrapper.type, cfg.optim_wrapper.dtype) == ("AmpOptimWrapper", "bfloat16")


def test_cpu_with_native_bf16_autocasts(cpu, capsys):
    cpu(True)
    cfg = _cfg()
    assert configure_amp(cfg, True, cuda=False, environ={}) == "bfloat16"
    assert cfg.optim_wrapper.type == "CpuBf16OptimWrapper"
    assert capsys.readouterr().err == ""


def test_cpu_without_native_bf16_warns_and_stays_fp32(cpu, capsys):
    cpu(False)
    cfg = _cfg()
    assert configure_amp(cfg, True, cuda=False, environ={}) == "float32"
    assert cfg.optim_wrapper.type == "OptimWrapper"
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("trainer: warning: --amp: this CPU has no native bfloat16")
    assert "TRAINER_AMP_DTYPE=bf16" in err[0]


def test_cpu_bf16_can_be_forced(cpu, capsys):
    cpu(False)
    cfg = _cfg()
    assert configure_amp(cfg, True, cuda=False, environ=dict(TRAINER_AMP_DTYPE="bf16")) == "bfloat16"
    assert cfg.optim_wrapper.type == "CpuBf16OptimWrapper"
    assert capsys.readouterr().err == ""


def test_fp32_turns_amp_off(cpu):
    cpu(True)
    cfg = _cfg()
    assert configure_amp(cfg, True, cuda=False, environ=dict(TRAINER_AMP_DTYPE="fp32")) == "float32"
    assert cfg.optim_wrapper.type == "OptimWrapper"


def test_cpu_refuses_fp16():
    with pytest.raises(UsageError, match="CPU autocast supports only bf16"):
        configure_amp(_cfg(), True, cuda=False, environ=dict(TRAINER_AMP_DTYPE="fp16"))


def test_amp_optim_wrapper_config_on_cpu_becomes_cpu_wrapper(cpu):
    cpu(True)
    cfg = _cfg(type="AmpOptimWrapper", loss_scale="dynamic")
    assert configure_amp(cfg, False, cuda=False, environ={}) == "bfloat16"
    assert cfg.optim_wrapper == dict(type="CpuBf16OptimWrapper", optimizer=dict(type="SGD", lr=0.1))


PROBED = TINY_CONFIG + "custom_hooks = [dict(type='ProbeHook')]\ntrain_cfg = dict(by_epoch=True, max_epochs=1)\n"


def test_forced_bf16_computes_in_bf16(tmp_path):
    cfg = write_config(tmp_path / "cfg", PROBED)
    proc = run_trainer(cfg, "--amp", "--work-dir", tmp_path / "wd", env=trainer_env(TRAINER_AMP_DTYPE="bf16"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert lines_with(proc.stdout, "trainer: amp dtype=bfloat16")
    assert lines_with(proc.stdout, "probe: forward dtype=torch.bfloat16")
    assert lines_with(proc.stdout, "final_weights_sha256=")


def test_amp_auto_follows_this_cpu(tmp_path):
    cfg = write_config(tmp_path / "cfg", PROBED)
    proc = run_trainer(cfg, "--amp", "--work-dir", tmp_path / "wd")
    assert proc.returncode == 0, proc.stderr[-3000:]
    dtype = "bfloat16" if cpu_has_native_bf16() else "float32"
    assert lines_with(proc.stdout, f"trainer: amp dtype={dtype}")
    assert lines_with(proc.stdout, f"probe: forward dtype=torch.{dtype}")
    assert bool(lines_with(proc.stderr, "trainer: warning: --amp")) is (dtype == "float32")


def test_without_amp_computes_in_fp32(tmp_path):
    cfg = write_config(tmp_path / "cfg", PROBED)
    proc = run_trainer(cfg, "--work-dir", tmp_path / "wd", env=trainer_env(TRAINER_AMP_DTYPE="bf16"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert lines_with(proc.stdout, "trainer: amp dtype=float32")
    assert lines_with(proc.stdout, "probe: forward dtype=torch.float32")
