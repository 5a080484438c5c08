"""How the command-line flags change the config (trainer.setup_cfg), checked on the loaded config."""

import pytest

from tests.support.trainer_runtime import TINY_CONFIG, write_config
from trainer.cli import build_parser
from trainer.errors import TrainerError, UsageError
from trainer.setup_cfg import apply_args, check_data_paths, load_config


def configured(path, *flags):
    cfg = load_config(str(path))
    apply_args(cfg, build_parser().parse_args([str(path), *flags]))
    return cfg


def test_work_dir_from_the_command_line_wins(tmp_path):
    path = write_config(tmp_path, TINY_CONFIG + "work_dir = '/from/config'\n")
    assert configured(path, "--work-dir", "/from/cli").work_dir == "/from/cli"


def test_work_dir_from_the_config(tmp_path):
    path = write_config(tmp_path, TINY_CONFIG + "work_dir = '/from/config'\n")
    assert configured(path).work_dir == "/from/config"


def test_work_dir_defaults_to_work_dirs_and_the_config_name(tmp_path):
    path = write_config(tmp_path, name="my_job_1xb8.py")
    assert configured(path).work_dir == "./work_dirs/my_job_1xb8"


def test_no_validate_removes_validation(tmp_path):
    cfg = configured(write_config(tmp_path), "--no-validate")
    assert cfg.val_cfg is None and cfg.val_dataloader is None and cfg.val_evaluator is None
    assert configured(write_config(tmp_path)).val_evaluator == dict(type="TinyAccuracy")


def test_resume_forms(tmp_path):
    path = write_config(tmp_path)
    assert (configured(path).resume, configured(path).load_from) == (False, None)
    cfg = configured(path, "--resume")
    assert (cfg.resume, cfg.load_from) == (True, None)
    ckpt = tmp_path / "epoch_1.pth"
    ckpt.write_bytes(b"")
    cfg = configured(path, "--resume", str(ckpt))
    assert (cfg.resume, cfg.load_from) == (True, str(ckpt))


def test_only_rank_0_needs_the_resume_path(tmp_path):
    """Rank 0 reads the checkpoint and hands it to the others: on a node without rank 0's work_dir the
    path need not exist."""
    path, missing = write_config(tmp_path), str(tmp_path / "elsewhere" / "epoch_1.pth")
    args = build_parser().parse_args([str(path), "--resume", missing])
    cfg = load_config(str(path))
    apply_args(cfg, args, rank=1)
    assert (cfg.resume, cfg.load_from) == (True, missing)
    with pytest.raises(UsageError, match="--resume: checkpoint not found: .*elsewhere/epoch_1.pth"):
        apply_args(load_config(str(path)), args, rank=0)


def test_auto_scale_lr_enables_the_config_setting(tmp_path):
    path = write_config(tmp_path)
    assert configured(path).auto_scale_lr == dict(base_batch_size=16)
    assert configured(path, "--auto-scale-lr").auto_scale_lr == dict(base_batch_size=16, enable=True)


def test_auto_scale_lr_given_only_through_cfg_options(tmp_path):
    path = write_config(tmp_path, TINY_CONFIG.replace("auto_scale_lr = dict(base_batch_size=16)\n", ""))
    cfg = configured(path, "--auto-scale-lr", "--cfg-options", "auto_scale_lr.base_batch_size=32")
    assert cfg.auto_scale_lr == dict(base_batch_size=32, enable=True)
    with pytest.raises(UsageError, match="auto_scale_lr"):
        configured(path, "--auto-scale-lr")


WORKERS = TINY_CONFIG.replace("batch_size=8, num_workers=0", "batch_size=8, num_workers=2")


def test_dataloader_defaults_pin_memory_and_persistent_workers(tmp_path):
    cfg = configured(write_config(tmp_path, WORKERS))
    assert cfg.train_dataloader.pin_memory is True and cfg.train_dataloader.persistent_workers is True
    assert cfg.train_dataloader.collate_fn == dict(type="default_collate")
    # persistent workers need workers: the val loader has num_workers=0
    assert cfg.val_dataloader.pin_memory is True and cfg.val_dataloader.persistent_workers is False


