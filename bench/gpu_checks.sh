#!/usr/bin/env bash
# What this project checks on a GPU (never in CI, never a test): the main job on one GPU through
# `kctl run` (torchrun, nccl) with fp16 AMP, an exact resume on the GPU, and
# `bench/trainer_overhead.py --gpu` (ResNet-50 at 224x224, batch 64, --amp). Its output gives the
# GPU figures in the README's "Performance" section.
#
#   bench/gpu_checks.sh [LOG_DIR]      (default /tmp/kctl-gpu-checks; needs python3 with a CUDA torch)
#
# Where mmengine is missing (a bare GPU image), put its wheels in ./.whl first; they are installed
# into /tmp/kctl-site, e.g. (Python 3.12 there):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
#       mmengine-lite==0.10.7 addict termcolor yapf platformdirs
set -uo pipefail
cd "$(dirname "$0")/.."
LOGS=${1:-/tmp/kctl-gpu-checks}
WORK=$(mktemp -d /tmp/kctl-gpu-work.XXXXXX)
mkdir -p "$LOGS"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/kctl-site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/kctl-site${PYTHONPATH:+:$PYTHONPATH}
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import sys, torch, mmengine; print("python", sys.version.split()[0], "torch", torch.__version__,
  "mmengine", mmengine.__version__, "gpu", torch.cuda.get_device_name(0), "nccl", torch.cuda.nccl.version())'

echo "== 1. main job on one GPU: kctl run --gpus 1 -- --amp"
start=$SECONDS
python3 -m kctl run configs/resnet/resnet18_1xb64_digits.py --gpus 1 -- --amp --work-dir "$WORK/digits" \
  >"$LOGS/digits_gpu.log" 2>&1
echo "exit $? after $((SECONDS - start)) s"
grep -E "^trainer:|Epoch\(val\) \[8\]|loss_scale" "$LOGS/digits_gpu.log" | grep -vE "Epoch\(train\)" | tail -6
grep -m1 -oE "Epoch\(train\) +\[1\]\[ *10/[0-9]+\].*" "$LOGS/digits_gpu.log"

echo "== 2. resume on the GPU: one more epoch from the last checkpoint"
python3 -m kctl run configs/resnet/resnet18_1xb64_digits.py --gpus 1 -- --amp --work-dir "$WORK/digits" \
  --resume --cfg-options train_cfg.max_epochs=9 >"$LOGS/digits_gpu_resume.log" 2>&1
echo "exit $?"
grep -E "^trainer: (resumed|amp)|Epoch\(val\) \[9\]" "$LOGS/digits_gpu_resume.log" | tail -3

echo "== 3. trainer overhead, GPU preset"
python3 bench/trainer_overhead.py --gpu --repeats 2 --startup-repeats 2 2>&1 | tee "$LOGS/trainer_overhead_gpu.log"
rm -rf "$WORK"
