"""GPU speed settings (trainer.performance): flags -> config, what is on by default on which device, the
one-line answers where a setting cannot run, and that channels-last and compiled steps train like eager."""

import json
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from tests.support.trainer_runtime import REPO, TINY_CONFIG, lines_with, run_trainer, write_config
from tests.trainer.small_job import EPOCHS, ITERS, ok, train, variant
from trainer import performance
from trainer.cli import build_parser
from trainer.errors import UsageError
from trainer.setup_cfg import apply_args, load_config

IMAGE_FOLDER_CONFIG = f"_base_ = ['{REPO}/configs/resnet/resnet18_1xb32_imagefolder.py']\n"


def configured(path, *flags):
    cfg = load_config(str(path))
    apply_args(cfg, build_parser().parse_args([str(path), *flags]))
    return cfg


def test_flags_set_the_config_and_cfg_options_win(tmp_path):
    path = write_config(tmp_path)
    cfg = configured(path, "--channels-last", "--cudnn-benchmark", "--compile")
    assert (cfg.channels_last, cfg.env_cfg.cudnn_benchmark, cfg.compile) == (True, True, True)
    assert cfg.env_cfg.dist_cfg == dict(backend="nccl")  # the rest of env_cfg stays
    cfg = configured(path, "--cudnn-benchmark", "--cfg-options", "env_cfg.cudnn_benchmark=False")
    assert cfg.env_cfg.cudnn_benchmark is False
    plain = configured(path)
    assert "channels_last" not in plain and "compile" not in plain and plain.env_cfg.cudnn_benchmark is False


def test_compile_keeps_the_configs_options(tmp_path):
    path = write_config(tmp_path, TINY_CONFIG + "compile = dict(backend='aot_eager')\n")
    assert configured(path, "--compile").compile == dict(backend="aot_eager")


def test_gpu_decode_switches_every_image_loader(tmp_path):
    cfg = configured(write_config(tmp_path, IMAGE_FOLDER_CONFIG), "--gpu-decode")
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert loader.dataset.pipeline[0] == dict(type="LoadImageFromFile", imdecode_backend="nvjpeg")
    assert configured(write_config(tmp_path, IMAGE_FOLDER_CONFIG)).train_dataloader.dataset.pipeline[0] == dict(
        type="LoadImageFromFile")


def test_gpu_decode_without_image_files_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="--gpu-decode: no LoadImageFromFile"):
        configured(write_config(tmp_path), "--gpu-decode")


def _sgd(**optimizer):
    return Config(dict(optim_wrapper=dict(optimizer=dict(dict(type="SGD", lr=0.1), **optimizer)),
                       train_cfg=dict(type="EpochBasedTrainLoop", max_epochs=1)))


def test_cuda_defaults_fused_step_and_prefetch():
    cfg = _sgd()
    settings = performance.configure(cfg, cuda=True)
    assert cfg.optim_wrapper.optimizer.fused is True and cfg.train_cfg.prefetch is True
    assert cfg.default_hooks.runtime_info == dict(type="trainer.RuntimeInfoHook")
    assert settings == dict(channels_last=False, cudnn_benchmark=False, fused_optimizer=True, prefetch=True,
                            compile=False, decode="cpu")
    assert performance.speed_line(settings) == ("trainer: speed channels_last=off cudnn_benchmark=off "
                                                "fused_optimizer=on prefetch=on compile=off decode=cpu")


def test_cpu_defaults_change_nothing():
    cfg = _sgd()
    settings = performance.configure(cfg, cuda=False)
    assert "fused" not in cfg.optim_wrapper.optimizer and cfg.train_cfg.prefetch is False
    assert settings["fused_optimizer"] is False and settings["prefetch"] is False


@pytest.mark.parametrize("optimizer, fused", [(dict(fused=False), False), (dict(foreach=True), False),
                                              (dict(type="RMSprop"), False), (dict(type="AdamW"), True),
                                              (dict(type="torch.optim.Adam"), True), (dict(type="LARS"), False)])
def test_fused_step_only_where_torch_has_it_and_the_config_is_silent(optimizer, fused):
    cfg = _sgd(**optimizer)
    assert performance.configure(cfg, cuda=True)["fused_optimizer"] is fused
    assert cfg.optim_wrapper.optimizer.get("fused", False) is fused


def test_prefetch_can_be_turned_off_and_needs_the_trainers_epoch_loop():
    cfg = _sgd()
    cfg.train_cfg.prefetch = False
    assert performance.configure(cfg, cuda=True)["prefetch"] is False
    cfg = Config(dict(optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
                      train_cfg=dict(type="IterBasedTrainLoop", max_iters=4)))
    assert performance.configure(cfg, cuda=True)["prefetch"] is False and "prefetch" not in cfg.train_cfg
    cfg = _sgd()
    cfg.train_cfg.type = "trainer.EpochBasedTrainLoop"  # as qualified in a config of another scope
    assert performance.configure(cfg, cuda=True)["prefetch"] is True


def test_compile_without_a_cpp_compiler_warns_once_and_trains_eager(monkeypatch, capsys):
    import torch._inductor.cpp_builder as cpp_builder

    def no_compiler():
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    cfg = _sgd()
    cfg.compile = True
    assert performance.configure(cfg, cuda=False)["compile"] is False and cfg.compile is False
    assert capsys.readouterr().err == (
        "trainer: warning: --compile: the inductor backend needs a C++ compiler on the CPU (g++ or clang++; "
        "or set CXX): training without torch.compile\n")
    assert "custom_hooks" not in cfg