def test_dataloader_flags_turn_the_defaults_off_everywhere(tmp_path):
    body = WORKERS + "test_dataloader = dict(batch_size=4, num_workers=2, dataset=dict(type='TinyDataset'))\n"
    cfg = configured(write_config(tmp_path, body), "--no-pin-memory", "--no-persistent-workers")
    for field in ("train_dataloader", "val_dataloader", "test_dataloader"):
        assert cfg[field].pin_memory is False and cfg[field].persistent_workers is False


def test_config_values_beat_the_dataloader_defaults(tmp_path):
    body = WORKERS.replace("num_workers=2,", "num_workers=2, pin_memory=False,")
    assert configured(write_config(tmp_path, body)).train_dataloader.pin_memory is False


def test_amp_refuses_a_custom_optimizer_wrapper(tmp_path):
    path = write_config(tmp_path, TINY_CONFIG + "optim_wrapper.update(type='MyWrapper')\n")
    with pytest.raises(UsageError, match="MyWrapper"):
        configured(path, "--amp")


def test_launcher_and_default_scope(tmp_path):
    path = write_config(tmp_path, "model = dict(type='TinyNet')\n")
    cfg = configured(path, "--launcher", "slurm")
    assert (cfg.launcher, cfg.default_scope) == ("slurm", "trainer")


@pytest.mark.parametrize("dataset, key", [
    ("dict(type='D', data_root='{missing}')", "train_dataloader.dataset.data_root"),
    ("dict(type='D', data_root='{root}', data_prefix=dict(img_path='nope'))",
     "train_dataloader.dataset.data_prefix.img_path"),
    ("dict(type='D', data_root='{root}', data_prefix='nope')", "train_dataloader.dataset.data_prefix"),
    ("dict(type='D', data_root='{root}', ann_file='meta/train.txt')", "train_dataloader.dataset.ann_file"),
    ("dict(type='RepeatDataset', times=2, dataset=dict(type='D', data_root='{missing}'))",
     "train_dataloader.dataset.dataset.data_root"),
    ("dict(type='ConcatDataset', datasets=[dict(type='D'), dict(type='D', data_root='{missing}')])",
     "train_dataloader.dataset.datasets.1.data_root"),
])
def test_missing_dataset_paths_are_named(tmp_path, dataset, key):
    (tmp_path / "root").mkdir()
    dataset = dataset.format(missing=tmp_path / "missing", root=tmp_path / "root")
    cfg = load_config(str(write_config(tmp_path, f"train_dataloader = dict(dataset={dataset})\n")))
    with pytest.raises(TrainerError, match=key.replace(".", r"\.")):
        check_data_paths(cfg)


def test_existing_and_remote_dataset_paths_pass(tmp_path):
    (tmp_path / "root" / "img").mkdir(parents=True)
    body = (f"train_dataloader = dict(dataset=dict(type='D', data_root='{tmp_path}/root', "
            f"data_prefix=dict(img_path='img')))\n"
            "val_dataloader = dict(dataset=dict(type='D', data_root='s3://bucket/x', ann_file='a.txt'))\n"
            f"test_dataloader = dict(dataset=dict(type='D', data_root='{tmp_path}/not/used/for/training'))\n")
    check_data_paths(load_config(str(write_config(tmp_path, body))))


@pytest.mark.parametrize("evaluator, expected", [
    ("dict(type='TinyAccuracy')", dict(type="TinyAccuracy", collect_device="gpu")),
    ("[dict(type='A'), dict(type='B', collect_device='cpu', collect_dir='/shared/tmp')]",
     [dict(type="A", collect_device="gpu"), dict(type="B", collect_device="cpu", collect_dir="/shared/tmp")]),
    ("dict(type='Evaluator', metrics=[dict(type='A', collect_device='cpu')])",
     dict(type="Evaluator", metrics=[dict(type="A", collect_device="cpu")])),
])
def test_distributed_runs_gather_metrics_over_the_process_group(tmp_path, evaluator, expected):
    path = write_config(tmp_path, TINY_CONFIG + f"val_evaluator = {evaluator}\ntest_evaluator = val_evaluator\n")
    cfg = configured(path, "--launcher", "pytorch")
    assert cfg.val_evaluator == expected and cfg.test_evaluator == expected
    assert configured(path).val_evaluator == load_config(str(path)).val_evaluator  # --launcher none
