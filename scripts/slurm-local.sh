#!/usr/bin/env bash
# A one-node Slurm cluster on localhost, with accounting (slurmdbd + MariaDB) so that sacct works.
# For cool-runner's tests and for trying the Slurm launcher out; it writes /etc/slurm, so run it as root on a
# machine of your own (a container, a VM, CI), never on a real cluster's node.
#
#   scripts/slurm-local.sh install   apt-get the packages (Debian/Ubuntu)
#   scripts/slurm-local.sh start     fresh state, then munged, mariadbd, slurmdbd, slurmctld, slurmd
#   scripts/slurm-local.sh status    what runs, and sinfo
#   scripts/slurm-local.sh stop      stop every daemon it started
set -euo pipefail

STATE=${COOL_SLURM_STATE:-/tmp/cool-runner-slurm}
DB_PORT=${COOL_SLURM_DB_PORT:-3317}
CONF=/etc/slurm
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)

log() { echo "slurm-local: $*" >&2; }
die() { log "error: $*"; exit 1; }

install() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${PACKAGES[@]}" >/dev/null
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq $((seconds * 10))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    die "$what did not come up within ${seconds} s (logs in $STATE)"
}

write_configs() {
    local cpus memory
    cpus=$(nproc)
    memory=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    mkdir -p "$CONF"
    # No cgroups in containers and CI sandboxes: linuxproc tracks processes, task/none binds nothing.
    cat >"$CONF/slurm.conf" <<CONF
ClusterName=local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations
JobCompType=jobcomp/none
MinJobAge=2
KillWait=2
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
MessageTimeout=10
NodeName=localhost CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost Default=NO MaxTime=INFINITE State=UP
CONF
    cat >"$CONF/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
CONF
    chmod 600 "$CONF/slurmdbd.conf"
    rm -f "$CONF/cgroup.conf"  # nothing here uses cgroups, and Slurm 22.05 knows no "disabled" plugin
}

start_munge() {
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    if ! munge -n >/dev/null 2>&1; then
        runuser -u munge -- /usr/sbin/munged
        wait_for 10 munged munge -n
    fi
}

start_mariadb() {
    local data=$STATE/mysql run=$STATE/mysql-run
    mkdir -p "$data" "$run"
    chown -R mysql:mysql "$data" "$run"
    mariadb-install-db --user=mysql --datadir="$data" --auth-root-authentication-method=socket \
        >"$STATE/mariadb-install.log" 2>&1
    # A server of our own, on its own port and socket, so an existing MariaDB is left alone.
    (mariadbd --user=mysql --datadir="$data" --port="$DB_PORT" --bind-address=127.0.0.1 \
        --socket="$run/mysql.sock" --pid-file="$run/mariadb.pid" --skip-name-resolve \
        --innodb-buffer-pool-size=64M >"$STATE/mariadb.log" 2>&1 &)
    wait_for 30 MariaDB mariadb --socket="$run/mysql.sock" -e "select 1"
    mariadb --socket="$run/mysql.sock" <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL
}

start() {
    command -v slurmctld >/dev/null || die "Slurm is not installed: run '$0 install' first"
    stop quiet
    rm -rf "$STATE"
    mkdir -p "$STATE/ctld" "$STATE/slurmd"
    write_configs
    start_munge
    start_mariadb
    /usr/sbin/slurmdbd
    wait_for 30 slurmdbd sacctmgr -i list cluster
    sacctmgr -i add cluster local >/dev/null 2>&1 || true
    sacctmgr -i add account research Description=cool-runner Organization=local >/dev/null 2>&1 || true
    sacctmgr -i add user root Account=research DefaultAccount=research >/dev/null 2>&1 || true
    /usr/sbin/slurmctld -c -i
    wait_for 30 slurmctld scontrol ping
    /usr/sbin/slurmd -N localhost
    wait_for 30 "the node" bash -c "sinfo -h -N -o %T | grep -Eq '^(idle|mixed|allocated)'"
    log "up: $(sinfo -h -o '%P %a %D %T' | tr '\n' ' ')(state in $STATE)"
}

stop_pid() {  # stop_pid PIDFILE NAME
    local file=$1 pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

stop() {
    stop_pid "$STATE/slurmd.pid" slurmd
    stop_pid "$STATE/slurmctld.pid" slurmctld
    stop_pid "$STATE/slurmdbd.pid" slurmdbd
    stop_pid "$STATE/mysql-run/mariadb.pid" mariadbd
    [ "${1:-}" = quiet ] || log "stopped"
}

status() {
    local name
    for name in slurmctld slurmd slurmdbd mysql-run/mariadb; do
        if [ -f "$STATE/$name.pid" ] && kill -0 "$(cat "$STATE/$name.pid")" 2>/dev/null; then
            echo "${name#mysql-run/}: running (pid $(cat "$STATE/$name.pid"))"
        else
            echo "${name#mysql-run/}: not running"
        fi
    done
    sinfo 2>/dev/null || true
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
