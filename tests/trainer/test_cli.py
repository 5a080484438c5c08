"""``python -m trainer`` command line: MMPretrain's flags, --cfg-options forms, bad input as one line."""

import os
import subprocess
import sys

import pytest

from tests.support.trainer_runtime import REPO, TINY_CONFIG, run_trainer, trainer_env, write_config
from trainer.cli import build_parser, parse_args


def test_help_lists_mmpretrain_flags_and_hides_local_rank():
    text = build_parser().format_help()
    for flag in ("--work-dir", "--resume [RESUME]", "--amp", "--no-validate", "--auto-scale-lr",
                 "--no-pin-memory", "--no-persistent-workers", "--cfg-options",
                 "--launcher {none,pytorch,slurm,mpi}", "TRAINER_AMP_DTYPE", "TRAINER_TRUSTED_CHECKPOINTS"):
        assert flag in text
    assert "local" not in text.split("environment variables")[0].replace("local_rank", "")


def test_defaults_match_mmpretrain():
    args = build_parser().parse_args(["c.py"])
    assert (args.work_dir, args.resume, args.amp, args.no_validate, args.auto_scale_lr, args.no_pin_memory,
            args.no_persistent_workers, args.cfg_options, args.launcher) == (
        None, None, False, False, False, False, False, None, "none")


@pytest.mark.parametrize("argv, expected", [(["--resume"], "auto"), (["--resume", "a.pth"], "a.pth")])
def test_resume_bare_means_auto(argv, expected):
    assert build_parser().parse_args(["c.py", *argv]).resume == expected


@pytest.mark.parametrize("flag", ["--local-rank", "--local_rank"])
def test_local_rank_sets_env_only_when_absent(monkeypatch, flag):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    parse_args(["c.py", f"{flag}=3"])
    assert os.environ["LOCAL_RANK"] == "3"
    parse_args(["c.py", f"{flag}=5"])
    assert os.environ["LOCAL_RANK"] == "3"


@pytest.mark.parametrize("option, key, value", [
    ("a=1", "a", 1),
    ("a=0.5", "a", 0.5),
    ("a=true", "a", True),
    ("a=None", "a", None),
    ("a=x,y", "a", ["x", "y"]),
    ('a="[x,y]"', "a", ["x", "y"]),
    ('a="[(1,2),(3,4)]"', "a", [(1, 2), (3, 4)]),
    ("a.b.c=[1,[2,3]]", "a.b.c", [1, [2, 3]]),
])
def test_cfg_options_value_forms(option, key, value):
    assert build_parser().parse_args(["c.py", "--cfg-options", option]).cfg_options == {key: value}


def test_cfg_options_merge_dotted_keys_and_list_indices(tmp_path):
    from trainer.setup_cfg import apply_args, load_config

    path = write_config(tmp_path, TINY_CONFIG + "custom_hooks = [dict(type='A', x=1), dict(type='B')]\n")
    args = build_parser().parse_args([str(path), "--cfg-options", "train_dataloader.batch_size=4",
                                      "custom_hooks.1.type=C", "param_scheduler.milestones=1,2",
                                      "visualizer.vis_backends.0.save_dir=/x", "new_key=[(a,b),(c,d)]"])
    cfg = load_config(str(path))
    apply_args(cfg, args)
    assert cfg.train_dataloader.batch_size == 4
    assert cfg.train_dataloader.num_workers == 0  # siblings kept
    assert [h["type"] for h in cfg.custom_hooks] == ["A", "C"] and cfg.custom_hooks[0]["x"] == 1
    assert cfg.param_scheduler.milestones == [1, 2]
    assert cfg.visualizer.vis_backends[0].save_dir == "/x"
    assert cfg.new_key == [("a", "b"), ("c", "d")]


def test_cfg_options_are_merged_after_the_flags(tmp_path):
    from trainer.setup_cfg import apply_args, load_config

    path = write_config(tmp_path)
    args = build_parser().parse_args([str(path), "--no-pin-memory", "--cfg-options",
                                      "train_dataloader.pin_memory=True", "work_dir=/from/options",
                                      "--work-dir", "/from/flag"])
    cfg = load_config(str(path))
    apply_args(cfg, args)
    assert cfg.train_dataloader.pin_memory is True and cfg.val_dataloader.pin_memory is False
    assert cfg.work_dir == "/from/options"


