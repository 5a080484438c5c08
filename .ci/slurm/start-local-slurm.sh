#!/usr/bin/env bash
# start-local-slurm.sh - install (if needed), configure and start a one-node
# Slurm cluster (Debian 12: slurm-wlm 22.05 + munge) on this machine, then wait
# until the node is schedulable. Idempotent: a second run with the same
# settings finds the daemons alive and only re-checks readiness.
# Needs root. No systemd/cgroups needed (proctrack/linuxproc, task/none).
#
# Env knobs:
#   SLURM_LOCAL_DIR        state/log/pid dir        (default /tmp/slurm-local)
#   SLURM_LOCAL_PARTITION  partition name           (default debug)
#   SLURM_LOCAL_CPUS       CPUs advertised          (default 64; more than the real
#                          cores is allowed via SlurmdParameters=config_overrides)
#   SLURM_LOCAL_GPUS       fake gres/gpu count      (default 8; 0 = no GPU gres)
#   SLURM_LOCAL_TIMEOUT    seconds to wait for idle (default 60)
#   SLURM_LOCAL_STARTED    optional file: receives the names of the daemons
#                          this run started (space-separated, maybe empty), so
#                          a caller can later stop exactly those:
#                          stop-local-slurm.sh $(cat "$SLURM_LOCAL_STARTED")
# Stop with stop-local-slurm.sh (same SLURM_LOCAL_DIR): it ends only the
# daemons whose pids this script recorded in $SLURM_LOCAL_DIR/pids.
# Adapted for kctl from the project's shared reference script; used by
# tests/support/slurm.py and usable by hand or in CI.
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-/tmp/slurm-local}
PARTITION=${SLURM_LOCAL_PARTITION:-debug}
CPUS=${SLURM_LOCAL_CPUS:-64}
GPUS=${SLURM_LOCAL_GPUS:-8}
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-60}
STARTED_FILE=${SLURM_LOCAL_STARTED:-}
CONF=/etc/slurm/slurm.conf
GRES_CONF=/etc/slurm/gres.conf
MARK="# managed by start-local-slurm.sh"

log() { echo "[start-local-slurm] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"

# pid bookkeeping: "<pid> <starttime>" so a recycled pid is never mistaken for ours
starttime() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null; }
running() { local s; s=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null); [ -n "$s" ] && [ "$s" != Z ]; }
STARTED=""
record() { # record NAME PID: remember the daemon we started (and report it)
  echo "$2 $(starttime "$2")" > "$DIR/pids/$1.pid"
  STARTED="${STARTED:+$STARTED }$1"
  if [ -n "$STARTED_FILE" ]; then printf '%s\n' "$STARTED" > "$STARTED_FILE"; fi
}
alive() { # alive NAME -> 0 if the recorded process is still the one we started
  local f="$DIR/pids/$1.pid" pid st
  [ -s "$f" ] || return 1
  read -r pid st < "$f"
  # PID 1 here reaps orphans lazily: an exited daemon lingers as a zombie
  [ -n "$pid" ] && [ "$(starttime "$pid")" = "$st" ] && running "$pid"
}
wait_pidfile() { # wait_pidfile FILE -> echoes pid once FILE names a live process
  local i pid
  for i in $(seq 100); do
    pid=$(cat "$1" 2>/dev/null || true)
    if [ -n "$pid" ] && running "$pid"; then echo "$pid"; return 0; fi
    sleep 0.1
  done
  return 1
}

# ---- 1. packages --------------------------------------------------------------
PKGS="slurmctld slurmd slurm-client munge"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  log "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
fi

mkdir -p "$DIR"/{ctld,spool,log,run,pids,fakegpu}
if [ -n "$STARTED_FILE" ]; then : > "$STARTED_FILE"; fi
NODE=$(hostname -s)

# ---- 2. name resolution (slurm and torch's MASTER_ADDR use the host name) -----
if ! getent hosts "$NODE" >/dev/null; then
  log "adding '127.0.0.1 $NODE' to /etc/hosts"
  echo "127.0.0.1 $NODE" >> /etc/hosts
fi

# ---- 3. munge ---------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
  log "creating /etc/munge/munge.key"
  install -d -o munge -g munge -m 0700 /etc/munge
  mungekey --create --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge
install -d -o munge -g munge -m 0711 /var/lib/munge
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  alive munged || log "munged already running (not started by this script; left alone)"
else
  rm -f "$DIR/pids/munged.pid" /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged || /usr/sbin/munged --force   # root fallback
  pid=$(wait_pidfile /run/munge/munged.pid) || die "munged did not start (see /var/log/munge/munged.log)"
  record munged "$pid"
  for i in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n | unmunge >/dev/null || die "munge -n | unmunge fails"
