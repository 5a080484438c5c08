"""The trainer on an MMPretrain config against mmengine's own ``Runner.from_cfg(cfg).train()``, same config and data.

Run it with the Python of an environment that has the ``[mmpretrain]`` extra (docs/mmpretrain.md). Both
sides train MMPretrain's own config from the installed package, unchanged but for the same
``--cfg-options`` (data root, batch size, workers, one epoch of ``--iters`` iterations, log every 10,
seed 0), on a generated ImageNet in its native layout (``meta/train.txt`` lists ``--images`` JPEGs over
and over). They run in fresh processes, alternating (trainer, mmengine, trainer, ...), and throughput is
measured the same way on both, by this parent process: the arrival times of the log lines at iteration
``--warmup`` and at the last iteration (see ``bench/trainer_overhead.py``, whose ``timed_lines`` this
reuses). The mmengine side is what MMPretrain's own ``tools/train.py`` does.

Also measured: process start -> first logged iteration of ``python -m trainer`` on the config (logging
every iteration), next to a bare ``import mmpretrain`` + registering its modules, and the time of that
first iteration itself (its ``time`` in the log).

Usage::

    PY=~/.cache/kctl-tests/mmpretrain-venv/*/bin/python    # or your own venv with the extra
    $PY bench/mmpretrain_overhead.py          # CPU: resnet/resnet18_8xb32_in1k.py at 224x224, batch 8
    $PY bench/mmpretrain_overhead.py --gpu    # CUDA: resnet/resnet50_8xb32_in1k.py, batch 32, --amp both sides
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from tests.support.mmpretrain_job import write_imagenet  # noqa: E402
from trainer_overhead import LOG_INTERVAL, timed_lines, trainer_marker  # noqa: E402

#: What mmengine's side runs in its child process: MMPretrain's tools/train.py, reduced to what it does here.
MMENGINE_TRAIN = """\
import sys
from mmengine.config import Config, DictAction
from mmengine.runner import Runner
config, work_dir, amp, options = sys.argv[1], sys.argv[2], sys.argv[3] == "amp", sys.argv[4:]
cfg = Config.fromfile(config)
for field in ("train_dataloader", "val_dataloader", "test_dataloader"):  # tools/train.py's dataloader defaults
    cfg[field] = dict(pin_memory=True, persistent_workers=True, collate_fn=dict(type="default_collate"), **cfg[field])
cfg.merge_from_dict({k: DictAction._parse_iterable(v) for k, v in (o.split("=", 1) for o in options)})
cfg.work_dir, cfg.launcher = work_dir, "none"
cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # tools/train.py --no-validate, as the trainer's side
if amp:
    cfg.optim_wrapper.type, cfg.optim_wrapper.loss_scale = "AmpOptimWrapper", "dynamic"
