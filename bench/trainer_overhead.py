"""Trainer overhead: images/s of ``python -m trainer`` against a plain PyTorch loop, same model and batch.

Both sides run in fresh processes, alternating (trainer, plain, trainer, plain, ...), so drifts of a shared
machine hit both alike. Throughput is measured the same way on both sides, by this parent process: the
arrival times of the log lines at iteration ``--warmup`` and at the last iteration (both sides log every
10 iterations and read the loss there, which waits for the device). The trainer trains the model of one
of the project's configs on ``SyntheticDataset`` (random images made on the fly, ``PackInputs``,
collate, data preprocessor on the device: the trainer's whole data path). The plain loop trains the
same model, fed the same way by default (``--plain-feed loader``: the same DataLoader, built from the
same config, normalised on the device), or from batches held in memory on the device
(``--plain-feed memory``, the plain loop's best case).

Settings: ``--trainer-args`` go to ``python -m trainer`` (e.g. ``--channels-last --cudnn-benchmark``, or
``--cfg-options optim_wrapper.optimizer.fused=False``); ``--plain`` names the plain loop's (``fused``,
``prefetch``, ``channels_last``, ``cudnn_benchmark``, ``compile``; none: the eager NCHW loop with
torch's default optimizer step). On CUDA the trainer's defaults are a fused optimizer step and
prefetching: ``--plain fused,prefetch`` gives the plain loop the same.

Also measured, on CUDA: GPU utilisation (``nvidia-smi``, sampled every 100 ms over the measured
iterations) and peak GPU memory (``torch.cuda.max_memory_allocated``: the trainer logs it every 10
iterations, the plain loop prints it at its end); with ``--startup-repeats``: process start -> first
logged iteration of ``python -m trainer`` (logging every iteration, a 2-iteration run), next to a bare
``python -c "import torch, mmengine.runner"``, and the time of that first iteration itself; with
``--compile``, the trainer's report of its compile time. ``--json FILE --label NAME`` records the figures
(see ``bench/results.py``).

Usage (from the repository root)::

    python bench/trainer_overhead.py                 # CPU: ResNet-18 (small-image variant), 32x32, batch 64
    python bench/trainer_overhead.py --gpu           # CUDA: ResNet-50, 224x224, batch 64, --amp (fp16)
    python bench/trainer_overhead.py --gpu --plain fused,prefetch          # same settings on both sides
    python bench/trainer_overhead.py --help          # every knob
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.results import record  # noqa: E402

LOG_INTERVAL = 10
PLAIN_SETTINGS = ("fused", "prefetch", "channels_last", "cudnn_benchmark", "compile")

CONFIG = """\
_base_ = ['{repo}/configs/_base_/models/{model}.py', '{repo}/configs/_base_/default_runtime.py']
model = dict(head=dict(num_classes={num_classes}))
data_preprocessor = dict(num_classes={num_classes}, mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5],
                         to_rgb=False)
train_dataloader = dict(
    batch_size={batch_size}, num_workers={num_workers}, persistent_workers={persistent}, pin_memory=True,
    collate_fn=dict(type='default_collate'), sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SyntheticDataset', num_samples={num_samples}, image_size={image_size},
                 num_classes={num_classes}, pipeline=[dict(type='PackInputs')]))
train_cfg = dict(by_epoch=True, max_epochs=1)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
default_hooks = dict(logger=dict(type='LoggerHook', interval={log_interval}),
                     checkpoint=dict(type='CheckpointHook', interval=1, save_last=False))
randomness = dict(seed=0)
"""
TINY_MODEL = """\
model['backbone'] = dict(num_stages=2, strides=(1, 2), dilations=(1, 1), out_indices=(1, ), stem_channels=8,
                         base_channels=8)
