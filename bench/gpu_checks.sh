#!/usr/bin/env bash
# What this project measures and checks on one GPU (never in CI): the figures of issue 16, then the
# main job with --amp. One prepared run of about 5 minutes on an H100/H200 (plus the machine's start).
#
#   bash bench/gpu_checks.sh [--device cpu] [OUT_DIR]
#
# OUT_DIR (default: $OUT where set, else /tmp/kctl-gpu-checks) receives gpu_checks.json (every figure,
# see bench/results.py), gpu_checks.txt (this script's whole output, ending with the summary against
# the goals) and one log per step. Steps, each with its own time limit, so that one that fails or hangs
# leaves the others' figures:
#   1. same_settings  trainer (GPU defaults: fused optimizer step, prefetch, non-blocking copies) vs the
#                     plain loop fed the same way with the same settings; GPU utilisation, peak memory,
#                     time to the first iteration (ResNet-50, 224x224, batch 64, fp16 AMP, 8 workers)
#   2. flags          trainer + --channels-last --cudnn-benchmark vs the plain eager NCHW fp16 loop
#   3. decode         JPEG data path: OpenCV in 16 workers vs nvJPEG on the GPU, 224x224 crops
#   4. digits         the main job through `kctl run --gpus 1 -- --amp`: accuracy on the GPU
#   5. compiled       step 2's trainer with --compile: throughput and compile time
# --device cpu runs the same steps but 4 on the CPU, tiny (a 2-stage ResNet at 16x16, a few iterations,
# torch.compile's `eager` backend), in well under a minute: tests/bench/test_gpu_checks.py runs it.
#
# Where mmengine is missing (a bare GPU image), put its wheels in ./.whl first; they are installed
# into /tmp/kctl-site, e.g. (Python 3.12 there):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
#       mmengine-lite==0.10.7 addict termcolor yapf platformdirs
# Step 3 needs torchvision built for the machine's torch (GPU images usually have it).
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda
if [ "${1:-}" = "--device" ]; then
  DEVICE=${2:?--device needs cuda or cpu}
  shift 2
fi
case $DEVICE in cuda|cpu) ;; *) echo "gpu_checks: --device must be cuda or cpu, got '$DEVICE'" >&2; exit 2 ;; esac
OUT_DIR=${1:-${OUT:-/tmp/kctl-gpu-checks}}
mkdir -p "$OUT_DIR" || exit 1
RESULTS=$OUT_DIR/gpu_checks.json
rm -f "$RESULTS"
export PYTHONUNBUFFERED=1

step() {  # step NAME LIMIT COMMAND...: run COMMAND with a time limit, output to NAME.log and here
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  echo "== $name"
  timeout --kill-after 10 "$limit" "$@" 2>&1 | tee "$OUT_DIR/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc after $((SECONDS - start)) s"
  [ "$rc" = 0 ] || status=1
}

main() {
  status=0
  if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/kctl-site .whl/*.whl || return 1
    export PYTHONPATH=/tmp/kctl-site${PYTHONPATH:+:$PYTHONPATH}
  fi

  if [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    SIZE=(--gpu --repeats 1)
    DECODE=(--images 4096 --workers 16)
    COMPILE=()
    LIMIT=(150 90 90 90 150)   # seconds per step: 570 at most, about 300 expected
  else
    export CUDA_VISIBLE_DEVICES=-1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # threads that spin on shared cores crawl
    SIZE=(--device cpu --tiny --image-size 16 --batch-size 8 --iters 20 --warmup 10 --repeats 1)
    DECODE=(--device cpu --images 48 --workers 0 --size 32 --batch-size 16 --warmup 1)
    COMPILE=(--compile-backend eager)
    LIMIT=(120 120 60 0 120)
  fi
  step same_settings "${LIMIT[0]}" python3 bench/trainer_overhead.py "${SIZE[@]}" --plain fused,prefetch \
    --startup-repeats 1 --json "$RESULTS" --label same_settings
  step flags "${LIMIT[1]}" python3 bench/trainer_overhead.py "${SIZE[@]}" \
    --trainer-args="--channels-last --cudnn-benchmark" --startup-repeats 0 --json "$RESULTS" --label flags
  step decode "${LIMIT[2]}" python3 bench/jpeg_decode.py "${DECODE[@]}" --json "$RESULTS"
  if [ "$DEVICE" = cuda ]; then
    WORK=$(mktemp -d /tmp/kctl-gpu-work.XXXXXX)
    step digits "${LIMIT[3]}" python3 -m kctl run configs/resnet/resnet18_1xb64_digits.py --gpus 1 -- --amp \
      --work-dir "$WORK/digits"
    grep -hE "^trainer: (speed|amp)|Epoch\(val\) \[8\]" "$OUT_DIR/digits.log" | grep -v "Epoch(train)" | tail -3
    rm -rf "$WORK"
  fi
  step compiled "${LIMIT[4]}" python3 bench/trainer_overhead.py "${SIZE[@]}" "${COMPILE[@]}" --sides trainer \
    --trainer-args="--channels-last --cudnn-benchmark --compile" --startup-repeats 0 --json "$RESULTS" \
    --label compiled

  echo "== summary ($DEVICE)"
  python3 bench/results.py summary "$RESULTS" || status=1
  return $status
}

main 2>&1 | tee "$OUT_DIR/gpu_checks.txt"
exit "${PIPESTATUS[0]}"