Runner.from_cfg(cfg).train()
"""
REGISTER = "import mmpretrain; from mmpretrain.utils import register_all_modules; register_all_modules()"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--gpu", action="store_true",
                        help="preset: --device cuda --config resnet/resnet50_8xb32_in1k.py --batch-size 32 --amp "
                        "--num-workers 8 --iters 300 --warmup 50")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cpu hides the GPUs (CUDA_VISIBLE_DEVICES=-1)")
    parser.add_argument("--config", default="resnet/resnet18_8xb32_in1k.py", help="in MMPretrain's config tree")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--iters", type=int, default=40, help="training iterations per run")
    parser.add_argument("--warmup", type=int, default=10, help="iterations not measured (multiple of 10)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per side")
    parser.add_argument("--num-workers", type=int, default=0, help="dataloader workers, both sides")
    parser.add_argument("--images", type=int, default=64, help="distinct JPEGs generated (listed again and again)")
    parser.add_argument("--amp", action="store_true", help="mixed precision on both sides (trainer: --amp)")
    parser.add_argument("--startup-repeats", type=int, default=3, help="startup measurements per side")
    args = parser.parse_args(argv)
    if args.gpu:
        args.device, args.config, args.batch_size, args.amp = "cuda", "resnet/resnet50_8xb32_in1k.py", 32, True
        args.num_workers, args.iters, args.warmup = 8, 300, 50
    if args.warmup % LOG_INTERVAL or args.iters % LOG_INTERVAL or args.iters <= args.warmup:
        parser.error(f"--warmup and --iters must be multiples of {LOG_INTERVAL}, with --iters > --warmup")
    return args


def write_data(root: Path, samples: int, images: int) -> Path:
    """A generated ImageNet whose ``meta/train.txt`` lists its ``images`` training JPEGs until it has
    ``samples`` lines."""
    write_imagenet(root, train_per_class=images // 2, val_per_class=1)
    listed = (root / "meta" / "train.txt").read_text().splitlines()
    (root / "meta" / "train.txt").write_text("\n".join(listed[i % len(listed)] for i in range(samples)) + "\n")
    return root


def main(argv=None) -> int:
    args = parse_args(argv)
    import mmpretrain

    configs = Path(mmpretrain.__file__).parent / ".mim" / "configs"
    config = configs / args.config
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = "-1"
    tmp = Path(tempfile.mkdtemp(prefix="mmpretrain_overhead_"))
    data = write_data(tmp / "imagenet", args.batch_size * args.iters, args.images)
    options = [f"train_dataloader.dataset.data_root={data}", f"train_dataloader.batch_size={args.batch_size}",
               f"train_dataloader.num_workers={args.num_workers}", "train_cfg.max_epochs=1", "randomness.seed=0",
               f"default_hooks.logger.interval={LOG_INTERVAL}"]
    if not args.num_workers:  # DataLoader refuses persistent workers without workers
        options.append("train_dataloader.persistent_workers=False")
    trainer = [sys.executable, "-m", "trainer", str(config), "--no-validate", *(["--amp"] if args.amp else []),
               "--cfg-options", *options]
    mmengine = [sys.executable, "-c", MMENGINE_TRAIN, str(config)]
    images = args.batch_size * (args.iters - args.warmup)
    print(f"bench: MMPretrain's {args.config} at 224x224, batch {args.batch_size}, {args.num_workers} workers, on "
          f"{args.device}{' amp' if args.amp else ''}; {args.iters} iterations per run, the first {args.warmup} not "
          f"measured; {args.repeats} runs per side, alternating; mmpretrain {mmpretrain.__version__}", flush=True)

    first, last = trainer_marker(args.warmup, args.iters), trainer_marker(args.iters, args.iters)
    rates = {"trainer": [], "mmengine": []}
    for run in range(args.repeats):
        for side in rates:
            work_dir = str(tmp / f"{side}{run}")
            command = ([*trainer, "--work-dir", work_dir] if side == "trainer" else
                       [*mmengine, work_dir, "amp" if args.amp else "fp32", *options])
            seen, _, _ = timed_lines(command, env, [first, last])
            rates[side].append(images / (seen[last] - seen[first]))
            print(f"  run {run + 1} {side:<8} {rates[side][-1]:8.1f} img/s", flush=True)
    for name, pick in (("medians", statistics.median), ("best runs", max)):
        ours, theirs = pick(rates["trainer"]), pick(rates["mmengine"])
        print(f"throughput ({name}): trainer {ours:.1f} img/s, mmengine Runner {theirs:.1f} img/s, "
              f"ratio trainer/mmengine = {ours / theirs:.3f}", flush=True)
    pairs = [t / m for t, m in zip(rates["trainer"], rates["mmengine"])]
    print(f"ratio per pair: {', '.join(f'{r:.3f}' for r in pairs)}", flush=True)

    # both timed alike, by timed_lines: process start -> a line (the first logged iteration; "imported")
    quick = [*trainer, "default_hooks.logger.interval=1", f"train_dataloader.dataset.indices={2 * args.batch_size}"]
    bare = [sys.executable, "-W", "ignore", "-c", REGISTER + "; print('imported', flush=True)"]
    startup, first_iter, imports = [], [], []
    for run in range(args.startup_repeats):
        seen, start, output = timed_lines([*quick, "--work-dir", str(tmp / f"startup{run}")], env, ["Epoch(train)"])
        startup.append(seen["Epoch(train)"] - start)
        first_iter.append(float(output.split("Epoch(train)", 1)[1].split("  time: ")[1].split()[0]))  # IterTimerHook
        seen, start, _ = timed_lines(bare, env, ["imported"])
        imports.append(seen["imported"] - start)
    print(f"startup: process start -> first logged iteration {statistics.median(startup):.2f} s; bare `import "
          f"mmpretrain` + register_all_modules() {statistics.median(imports):.2f} s; difference "
          f"{statistics.median(startup) - statistics.median(imports):.2f} s, of which the first iteration itself "
          f"{statistics.median(first_iter):.2f} s (medians of {args.startup_repeats})", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