def test_compile_where_it_works_adds_the_compile_time_report(monkeypatch):
    cfg = _sgd()
    cfg.compile = dict(backend="aot_eager")  # other backends are not checked
    assert performance.configure(cfg, cuda=False)["compile"] is True
    assert cfg.custom_hooks == [dict(type="trainer.CompileTimeHook")]  # found from any config's scope


def test_gpu_decode_problems_are_named():
    assert performance.gpu_decode_problem(cuda=False) == "no CUDA device is visible"


def test_channels_last_converts_conv_nets_and_ignores_others(capsys):
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 2))
    assert performance.to_channels_last(conv) is True
    assert conv[0].weight.is_contiguous(memory_format=torch.channels_last) and capsys.readouterr().err == ""
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 2))
    assert performance.to_channels_last(mlp) is False
    assert capsys.readouterr().err == "trainer: warning: --channels-last: Sequential has no 2-D convolution: ignored\n"


def test_every_run_names_its_speed_settings(tmp_path):
    proc = run_trainer(write_config(tmp_path), "--work-dir", tmp_path / "wd", "--channels-last", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert lines_with(proc.stdout, "trainer: speed") == [
        "trainer: speed channels_last=on cudnn_benchmark=off fused_optimizer=off prefetch=off compile=off decode=cpu"]
    assert lines_with(proc.stderr, "trainer: warning") == [
        "trainer: warning: --channels-last: TinyNet has no 2-D convolution: ignored"]


def test_gpu_decode_without_a_gpu_is_one_line(tmp_path):
    data = tmp_path / "images"
    for name in ("cat", "dog"):
        (data / "train" / name).mkdir(parents=True)
        (data / "val" / name).mkdir(parents=True)
    config = write_config(tmp_path / "cfg", IMAGE_FOLDER_CONFIG + f"data_root = '{data}'\n"
                          f"train_dataloader = dict(dataset=dict(data_root='{data}'))\n"
                          f"val_dataloader = dict(dataset=dict(data_root='{data}'))\n"
                          f"test_dataloader = dict(dataset=dict(data_root='{data}'))\n")
    proc = run_trainer(config, "--work-dir", tmp_path / "wd", "--gpu-decode", timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "trainer: error: --gpu-decode (imdecode_backend='nvjpeg'): no CUDA device is visible"]
    assert not (tmp_path / "wd").exists()


# ---- same results as eager: the small digits job (2-stage ResNet, random crops, drop path) ----------------

CLOSE = r"""
import json, sys, torch
a, b = (torch.load(p, map_location="cpu", weights_only=False)["state_dict"] for p in sys.argv[1:3])
worst = max(((x.float() - b[k].float()).abs().max() / x.float().abs().max().clamp(min=1e-6)).item()
            for k, x in a.items() if x.is_floating_point())
print(json.dumps({"keys": sorted(a) == sorted(b), "worst": worst,
                  "channels_last": [k for k, x in b.items() if x.dim() == 4
                                    and x.is_contiguous(memory_format=torch.channels_last)
                                    and not x.is_contiguous()]}))
"""


def _compare(reference, other):
    proc = subprocess.run([sys.executable, "-c", CLOSE, str(reference), str(other)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("setting, text", [("channels_last", "channels_last = True\n"),
                                           ("compile", "compile = dict(backend='aot_eager')\n")])
def test_channels_last_and_compiled_steps_train_like_eager(small_job, tmp_path, setting, text):
    run = ok(train(variant(small_job, tmp_path, text), tmp_path / "wd"))
    assert f"{setting}=on" in lines_with(run.output, "trainer: speed")[0]
    report = _compare(small_job["work_dir"] / f"epoch_{EPOCHS}.pth", tmp_path / "wd" / f"epoch_{EPOCHS}.pth")
    assert report["keys"] and report["worst"] < 1e-3, report  # rounding apart, the same 18 steps
    if setting == "channels_last":
        assert report["channels_last"], "the checkpoint's conv weights should be channels-last"
    else:
        compiled = lines_with(run.output, "trainer: compile: iterations 1-3 took")
        assert len(compiled) == 1 and "torch.compile compiled for" in compiled[0], run.output[-2000:]


def test_a_training_iteration_reads_no_tensor_value_on_the_host(small_job, tmp_path):
    """On a GPU, each read of a tensor's value (``.item()``, ``int(t)``) waits for the GPU. The trainer's
    iterations read none (not the loss, not a label's range), except where a log line is written (here
    only at an epoch's end): there the losses of the epoch's ITERS iterations are read, one wait."""
    run = ok(train(variant(small_job, tmp_path, "custom_imports = dict(imports=['tests.support.tiny_components'])\n"
                           "custom_hooks = [dict(type='ScalarReadsHook')]\n"
                           "default_hooks = dict(logger=dict(interval=100))\n"), tmp_path / "wd"))
    reads = lines_with(run.output, "probe: scalar reads per iteration")
    per_epoch = [0] * (ITERS - 2) + [ITERS]  # the first iteration of each epoch is not counted
    assert reads == [f"probe: scalar reads per iteration {per_epoch * EPOCHS}"], run.output[-2000:]


def test_inductor_compiled_conv_net_matches_eager():
    """The inductor backend itself (C++ code generated and compiled on the CPU) on a tiny conv net."""
    problem = performance.compile_problem(True, cuda=False)
    if problem:
        pytest.skip(problem)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 2))
    inputs = torch.randn(2, 3, 8, 8)
    model(inputs).square().sum().backward()
    eager = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch.compile(model)(inputs).square().sum().backward()
    for expected, got in zip(eager, (p.grad for p in model.parameters())):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
