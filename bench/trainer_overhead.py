"""Trainer overhead: images/s of ``python -m trainer`` against a plain PyTorch loop, same model and batch.

Both sides run in fresh processes, alternating (trainer, plain, trainer, plain, ...), so drifts of a shared
machine hit both alike. Throughput is measured the same way on both sides, by this parent process: the
arrival times of the log lines at iteration ``--warmup`` and at the last iteration (both sides log every
10 iterations and read the loss there, which waits for the device). The trainer trains the model of one
of the project's configs on ``SyntheticDataset`` (random images made on the fly, ``PackInputs``,
collate, data preprocessor on the device: the trainer's whole data path), the plain loop the same model
on batches held in memory, already normalised on the device (the plain loop's best case).

Also measured: process start -> first logged iteration of ``python -m trainer`` (logging every
iteration, a 2-iteration run), next to a bare ``python -c "import torch, mmengine.runner"``, and the time
of that first iteration itself (its ``time`` in the log).

Usage (from the repository root)::

    python bench/trainer_overhead.py                 # CPU: ResNet-18 (small-image variant), 32x32, batch 64
    python bench/trainer_overhead.py --gpu           # CUDA: ResNet-50, 224x224, batch 64, --amp (fp16)
    python bench/trainer_overhead.py --help          # every knob
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOG_INTERVAL = 10

CONFIG = """\
_base_ = ['{repo}/configs/_base_/models/{model}.py', '{repo}/configs/_base_/default_runtime.py']
model = dict(head=dict(num_classes={num_classes}))
data_preprocessor = dict(num_classes={num_classes}, mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5],
                         to_rgb=False)
train_dataloader = dict(
    batch_size={batch_size}, num_workers={num_workers}, persistent_workers={persistent},
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SyntheticDataset', num_samples={num_samples}, image_size={image_size},
                 num_classes={num_classes}, pipeline=[dict(type='PackInputs')]))
train_cfg = dict(by_epoch=True, max_epochs=1)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
default_hooks = dict(logger=dict(type='LoggerHook', interval={log_interval}),
                     checkpoint=dict(type='CheckpointHook', interval=1, save_last=False))