model['head']['in_channels'] = 16
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--gpu", action="store_true",
                        help="preset: --device cuda --model resnet50 --image-size 224 --amp --num-workers 8 "
                        "--iters 200 --warmup 50 --num-classes 1000")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cpu hides the GPUs (CUDA_VISIBLE_DEVICES=-1)")
    parser.add_argument("--model", default="resnet18_cifar", help="a model config in configs/_base_/models/")
    parser.add_argument("--tiny", action="store_true",
                        help="only 2 stages of the model's ResNet, 8 channels wide (CPU smoke runs)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--iters", type=int, default=40, help="training iterations per run")
    parser.add_argument("--warmup", type=int, default=10, help="iterations not measured (multiple of 10)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per side")
    parser.add_argument("--num-workers", type=int, default=0, help="dataloader workers (both sides)")
    parser.add_argument("--amp", action="store_true", help="mixed precision on both sides (trainer: --amp)")
    parser.add_argument("--trainer-args", default="", help="more arguments of python -m trainer (one string)")
    parser.add_argument("--plain", default="",
                        help=f"plain loop settings, comma-separated: {', '.join(PLAIN_SETTINGS)}")
    parser.add_argument("--plain-feed", choices=["loader", "memory"], default="loader",
                        help="the plain loop's batches: the trainer's DataLoader, or 4 batches on the device")
    parser.add_argument("--sides", default="trainer,plain", help="which sides to run")
    parser.add_argument("--compile-backend", default="inductor",
                        help="torch.compile backend where compiling (trainer --compile, plain 'compile')")
    parser.add_argument("--startup-repeats", type=int, default=3, help="startup measurements of the trainer")
    parser.add_argument("--json", metavar="FILE", help="record the figures in this JSON file (bench/results.py)")
    parser.add_argument("--label", default="overhead", help="the section of --json")
    parser.add_argument("--plain-child", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.gpu:
        args.device, args.model, args.image_size, args.amp = "cuda", "resnet50", 224, True
        args.num_workers, args.iters, args.warmup, args.num_classes = 8, 200, 50, 1000
    if args.warmup % LOG_INTERVAL or args.iters % LOG_INTERVAL or args.iters <= args.warmup:
        parser.error(f"--warmup and --iters must be multiples of {LOG_INTERVAL}, with --iters > --warmup")
    args.plain_settings = {s for s in args.plain.split(",") if s}
    unknown = args.plain_settings - set(PLAIN_SETTINGS)
    if unknown:
        parser.error(f"--plain: unknown setting(s) {', '.join(sorted(unknown))}")
    args.side_list = [s for s in args.sides.split(",") if s]
    if not set(args.side_list) <= {"trainer", "plain"} or not args.side_list:
        parser.error("--sides: trainer, plain or both")
    return args


def plain_loop(config: str, args) -> None:
    """The baseline (runs in a child process): the config's model, SGD, cross-entropy, printing
    ``plain: iter N loss L`` every 10 iterations and, on CUDA, ``plain: peak memory M MiB`` at the end."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    from trainer.performance import to_channels_last
    from trainer.prefetch import prefetch_to_device
    from trainer.registry import MODELS, register_all_modules

    register_all_modules()
    init_default_scope("trainer")
    cfg = Config.fromfile(config)
    settings = args.plain_settings
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = "cudnn_benchmark" in settings
    model = MODELS.build(cfg.model).to(device).train()
    if "channels_last" in settings:
        to_channels_last(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4,
                                **({"fused": True} if "fused" in settings else {}))
    dtype = (torch.float16 if args.device == "cuda" else torch.bfloat16) if args.amp else None
    scaler = torch.amp.GradScaler(args.device, enabled=dtype == torch.float16)
    mean = torch.full((1, 3, 1, 1), 127.5, device=device)

    def batches():
        if args.plain_feed == "memory":
            gen = torch.Generator().manual_seed(0)
            shape = (args.batch_size, 3, args.image_size, args.image_size)
            held = [(torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8).to(device),
                     torch.arange(args.batch_size, device=device) % args.num_classes) for _ in range(4)]
            while True:
                yield from held
        loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
        while True:
            epoch = prefetch_to_device(loader, device) if "prefetch" in settings and args.device == "cuda" else loader
            for batch in epoch:
                labels = torch.cat([s.gt_label for s in batch["data_samples"]])
                yield (batch["inputs"].to(device, non_blocking=True), labels.to(device, non_blocking=True))

    def step(images, labels):
        with torch.autocast(args.device, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(images, mode="tensor").float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss

    if "compile" in settings:
        step = torch.compile(step, backend=args.compile_backend)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"plain: device {name} torch {torch.__version__}", flush=True)
    print(f"plain: amp dtype={dtype or torch.float32} settings={','.join(sorted(settings)) or 'eager'}", flush=True)
    feed = batches()
    for it in range(1, args.iters + 1):
        images, labels = next(feed)
        loss = step((images.float() - mean) / mean, labels)
        if it % LOG_INTERVAL == 0:
            print(f"plain: iter {it} loss {loss.item():.4f}", flush=True)
    if args.device == "cuda":
        print(f"plain: peak memory {torch.cuda.max_memory_allocated(device) // 2**20} MiB", flush=True)


class GpuUtilization:
    """``nvidia-smi``'s GPU utilisation of GPU 0, sampled every 100 ms in the background."""

    def __init__(self):
        self.samples: list = []
        self.proc = subprocess.Popen(["nvidia-smi", "-i", "0", "--query-gpu=utilization.gpu",
                                      "--format=csv,noheader,nounits", "-lms", "100"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.samples.append((time.perf_counter(), float(line.strip())))
            except ValueError:
                continue

    def mean(self, start: float, end: float) -> float | None:
        """Mean utilisation (%) of the samples taken between ``start`` and ``end`` (perf_counter)."""
        values = [value for when, value in list(self.samples) if start <= when <= end]
        return statistics.fmean(values) if values else None

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def timed_lines(command, env, markers):
    """Run ``command``; return ``{marker: perf_counter time}`` of the first line containing each marker,
    the start time, and the output."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen, output = {}, []
    for line in proc.stdout:
        output.append(line)
        for marker in markers:
            if marker not in seen and marker in line:
                seen[marker] = time.perf_counter()
    if proc.wait() != 0:
        sys.exit(f"bench: {' '.join(map(str, command))} failed:\n{''.join(output[-30:])}")
    missing = [m for m in markers if m not in seen]
    if missing:
        sys.exit(f"bench: no line with {missing} from {' '.join(map(str, command))}:\n{''.join(output[-30:])}")
    return seen, start, "".join(output)


def trainer_marker(it: int, iters: int) -> str:
    width = len(str(iters))
    return f"Epoch(train) [1][{it:>{width}}/{iters}]"


def peak_memory(side: str, output: str) -> int | None:
    """Peak GPU memory (MiB) of a run: the largest ``memory`` of the trainer's log lines (mmengine logs the
    peak since the previous line), or the plain loop's own line."""
    pattern = r"\bmemory: (\d+)" if side == "trainer" else r"plain: peak memory (\d+) MiB"
    values = [int(m) for m in re.findall(pattern, output)]
    return max(values) if values else None


def compile_report(output: str) -> dict:
    """The trainer's ``trainer: compile: ...`` line as figures."""
    line = next((ln for ln in output.splitlines() if ln.startswith("trainer: compile: ")), "")
    times = [float(t) for t in re.findall(r"([\d.]+) s", line.split(";")[0])]
    total = re.search(r"compiled for ([\d.]+) s", line)
    return dict(first_iterations_s=times, compile_s=float(total.group(1)) if total else None)


def write_config(args, tmp: Path) -> Path:
    config = tmp / "bench.py"
    text = CONFIG.format(
        repo=REPO, model=args.model, num_classes=args.num_classes, batch_size=args.batch_size,
        num_workers=args.num_workers, persistent=args.num_workers > 0, num_samples=args.batch_size * args.iters,
        image_size=args.image_size, log_interval=LOG_INTERVAL)
    if args.tiny:
        text += TINY_MODEL
    if args.compile_backend != "inductor":  # --compile keeps a dict of options
        text += f"compile = dict(backend={args.compile_backend!r})\n"
    config.write_text(text)
    return config


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.plain_child:
        plain_loop(args.plain_child, args)
        return 0
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = "-1"
    tmp = Path(tempfile.mkdtemp(prefix="trainer_overhead_"))
    config = write_config(args, tmp)
    trainer = [sys.executable, "-m", "trainer", str(config), "--no-validate", *(["--amp"] if args.amp else []),
               *shlex.split(args.trainer_args)]
    plain = [sys.executable, __file__, "--plain-child", str(config), *(argv if argv is not None else sys.argv[1:])]
    images = args.batch_size * (args.iters - args.warmup)
    print(f"bench: {args.model} {args.image_size}x{args.image_size} batch {args.batch_size} on {args.device}"
          f"{' amp' if args.amp else ''}, {args.num_workers} workers; {args.iters} iterations per run, the first "
          f"{args.warmup} not measured; {args.repeats} runs per side, alternating; trainer "
          f"{' '.join(trainer[4:]) or '(defaults)'}; plain loop fed from {args.plain_feed}, "
          f"{args.plain or 'eager'}", flush=True)

    utilization = GpuUtilization() if args.device == "cuda" and shutil.which("nvidia-smi") else None
    rates = {side: [] for side in args.side_list}
    util = {side: [] for side in args.side_list}
    memory = {side: [] for side in args.side_list}
    details: dict = {}
    for run in range(args.repeats):
        for side in args.side_list:
            if side == "trainer":
                first, last = trainer_marker(args.warmup, args.iters), trainer_marker(args.iters, args.iters)
                command = [*trainer, "--work-dir", str(tmp / f"wd{run}")]
            else:
                first, last = f"plain: iter {args.warmup} ", f"plain: iter {args.iters} "
                command = plain
            seen, _, output = timed_lines(command, env, [first, last])
            rates[side].append(images / (seen[last] - seen[first]))
            if utilization:
                util[side].append(utilization.mean(seen[first], seen[last]))
            memory[side].append(peak_memory(side, output))
            if side == "plain":
                device, torch_version = re.search(r"plain: device (.+) torch (\S+)", output).groups()
                record(args.json, "environment", dict(device=device, torch=torch_version))
            if side == "trainer":
                details["speed_line"] = next((ln for ln in output.splitlines() if ln.startswith("trainer: speed")), "")
                if "--compile" in trainer:
                    details["compile"] = compile_report(output)
            dtype = next(line for line in output.splitlines() if "amp dtype=" in line).split("amp dtype=")[1]
            extra = (f", GPU {util[side][-1]:.0f} %" if utilization and util[side][-1] is not None else "") + (
                f", peak {memory[side][-1]} MiB" if memory[side][-1] is not None else "")
            print(f"  run {run + 1} {side:<7} {rates[side][-1]:8.1f} img/s  (dtype {dtype}{extra})", flush=True)
    if utilization:
        utilization.stop()
    if details.get("speed_line"):
        print(f"  {details['speed_line']}", flush=True)
    if details.get("compile"):
        print(f"  trainer compile: {details['compile']}", flush=True)
    result = dict(trainer_args=shlex.split(args.trainer_args), plain=args.plain or "eager", plain_feed=args.plain_feed,
                  device=args.device, model=args.model, image_size=args.image_size, batch_size=args.batch_size,
                  amp=args.amp, **details)
    for side in args.side_list:
        result[f"{side}_img_s"] = statistics.median(rates[side])
        result[f"{side}_runs_img_s"] = rates[side]
    result["gpu_utilization_pct"] = {s: _median(v) for s, v in util.items()} if utilization else None
    result["peak_memory_mib"] = {s: _median(v) for s, v in memory.items()} if args.device == "cuda" else None
    if len(args.side_list) == 2:
        for name, pick in (("medians", statistics.median), ("best runs", max)):
            trainer_rate, plain_rate = pick(rates["trainer"]), pick(rates["plain"])
            print(f"throughput ({name}): trainer {trainer_rate:.1f} img/s, plain loop {plain_rate:.1f} img/s, "
                  f"ratio trainer/plain = {trainer_rate / plain_rate:.3f}", flush=True)
        pairs = [t / p for t, p in zip(rates["trainer"], rates["plain"])]
        print(f"ratio per pair: {', '.join(f'{r:.3f}' for r in pairs)}", flush=True)
        result["ratio"] = result["trainer_img_s"] / result["plain_img_s"]
    else:
        print(f"throughput (median): {args.side_list[0]} {statistics.median(rates[args.side_list[0]]):.1f} img/s",
              flush=True)

    if args.startup_repeats:
        result["startup"] = measure_startup(args, trainer, env, tmp)
    record(args.json, args.label, result)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def measure_startup(args, trainer, env, tmp: Path) -> dict:
    """Process start -> first logged iteration of the trainer (logging every iteration), the bare import,
    and the first iteration's own time; medians of ``--startup-repeats``."""
    startup, first_iter, imports = [], [], []
    quick = [*trainer, "--cfg-options", "default_hooks.logger.interval=1",
             f"train_dataloader.dataset.num_samples={2 * args.batch_size}"]
    for run in range(args.startup_repeats):
        seen, start, output = timed_lines([*quick, "--work-dir", str(tmp / f"startup{run}")], env, ["Epoch(train)"])
        startup.append(seen["Epoch(train)"] - start)
        line = next(line for line in output.splitlines() if "Epoch(train)" in line)
        first_iter.append(float(line.split("  time: ")[1].split()[0]))  # IterTimerHook: the iteration itself
        begin = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch, mmengine.runner"], env=env, check=True)
        imports.append(time.perf_counter() - begin)
    figures = dict(first_iteration_s=statistics.median(startup), bare_import_s=statistics.median(imports),
                   first_iteration_itself_s=statistics.median(first_iter))
    print(f"startup: process start -> first logged iteration {figures['first_iteration_s']:.2f} s; "
          f"bare `import torch, mmengine.runner` {figures['bare_import_s']:.2f} s; "
          f"difference {figures['first_iteration_s'] - figures['bare_import_s']:.2f} s, of which the first "
          f"iteration itself {figures['first_iteration_itself_s']:.2f} s (medians of {args.startup_repeats})",
          flush=True)
    return figures


if __name__ == "__main__":
    sys.exit(main())
