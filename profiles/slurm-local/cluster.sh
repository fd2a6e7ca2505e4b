#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the workflow's cluster tests
# (tests/test_slurm.py) and for trying profiles/slurm-local by hand.
#
#   profiles/slurm-local/cluster.sh up      install (apt) if needed, start munged,
#                                            slurmctld, slurmd; idempotent
#   profiles/slurm-local/cluster.sh down    stop the daemons this script started
#   profiles/slurm-local/cluster.sh status  exit 0 when the node takes jobs
#   profiles/slurm-local/cluster.sh env     print `export SLURM_CONF=...`
#
# Needs root and Debian's packages (slurmctld slurmd slurm-client munge, Slurm 22.05;
# `up` installs them with apt-get when missing). Exit status 3 means "cannot run a
# cluster here" (not root, no apt, packages not installable) with the reason as the
# last line on stderr: tests skip on it, anything else is a failure.
#
# The cluster keeps its files under $EBM_BENCH_SLURM_DIR (default
# /var/lib/ebm-bench-slurm). Clients find the config at /etc/slurm/slurm.conf, a link
# to it: SLURM_CONF alone is not enough, because Snakemake's job step drops SLURM_*
# variables before its inner srun. A machine with a slurm.conf of its own (a real
# SLURM node) is left alone: `up` refuses (status 3). One node,
# `localhost`, with all CPUs and EBM_BENCH_SLURM_GPUS (default 2) stand-in GPUs: GRES
# entries backed by /dev/null, /dev/zero, ... SLURM schedules `--gpus=1` jobs on them
# and sets CUDA_VISIBLE_DEVICES in the job as on a real GPU node, while the job
# computes on CPU. Without an accounting database sacct knows no jobs: the profile
# tells the executor plugin to poll squeue, and MinJobAge=600 keeps finished jobs
# visible to it (and to `scontrol show job`, which the tests read).
set -euo pipefail

DIR=${EBM_BENCH_SLURM_DIR:-/var/lib/ebm-bench-slurm}
GPUS=${EBM_BENCH_SLURM_GPUS:-2}
CONF=$DIR/etc/slurm.conf
LINK=/etc/slurm/slurm.conf
MARK="# written by profiles/slurm-local/cluster.sh"
export SLURM_CONF=$CONF

cannot() { echo "cluster.sh: cannot run a local SLURM cluster here: $*" >&2; exit 3; }
say() { echo "cluster.sh: $*" >&2; }

need_root() { [ "$(id -u)" = 0 ] || cannot "not root (daemons and apt-get need root)"; }