randomness = dict(seed=0)
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--gpu", action="store_true",
                        help="preset: --device cuda --model resnet50 --image-size 224 --amp --num-workers 8 "
                        "--iters 300 --warmup 50 --num-classes 1000")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cpu hides the GPUs (CUDA_VISIBLE_DEVICES=-1)")
    parser.add_argument("--model", default="resnet18_cifar", help="a model config in configs/_base_/models/")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--iters", type=int, default=40, help="training iterations per run")
    parser.add_argument("--warmup", type=int, default=10, help="iterations not measured (multiple of 10)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per side")
    parser.add_argument("--num-workers", type=int, default=0, help="trainer dataloader workers")
    parser.add_argument("--amp", action="store_true", help="mixed precision on both sides (trainer: --amp)")
    parser.add_argument("--startup-repeats", type=int, default=3, help="startup measurements per side")
    parser.add_argument("--plain-child", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.gpu:
        args.device, args.model, args.image_size, args.amp = "cuda", "resnet50", 224, True
        args.num_workers, args.iters, args.warmup, args.num_classes = 8, 300, 50, 1000
    if args.warmup % LOG_INTERVAL or args.iters % LOG_INTERVAL or args.iters <= args.warmup:
        parser.error(f"--warmup and --iters must be multiples of {LOG_INTERVAL}, with --iters > --warmup")
    return args


def plain_loop(config: str, args) -> None:
    """The baseline (runs in a child process): the config's model, in-memory batches, SGD, printing
    ``plain: iter N loss L`` every 10 iterations."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from trainer.registry import MODELS, register_all_modules

    register_all_modules()
    init_default_scope("trainer")
    cfg = Config.fromfile(config)
    device = torch.device(args.device)
    model = MODELS.build(cfg.model).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(0)
    shape = (args.batch_size, 3, args.image_size, args.image_size)
    batches = [((torch.randint(0, 256, shape, generator=gen).float() - 127.5) / 127.5).to(device) for _ in range(4)]
    labels = torch.arange(args.batch_size, device=device) % args.num_classes
    dtype = (torch.float16 if args.device == "cuda" else torch.bfloat16) if args.amp else None
    scaler = torch.amp.GradScaler(args.device, enabled=dtype == torch.float16)
    print(f"plain: amp dtype={dtype or torch.float32}", flush=True)
    for it in range(1, args.iters + 1):
        with torch.autocast(args.device, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(batches[it % 4], mode="tensor").float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if it % LOG_INTERVAL == 0:
            print(f"plain: iter {it} loss {loss.item():.4f}", flush=True)


def timed_lines(command, env, markers):
    """Run ``command``; return ``{marker: seconds after start}`` for the first line containing each
    marker, and the output."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen, output = {}, []
    for line in proc.stdout:
        output.append(line)
        for marker in markers:
            if marker not in seen and marker in line:
                seen[marker] = time.perf_counter() - start
    if proc.wait() != 0:
        sys.exit(f"bench: {' '.join(map(str, command))} failed:\n{''.join(output[-30:])}")
    missing = [m for m in markers if m not in seen]
    if missing:
        sys.exit(f"bench: no line with {missing} from {' '.join(map(str, command))}:\n{''.join(output[-30:])}")
    return seen, "".join(output)


def trainer_marker(it: int, iters: int) -> str:
    width = len(str(iters))
    return f"Epoch(train) [1][{it:>{width}}/{iters}]"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.plain_child:
        plain_loop(args.plain_child, args)
        return 0
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = "-1"
    tmp = Path(tempfile.mkdtemp(prefix="trainer_overhead_"))
    config = tmp / "bench.py"
    config.write_text(CONFIG.format(
        repo=REPO, model=args.model, num_classes=args.num_classes, batch_size=args.batch_size,
        num_workers=args.num_workers, persistent=args.num_workers > 0, num_samples=args.batch_size * args.iters,
        image_size=args.image_size, log_interval=LOG_INTERVAL))
    amp = ["--amp"] if args.amp else []
    trainer = [sys.executable, "-m", "trainer", str(config), "--no-validate", *amp]
    plain = [sys.executable, __file__, "--plain-child", str(config), *(argv if argv is not None else sys.argv[1:])]
    images = args.batch_size * (args.iters - args.warmup)
    print(f"bench: {args.model} {args.image_size}x{args.image_size} batch {args.batch_size} on {args.device}"
          f"{' amp' if args.amp else ''}; {args.iters} iterations per run, the first {args.warmup} not measured; "
          f"{args.repeats} runs per side, alternating", flush=True)

    rates = {"trainer": [], "plain": []}
    for run in range(args.repeats):
        for side in ("trainer", "plain"):
            if side == "trainer":
                first, last = trainer_marker(args.warmup, args.iters), trainer_marker(args.iters, args.iters)
                command = [*trainer, "--work-dir", str(tmp / f"wd{run}")]
            else:
                first, last = f"plain: iter {args.warmup} ", f"plain: iter {args.iters} "
                command = plain
            seen, output = timed_lines(command, env, [first, last])
            rates[side].append(images / (seen[last] - seen[first]))
            dtype = [line for line in output.splitlines() if "amp dtype=" in line][0].split("amp dtype=")[1]
            print(f"  run {run + 1} {side:<7} {rates[side][-1]:8.1f} img/s  (dtype {dtype})", flush=True)
    for name, pick in (("medians", statistics.median), ("best runs", max)):
        trainer_rate, plain_rate = pick(rates["trainer"]), pick(rates["plain"])
        print(f"throughput ({name}): trainer {trainer_rate:.1f} img/s, plain loop {plain_rate:.1f} img/s, "
              f"ratio trainer/plain = {trainer_rate / plain_rate:.3f}", flush=True)
    pairs = [t / p for t, p in zip(rates["trainer"], rates["plain"])]
    print(f"ratio per pair: {', '.join(f'{r:.3f}' for r in pairs)}", flush=True)

    startup, first_iter, imports = [], [], []
    quick = [*trainer, "--cfg-options", "default_hooks.logger.interval=1",
             f"train_dataloader.dataset.num_samples={2 * args.batch_size}"]
    for run in range(args.startup_repeats):
        seen, output = timed_lines([*quick, "--work-dir", str(tmp / f"startup{run}")], env, ["Epoch(train)"])
        startup.append(seen["Epoch(train)"])
        line = next(line for line in output.splitlines() if "Epoch(train)" in line)
        first_iter.append(float(line.split("  time: ")[1].split()[0]))  # IterTimerHook: the iteration itself
        begin = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch, mmengine.runner"], env=env, check=True)
        imports.append(time.perf_counter() - begin)
    print(f"startup: process start -> first logged iteration {statistics.median(startup):.2f} s; "
          f"bare `import torch, mmengine.runner` {statistics.median(imports):.2f} s; "
          f"difference {statistics.median(startup) - statistics.median(imports):.2f} s, of which the first "
          f"iteration itself {statistics.median(first_iter):.2f} s (medians of {args.startup_repeats})", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
