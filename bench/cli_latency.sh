#!/usr/bin/env bash
# How instant the CLI feels: wall time of `kctl run CONFIG --gpus 2 --dry-run` and of
# `kctl train CONFIG --gpus 8 --nodes 2 --dry-run` (a PyTorchJob, and with --kind TrainJob), each
# divided by the floor of any command that renders through Jinja2, `python -c "import jinja2"`
# (goal: <= 1.3x each), and by the interpreter's own start-up (`python -c pass`).
#
#   bench/cli_latency.sh [RUNS]      (default 21; PYTHON defaults to .venv/bin/python, else python3)
#
# The commands run RUNS times, alternating, so that load from other processes hits all alike;
# the medians are compared. Exits 1 when a ratio is above the goal. Compiled templates are cached
# (~/.cache/kctl/templates) as they are on a user's machine after the first run.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-21}
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
"$PYTHON" - "$RUNS" <<'PY'
import os, statistics, subprocess, sys, time

runs = int(sys.argv[1])
config = "configs/resnet/resnet18_1xb64_digits.py"
commands = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import jinja2": [sys.executable, "-c", "import jinja2"],
    "kctl run --dry-run": [sys.executable, "-m", "kctl", "run", config, "--gpus", "2", "--dry-run"],
    "kctl train --dry-run": [sys.executable, "-m", "kctl", "train", config, "--gpus", "8", "--nodes", "2",
                             "--dry-run"],
    "kctl train TrainJob": [sys.executable, "-m", "kctl", "train", config, "--gpus", "8", "--nodes", "2",
                            "--kind", "TrainJob", "--dry-run"],
}
GOAL = 1.3  # x the import jinja2 floor


# As on a user's machine: bytecode is cached (__pycache__), not compiled on every start.
env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def wall(argv):
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


for argv in commands.values():  # fill the page cache, __pycache__ and the template cache
    wall(argv)
times = {name: [] for name in commands}
for _ in range(runs):
    for name, argv in commands.items():
        times[name].append(wall(argv))
medians = {name: statistics.median(values) for name, values in times.items()}
for name, value in medians.items():
    print(f"{name:22s} median {value * 1000:7.1f} ms over {runs} runs")
floor, start = medians["import jinja2"], medians["python -c pass"]
ratios = {name: medians[name] / floor for name in list(commands)[2:]}
print(f"{'import jinja2':22s} {floor / start:.2f}x python -c pass (the floor of a Jinja2 render)")
for name, ratio in ratios.items():
    print(f"{name:22s} {ratio:.2f}x the floor (goal <= {GOAL}x), {medians[name] / start:.2f}x python -c pass")
sys.exit(0 if max(ratios.values()) <= GOAL else 1)
PY
