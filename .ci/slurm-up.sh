#!/usr/bin/env bash
# A single-node Slurm on this machine, for the tests of `seqbench run --executor slurm`:
# munged, slurmctld and slurmd from Debian's packages, the controller and the node on 127.0.0.1,
# one partition `debug` with this machine's CPUs. Run as root (CI). Idempotent: a running
# cluster is left as it is. Prints the partition name on success.
set -euo pipefail

if command -v sinfo >/dev/null 2>&1 && sinfo -h -o "%t" 2>/dev/null | grep -Eq "^(idle|mix|alloc)$"; then
    echo debug
    exit 0
fi
for tool in munged slurmctld slurmd; do
    command -v "$tool" >/dev/null 2>&1 || { echo "slurm-up: $tool not installed" >&2; exit 1; }
done

node="$(hostname -s)"
cpus="$(nproc)"
memory_mib="$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))"

# munge: a key, its runtime folder, the daemon (as the munge user)
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged

install -d -m 0755 /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=seqbench-ci
SlurmctldHost=${node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
NodeName=${node} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${memory_mib} State=UNKNOWN
PartitionName=debug Nodes=${node} Default=YES MaxTime=INFINITE State=UP
CONF
# no cgroup.conf: slurmd then loads the cgroup/v1 plugin without using it (proctrack/linuxproc,
# task/none); "CgroupPlugin=disabled" needs Slurm ≥ 23.02

running() {  # a live process of that name (not a zombie), per its pid file
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$(cat "$1")/status"
}
running /run/slurmctld.pid || /usr/sbin/slurmctld
running /run/slurmd.pid || /usr/sbin/slurmd
scontrol update nodename="${node}" state=resume >/dev/null 2>&1 || true  # if marked down before
for _ in $(seq 1 60); do
    if sinfo -h -o "%t" 2>/dev/null | grep -Eq "^(idle|mix|alloc)$"; then
        echo debug
        exit 0
    fi
    sleep 1
done
echo "slurm-up: the node did not come up; see /var/log/slurm/" >&2
sinfo >&2 || true
exit 1
