#!/usr/bin/env bash
# A one-node Slurm cluster on this machine (slurmctld + slurmd on localhost), for the scheduler
# tests and for trying the cluster route on a laptop. Idempotent: installs Debian's slurm-wlm and
# munge only when missing, writes the configuration only when it differs, starts only the daemons
# that are not running, and waits until the node is idle.
#
#   bash scripts/slurm-cluster.sh          # start (or find) the cluster; prints the partition
#   bash scripts/slurm-cluster.sh stop     # stop the daemons (configuration kept)
#
# Inside a container there is no cgroup or systemd for Slurm: processes are tracked by
# proctrack/linuxproc and tasks are not bound (task/none). No slurmdbd: `sacct` is unavailable,
# so AiiDA's core.slurm sees job states through squeue/scontrol only (no TIMEOUT/NODE_FAIL detail).
set -euo pipefail

PARTITION=${AGI_SLURM_PARTITION:-agi}
CONF=/etc/slurm/slurm.conf

stop() {
  pkill -x slurmd 2>/dev/null || true
  pkill -x slurmctld 2>/dev/null || true
}
if [ "${1:-start}" = stop ]; then stop; exit 0; fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "slurm-cluster: need root or sudo" >&2; exit 1; }
  SUDO=sudo
fi

missing=()
for p in slurm-wlm munge; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "slurm-cluster: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# munge: a key readable by munge only, its runtime directories, one daemon
if [ ! -s /etc/munge/munge.key ]; then
  $SUDO dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
$SUDO mkdir -p /run/munge /var/lib/munge /var/log/munge /etc/munge
$SUDO chown munge:munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
$SUDO chmod 400 /etc/munge/munge.key
$SUDO chmod 711 /run/munge
if ! pgrep -x munged >/dev/null; then
  $SUDO su -s /bin/sh munge -c /usr/sbin/munged
fi

host=$(hostname)
cpus=$(nproc)
mem_mib=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
want=$(cat <<EOF
# written by agi-data's scripts/slurm-cluster.sh: one node, this machine
ClusterName=agi
SlurmctldHost=${host}
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
MpiDefault=none
KillWait=5
InactiveLimit=0
MinJobAge=600
NodeName=${host} CPUs=${cpus} RealMemory=${mem_mib} State=UNKNOWN
PartitionName=${PARTITION} Nodes=${host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
)
$SUDO mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$want" ]; then
  echo "$want" | $SUDO tee "$CONF" >/dev/null
  stop
fi

pgrep -x slurmctld >/dev/null || $SUDO slurmctld
pgrep -x slurmd >/dev/null || $SUDO slurmd

# wait (bounded) until the node takes jobs
for _ in $(seq 1 60); do
  state=$(sinfo -h -N -o '%t' 2>/dev/null | head -n1 || true)
  case "$state" in
    idle|mix|alloc) echo "slurm-cluster: partition '${PARTITION}' on ${host} (${cpus} CPUs) is ${state}"; exit 0 ;;
    down*|drain*) $SUDO scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
  esac
  sleep 1
done
echo "slurm-cluster: the node did not become idle in 60 s; see /var/log/slurm/slurmctld.log and slurmd.log" >&2
sinfo -N >&2 || true
exit 1