install_packages() {
  local missing=()
  for c in munged slurmctld slurmd sbatch squeue scontrol; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
  done
  [ ${#missing[@]} = 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || cannot "missing ${missing[*]} and no apt-get to install them"
  say "installing slurmctld slurmd slurm-client munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q slurmctld slurmd slurm-client munge >"$DIR/apt.log" 2>&1; then
    apt-get update -q >>"$DIR/apt.log" 2>&1 || true
    apt-get install -y -q slurmctld slurmd slurm-client munge >>"$DIR/apt.log" 2>&1 \
      || cannot "apt-get install slurmctld slurmd slurm-client munge failed (see $DIR/apt.log)"
  fi
}

write_conf() {
  # the config depends on the machine (CPUs, memory) and GPUS; rewritten each `up`,
  # daemons restarted only when it changed
  local cpus mem devs=(/dev/null /dev/zero /dev/full /dev/urandom /dev/random /dev/tty)
  cpus=$(nproc)
  mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  [ "$GPUS" -le ${#devs[@]} ] || cannot "EBM_BENCH_SLURM_GPUS=$GPUS: at most ${#devs[@]} stand-in GPUs"
  mkdir -p "$DIR/etc" "$DIR/ctld" "$DIR/spool" "$DIR/log" "$DIR/run"
  local gres="" node_gres=""
  if [ "$GPUS" -gt 0 ]; then
    node_gres=" Gres=gpu:$GPUS"
    for ((i = 0; i < GPUS; i++)); do gres+="NodeName=localhost Name=gpu File=${devs[$i]}"$'\n'; done
  fi
  cat >"$CONF.new" <<EOF
$MARK: a one-node test cluster
ClusterName=ebmbench
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
GresTypes=gpu
ReturnToService=2
MinJobAge=600
KillWait=5
SchedulerType=sched/backfill
NodeName=localhost CPUs=$cpus RealMemory=$mem$node_gres State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  printf '%s' "$gres" >"$DIR/etc/gres.conf.new"
  local changed=0
  for f in "$CONF" "$DIR/etc/gres.conf"; do
    if ! cmp -s "$f.new" "$f"; then changed=1; mv "$f.new" "$f"; else rm -f "$f.new"; fi
  done
  return $((1 - changed))  # 0: changed
}

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

munge_up() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key 2>/dev/null || true
  chmod 0400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- /usr/sbin/munged 9>&-
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cannot "munged did not start"
}

node_state() { sinfo -h -n localhost -o %T 2>/dev/null | head -1; }

up() {
  need_root
  mkdir -p "$DIR"
  # one bring-up at a time (parallel test workers each call `up`)
  exec 9>"$DIR/up.lock"
  command -v flock >/dev/null 2>&1 && flock 9
  install_packages
  if [ -e "$LINK" ] && ! grep -qF "$MARK" "$LINK" 2>/dev/null; then
    cannot "$LINK belongs to another SLURM set-up; not touching it"
  fi
  local restart=1
  write_conf || restart=0
  mkdir -p /etc/slurm
  [ "$(readlink "$LINK" 2>/dev/null)" = "$CONF" ] || ln -sfn "$CONF" "$LINK"
  if [ $restart = 1 ]; then stop_daemons; fi
  munge_up
  local started=0
  alive "$DIR/run/slurmctld.pid" || { slurmctld -f "$CONF" 9>&-; started=1; }
  for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.1; done
  scontrol ping 2>/dev/null | grep -q UP || { tail -5 "$DIR/log/slurmctld.log" >&2; cannot "slurmctld did not come up"; }
  alive "$DIR/run/slurmd.pid" || { slurmd -f "$CONF" -N localhost 9>&-; started=1; }
  local state=""
  for _ in $(seq 150); do
    state=$(node_state)
    case "$state" in
      idle* | mix* | alloc*) break ;;
      down* | drain* | fail*) scontrol update nodename=localhost state=resume 2>/dev/null || true ;;
    esac
    sleep 0.2
  done
  case "$state" in
    idle* | mix* | alloc*) ;;
    *) tail -5 "$DIR/log/slurmd.log" >&2; cannot "node localhost is '$state', not idle" ;;
  esac
  alive "$DIR/run/slurmd.pid" || { tail -5 "$DIR/log/slurmd.log" >&2; cannot "slurmd did not start"; }
  if [ $started = 1 ] && ! timeout 60 srun -N1 -n1 -t 1 true; then  # a job runs end to end
    tail -5 "$DIR/log/slurmd.log" >&2
    echo "cluster.sh: the cluster is up but a test job (srun true) failed" >&2
    exit 1
  fi
  say "up: node localhost $state, $(nproc) CPUs, $GPUS stand-in GPUs; SLURM_CONF=$CONF"
}

stop_daemons() {
  local p
  for p in slurmd slurmctld; do
    if alive "$DIR/run/$p.pid"; then
      local pid
      pid=$(cat "$DIR/run/$p.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$DIR/run/$p.pid"
  done
}

down() {
  need_root
  # cancel what is left, so no job outlives its daemons
  if alive "$DIR/run/slurmctld.pid"; then scancel --full -u root 2>/dev/null || true; fi
  stop_daemons
  if [ "$(readlink "$LINK" 2>/dev/null)" = "$CONF" ]; then rm -f "$LINK"; fi
  say "down (munged left running: other services may use it)"
}

status() {
  scontrol ping 2>/dev/null | grep -q UP || { echo "slurmctld not responding" >&2; return 1; }
  case "$(node_state)" in
    idle* | mix* | alloc*) echo "up: $(sinfo -h -o '%P %T %C %G' | head -1)" ;;
    *) echo "node localhost is '$(node_state)'" >&2; return 1 ;;
  esac
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
