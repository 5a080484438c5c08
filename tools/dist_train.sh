#!/usr/bin/env bash
# MMPretrain's tools/dist_train.sh, same interface and environment:
#
#   [NNODES=1] [NODE_RANK=0] [PORT=29500] [MASTER_ADDR=127.0.0.1] \
#     bash tools/dist_train.sh CONFIG GPU_NUM [PY_ARGS...]
#
# It runs `kctl run CONFIG --gpus GPU_NUM -- PY_ARGS`: torchrun (instead of the seed's deprecated
# torch.distributed.launch) starts GPU_NUM ranks of `python -m trainer CONFIG --launcher pytorch
# --resume PY_ARGS`. kctl reads the variables above as the seed did, with two differences: on one
# node without PORT, torchrun picks a free port (--standalone), so jobs side by side never clash;
# and with NNODES > 1, every node but NODE_RANK=0 must set MASTER_ADDR. Where no GPU is visible,
# GPU_NUM CPU processes train with gloo. Ctrl-C stops every rank; the exit status is the failing
# rank's. See `kctl run --help`.
#
# Besides the seed's variables: PYTHON (default python) is the interpreter that runs kctl, torchrun
# and the ranks; KCTL_DRY_RUN=1 prints the torchrun command instead of running it.
if [ $# -lt 2 ]; then
  echo "usage: [NNODES=1] [NODE_RANK=0] [PORT=29500] [MASTER_ADDR=127.0.0.1]" \
    "$0 CONFIG GPU_NUM [PY_ARGS...]" >&2
  exit 2
fi
CONFIG=$1
GPUS=$2
PYTHON=${PYTHON:-python}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DRY_RUN=
case ${KCTL_DRY_RUN:-0} in 0) ;; *) DRY_RUN=--dry-run ;; esac

PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
exec "$PYTHON" -m kctl run "$CONFIG" --gpus "$GPUS" $DRY_RUN -- "${@:3}"