fi

# ---- 4. config ----------------------------------------------------------------
MEM=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
GRES_LINE=""; GRES_TYPES=""
if [ "$GPUS" -gt 0 ]; then
  GRES_TYPES="GresTypes=gpu"; GRES_LINE=" Gres=gpu:$GPUS"
fi
NEW_CONF=$(cat <<EOF
$MARK
ClusterName=local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
EnforcePartLimits=ALL
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=5
MinJobAge=600
MailProg=/bin/true
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
$GRES_TYPES
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=$MEM$GRES_LINE State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
)
NEW_GRES=""
if [ "$GPUS" -gt 0 ]; then
  # gres/gpu entries without File= are dropped by slurmd ("file-less GPU"), and
  # File= must be a char/block device: make N dummy ones (same dev as /dev/null).
  for i in $(seq 0 $((GPUS - 1))); do
    f="$DIR/fakegpu/gpu$i"
    [ -c "$f" ] || { rm -f "$f"; mknod "$f" c 1 3 2>/dev/null || : > "$f"; }
  done
  NEW_GRES=$(printf '%s\nNodeName=%s Name=gpu File=%s/fakegpu/gpu[0-%d]\n' "$MARK" "$NODE" "$DIR" $((GPUS - 1)))
fi

conf_same=no
if [ "$(cat "$CONF" 2>/dev/null)" = "$NEW_CONF" ] && [ "$(cat "$GRES_CONF" 2>/dev/null)" = "$NEW_GRES" ]; then
  conf_same=yes
fi

if [ "$conf_same" = yes ] && alive slurmctld && alive slurmd; then
  log "slurmctld and slurmd already running with this config"
else
  # (re)start from scratch: stop our own old daemons, never foreign ones
  if alive slurmd || alive slurmctld; then
    log "config changed or a daemon died: restarting our slurm daemons"
    SLURM_LOCAL_KEEP_MUNGE=1 SLURM_LOCAL_DIR="$DIR" bash "$(dirname "$0")/stop-local-slurm.sh"
  fi
  for port in 6817 6818; do
    if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
      die "port $port already in use by a Slurm not started by this script: $(ss -Hltnp "sport = :$port")"
    fi
  done
  for f in "$CONF" "$GRES_CONF"; do   # keep a foreign config once
    if [ -s "$f" ] && ! grep -qF "$MARK" "$f"; then cp -p "$f" "$f.pre-local-slurm"; fi
  done
  mkdir -p /etc/slurm
  printf '%s\n' "$NEW_CONF" > "$CONF"
  if [ -n "$NEW_GRES" ]; then printf '%s\n' "$NEW_GRES" > "$GRES_CONF"; else rm -f "$GRES_CONF"; fi
  # fresh controller state every start: no stale jobs, no persisted DRAIN/INVAL
  rm -rf "$DIR/ctld" "$DIR/spool" "$DIR/run"; mkdir -p "$DIR/ctld" "$DIR/spool" "$DIR/run"
  rm -f "$DIR/pids/slurmctld.pid" "$DIR/pids/slurmd.pid"

  slurmctld || die "slurmctld failed; see $DIR/log/slurmctld.log"
  pid=$(wait_pidfile "$DIR/run/slurmctld.pid") || { tail -20 "$DIR/log/slurmctld.log" >&2; die "slurmctld did not come up"; }
  record slurmctld "$pid"
  slurmd -N "$NODE" || die "slurmd failed; see $DIR/log/slurmd.log"
  pid=$(wait_pidfile "$DIR/run/slurmd.pid") || { tail -20 "$DIR/log/slurmd.log" >&2; die "slurmd did not come up"; }
  record slurmd "$pid"
fi

# ---- 5. wait until the node is schedulable -------------------------------------
deadline=$((SECONDS + TIMEOUT))
while :; do
  st=$(sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n1 || true)
  case "$st" in
    idle|mixed|allocated|completing) break ;;
    *drain*|*down*|*inval*|*fail*)
      scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
  esac
  if [ $SECONDS -ge $deadline ]; then
    log "node $NODE not ready after ${TIMEOUT}s (state '${st:-?}')"
    scontrol show node "$NODE" >&2 || true
    tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    exit 1
  fi
  sleep 0.2
done
log "ready: node $NODE ($st), partition $PARTITION, CPUs=$CPUS, gpu gres=$GPUS, logs in $DIR/log"
sinfo -o '%P %a %D %T %N %c %G'
