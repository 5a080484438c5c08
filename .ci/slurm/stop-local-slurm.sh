#!/usr/bin/env bash
# stop-local-slurm.sh - stop exactly the daemons start-local-slurm.sh started
# (pids recorded with their start times in $SLURM_LOCAL_DIR/pids). Cancels the
# cluster's jobs first so no slurmstepd outlives slurmd. Safe to run twice.
# Usage: stop-local-slurm.sh [NAME...]   NAME in slurmd slurmctld munged
#   (default: all three; pass the names start-local-slurm.sh wrote to
#   $SLURM_LOCAL_STARTED to stop only what one start run started)
#   SLURM_LOCAL_DIR         same as for start (default /tmp/slurm-local)
#   SLURM_LOCAL_KEEP_MUNGE  1 = leave munged running (used on restart)
# Adapted for kctl from the project's shared reference script.
set -uo pipefail
DIR=${SLURM_LOCAL_DIR:-/tmp/slurm-local}
log() { echo "[stop-local-slurm] $*" >&2; }
starttime() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null; }
running() { local s; s=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null); [ -n "$s" ] && [ "$s" != Z ]; }

ours() { # ours NAME -> echoes pid if the recorded process is still the one we started
  local f="$DIR/pids/$1.pid" pid st
  [ -s "$f" ] || return 1
  read -r pid st < "$f"
  [ -n "$pid" ] && [ "$(starttime "$pid")" = "$st" ] && running "$pid" && echo "$pid"
}

stop() { # stop NAME... : SIGTERM all of them at once, wait, SIGKILL stragglers
  local n pid i left pids=()
  for n in "$@"; do
    if pid=$(ours "$n"); then kill -TERM "$pid" 2>/dev/null; pids+=("$n:$pid"); fi
    rm -f "$DIR/pids/$n.pid"
  done
  for i in $(seq 150); do
    left=0; for n in "${pids[@]}"; do running "${n#*:}" && left=1; done
    [ $left = 0 ] && break; sleep 0.1
  done
  for n in "${pids[@]}"; do
    if running "${n#*:}"; then log "${n%%:*} (${n#*:}) ignored SIGTERM, sending SIGKILL"; kill -KILL "${n#*:}" 2>/dev/null; fi
    log "stopped ${n%%:*} (pid ${n#*:})"
  done
}

if [ $# -gt 0 ]; then NAMES=" $* "; else NAMES=" slurmd slurmctld munged "; fi
[ "${SLURM_LOCAL_KEEP_MUNGE:-0}" = 1 ] && NAMES=${NAMES/ munged / }
for n in $NAMES; do
  case $n in slurmd|slurmctld|munged) ;; *) log "unknown daemon '$n' (slurmd, slurmctld, munged)"; exit 2 ;; esac
done

if [[ "$NAMES" == *" slurmctld "* || "$NAMES" == *" slurmd "* ]] && ours slurmctld >/dev/null; then
  jobs=$(squeue -h -o '%i' 2>/dev/null || true)
  if [ -n "$jobs" ]; then
    log "cancelling jobs: $(echo $jobs)"
    scancel $jobs 2>/dev/null || true
    for i in $(seq 100); do [ -z "$(squeue -h -o '%i' 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi
ORDER=()   # slurmd before slurmctld before munged, whatever order they were named in
for n in slurmd slurmctld munged; do [[ "$NAMES" == *" $n "* ]] && ORDER+=("$n"); done
[ ${#ORDER[@]} -gt 0 ] && stop "${ORDER[@]}"
exit 0
