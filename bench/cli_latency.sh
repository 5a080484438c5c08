#!/usr/bin/env bash
# How instant the CLI feels: wall time of `kctl run CONFIG --gpus 2 --dry-run` divided by the
# interpreter's own start-up (`python -c pass`). Goal: <= 3x.
#
#   bench/cli_latency.sh [RUNS]      (default 21; PYTHON defaults to .venv/bin/python, else python3)
#
# Both commands run RUNS times, alternating, so that load from other processes hits both alike;
# the medians are compared. Exits 1 when the ratio is above the goal.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-21}
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
"$PYTHON" - "$RUNS" <<'PY'
import os, statistics, subprocess, sys, time

runs = int(sys.argv[1])
baseline = [sys.executable, "-c", "pass"]
dry_run = [sys.executable, "-m", "kctl", "run", "configs/resnet/resnet18_1xb64_digits.py",
           "--gpus", "2", "--dry-run"]


# As on a user's machine: bytecode is cached (__pycache__), not compiled on every start.
env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def wall(argv):
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


wall(dry_run)  # fill the page cache and __pycache__
times = {"python -c pass": [], "kctl run --dry-run": []}
for _ in range(runs):
    times["python -c pass"].append(wall(baseline))
    times["kctl run --dry-run"].append(wall(dry_run))
medians = {name: statistics.median(values) for name, values in times.items()}
for name, value in medians.items():
    print(f"{name:20s} median {value * 1000:7.1f} ms over {runs} runs")
ratio = medians["kctl run --dry-run"] / medians["python -c pass"]
print(f"ratio {ratio:.2f}x (goal <= 3x)")
sys.exit(0 if ratio <= 3 else 1)
PY
