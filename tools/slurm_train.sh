#!/usr/bin/env bash
# MMPretrain's tools/slurm_train.sh, same interface and environment:
#
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=""] \
#     tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [PY_ARGS...]
#
# The job is rendered by `kctl slurm-script` (the one Slurm renderer; it checks everything before
# anything is queued) and submitted with sbatch. Like the seed's srun, this script then blocks
# until the job ends: it streams the job's output (WORK_DIR/slurm-<jobid>.out) to stdout, exits
# with the job's exit status, and Ctrl-C (SIGINT/SIGTERM) cancels the job.
# Unlike the seed's srun, the job is a batch job: it survives a lost login session, and Slurm may
# requeue it (the trainer always runs with --resume).
#
# Besides the seed's variables: PYTHON (default python) is the interpreter that runs kctl here and
# the trainer on the compute nodes; NTASKS (default 1) is the number of CPU tasks when GPUS=0;
# PORT fixes MASTER_PORT. See `kctl slurm-script --help`.
set -euo pipefail

if [ $# -lt 4 ]; then
  echo "usage: [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=\"\"] $0 PARTITION JOB_NAME CONFIG WORK_DIR [PY_ARGS...]" >&2
  exit 2
fi
PYTHON=${PYTHON:-python}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
case $4 in /*) WORK_DIR=$4 ;; *) WORK_DIR=$PWD/$4 ;; esac

JOB_ID=$(PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m kctl slurm-script \
  --submit --python "$PYTHON" "$@")
LOG=$WORK_DIR/slurm-$JOB_ID.out
echo "slurm_train.sh: submitted job $JOB_ID, output in $LOG" >&2
trap 'scancel "$JOB_ID" 2>/dev/null || true; echo "slurm_train.sh: cancelled job $JOB_ID" >&2; exit 130' INT TERM

offset=0
flush() { # print what the job wrote to $LOG since the last call
  local size
  size=$(stat -c %s "$LOG" 2>/dev/null) || return 0
  [ "$size" -lt "$offset" ] && offset=0   # a requeued job starts its log afresh
  if [ "$size" -gt "$offset" ]; then
    tail -c +"$((offset + 1))" "$LOG" | head -c "$((size - offset))" || true
    offset=$size
  fi
}

failures=0
while :; do
  if info=$(scontrol show job -o "$JOB_ID" 2>/dev/null); then
    failures=0
    state=$(grep -o 'JobState=[^ ]*' <<<"$info" | cut -d= -f2)
  else
    failures=$((failures + 1))
    if [ $failures -ge 30 ]; then
      echo "slurm_train.sh: cannot read the state of job $JOB_ID from scontrol" >&2
      exit 1
    fi
    state=UNKNOWN
  fi
  flush
  case $state in
    PENDING|CONFIGURING|RUNNING|COMPLETING|SUSPENDED|REQUEUED|REQUEUE_FED|REQUEUE_HOLD|RESIZING|SIGNALING|STAGE_OUT|STOPPED|UNKNOWN)
      sleep 1 ;;
    *) break ;;
  esac
done
flush

[ "$state" = COMPLETED ] && exit 0
code=$(grep -o 'ExitCode=[0-9]*:[0-9]*' <<<"$info" | cut -d= -f2)
echo "slurm_train.sh: job $JOB_ID ended $state (ExitCode=${code:-?})" >&2
status=${code%%:*} signal=${code##*:}
if [ "${status:-0}" -gt 0 ]; then exit "$status"; fi
if [ "${signal:-0}" -gt 0 ]; then exit $((128 + signal)); fi
exit 1