def _assert_one_line_error(proc, code, *fragments):
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("trainer: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.fixture
def bad_input(tmp_path):
    """Run the trainer from ``tmp_path`` and check that nothing was written there."""
    def run(*args, env=None):
        before = sorted(p.name for p in tmp_path.iterdir())
        proc = run_trainer(*args, "--work-dir", tmp_path / "wd", env=env, timeout=120)
        assert sorted(p.name for p in tmp_path.iterdir()) == before
        assert not (tmp_path / "work_dirs").exists()
        return proc
    return run


def test_missing_config_file(bad_input, tmp_path):
    _assert_one_line_error(bad_input(tmp_path / "nope.py"), 2, "config file not found", "nope.py")


def test_missing_config_argument(bad_input):
    _assert_one_line_error(bad_input(), 2, "config")


def test_config_syntax_error_names_file_and_line(bad_input, tmp_path):
    cfg = write_config(tmp_path / "cfg")
    base = tmp_path / "cfg" / "_base_" / "tiny_runtime.py"
    base.write_text(base.read_text() + "oops = dict(a=1\n")
    lines = len(base.read_text().splitlines())
    proc = bad_input(cfg)
    _assert_one_line_error(proc, 1, "syntax error in config", str(base), f"line {lines}")


def test_cfg_options_without_equals(bad_input, tiny_config):
    _assert_one_line_error(bad_input(tiny_config, "--cfg-options", "train_cfg.max_epochs"), 2,
                           "--cfg-options", "KEY=VALUE", "train_cfg.max_epochs")


def test_cfg_options_unbalanced_brackets(bad_input, tiny_config):
    _assert_one_line_error(bad_input(tiny_config, "--cfg-options", "a=[1,2"), 2, "--cfg-options", "a=[1,2")


def test_resume_path_not_found(bad_input, tiny_config, tmp_path):
    _assert_one_line_error(bad_input(tiny_config, "--resume", tmp_path / "missing.pth"), 2,
                           "--resume", "missing.pth")


@pytest.mark.parametrize("launcher, names", [
    ("pytorch", "RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT"),  # LOCAL_RANK: --local-rank's default
    ("slurm", "SLURM_PROCID, SLURM_NTASKS, SLURM_NODELIST, SLURM_LOCALID"),
    ("mpi", "OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK"),
])
def test_launcher_without_its_environment(bad_input, tiny_config, launcher, names):
    _assert_one_line_error(bad_input(tiny_config, "--launcher", launcher), 2, f"--launcher {launcher}", names)


def test_auto_scale_lr_without_auto_scale_lr(bad_input, tmp_path):
    cfg = write_config(tmp_path / "cfg", TINY_CONFIG.replace("auto_scale_lr = dict(base_batch_size=16)\n", ""))
    _assert_one_line_error(bad_input(cfg, "--auto-scale-lr"), 2, "--auto-scale-lr", "auto_scale_lr")


def test_dataset_root_not_found(bad_input, tmp_path):
    config = REPO / "configs" / "resnet" / "resnet18_1xb64_digits.py"
    proc = bad_input(config, "--cfg-options", f"train_dataloader.dataset.data_root={tmp_path}/no/such/root")
    _assert_one_line_error(proc, 1, "train_dataloader.dataset.data_root", f"{tmp_path}/no/such/root")


def test_unknown_amp_dtype(bad_input, tiny_config):
    _assert_one_line_error(bad_input(tiny_config, "--amp", env=trainer_env(TRAINER_AMP_DTYPE="fp8")), 2,
                           "TRAINER_AMP_DTYPE")


def test_unknown_model_type_is_one_line(tmp_path):
    cfg = write_config(tmp_path / "cfg", TINY_CONFIG.replace("type='TinyNet'", "type='NoSuchNet'"))
    proc = run_trainer(cfg, "--work-dir", tmp_path / "wd", timeout=120)
    _assert_one_line_error(proc, 2, "model.type: type 'NoSuchNet' is in no registry (scopes searched: trainer, mmengine)")
    assert not (tmp_path / "wd").exists()  # found before the Runner makes its work_dir


def test_tools_train_py_is_the_same_command(tmp_path):
    cfg = write_config(tmp_path / "cfg")
    proc = run_trainer("tools/train.py", cfg, "--cfg-options", "a", module=None)
    _assert_one_line_error(proc, 2, "KEY=VALUE")


def test_bad_input_is_answered_without_importing_torch(tiny_config):
    code = ("import sys; from trainer.cli import main; "
            f"rc = main([{str(tiny_config)!r}, '--cfg-options', 'train_cfg.max_epochs=1', '--launcher', 'mpi']); "
            "print(rc, 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=trainer_env(), capture_output=True,
                          text=True, timeout=60)
    assert proc.stdout.split() == ["2", "False"], proc.stderr
    assert "OMPI_COMM_WORLD_RANK" in proc.stderr
