#!/usr/bin/env bash
# A single-node SLURM cluster on localhost, for the cluster tests (make test-cluster).
#
#   tests/cluster/slurm.sh start DIR   install the Debian packages when missing (apt-get, root),
#                                      then start munged, MariaDB + slurmdbd (accounting: the
#                                      sacct that submitit polls for job states), slurmctld and
#                                      slurmd in the background, with their config, state, logs
#                                      and pid files under DIR; wait until the node is idle.
#                                      Prints `export SLURM_CONF=DIR/slurm.conf`.
#   tests/cluster/slurm.sh stop DIR    stop every daemon started in DIR, by process id.
#
# One node (this machine's name, CPUs and memory, from `slurmd -C`) in one default partition,
# `debug`. Nothing outside DIR is written except what apt-get installs. Exit codes: 0 started,
# 3 the cluster cannot start here (not root, no apt-get, a daemon refuses): the reason is on
# stderr.
set -euo pipefail

action=${1:-}
dir=${2:-}
if [[ -z "$action" || -z "$dir" ]]; then
    echo "usage: $0 start|stop DIR" >&2
    exit 2
fi
dir=$(mkdir -p "$dir" && cd "$dir" && pwd)
daemons=(slurmd slurmctld slurmdbd mariadbd munged) # stopped in this order
packages=(slurm-wlm slurmdbd munge mariadb-server)
sql_port=${SER_MARIADB_PORT:-3399}
dbd_port=${SER_SLURMDBD_PORT:-6819}

stop() {
    local name pid
    for name in "${daemons[@]}"; do
        [[ -f "$dir/$name.pid" ]] || continue
        pid=$(cat "$dir/$name.pid")
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            for _ in $(seq 100); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
        fi
        rm -f "$dir/$name.pid"
    done
}

cannot() {
    echo "cannot start a local SLURM cluster: $*" >&2
    stop
    exit 3
}

install_packages() {
    local program missing=0
    for program in slurmctld slurmd slurmdbd sbatch sacct munged mariadbd mariadb-install-db; do
        command -v "$program" >/dev/null || missing=1
    done
    [[ $missing -eq 0 ]] && return
    command -v apt-get >/dev/null || cannot "${packages[*]} are missing and there is no apt-get"
    echo "installing ${packages[*]} with apt-get ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >"$dir/apt.log" 2>&1 || cannot "apt-get update failed (see $dir/apt.log)"
    apt-get install -y -qq "${packages[@]}" >>"$dir/apt.log" 2>&1 ||
        cannot "apt-get install ${packages[*]} failed (see $dir/apt.log)"
}

# wait_for WHAT LOG SECONDS COMMAND...: until COMMAND succeeds; else fail showing LOG.
wait_for() {
    local what=$1 log=$2 timeout=$3
    shift 3
    for _ in $(seq $((timeout * 10))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "$what did not come up in ${timeout}s; the end of $log:" >&2
    tail -20 "$log" >&2 || true
    stop
    exit 1
}

start_munge() {
    mkdir -p "$dir/munge"
    chmod 755 "$dir/munge" # clients need to reach the socket
    [[ -f "$dir/munge/munge.key" ]] ||
        dd if=/dev/urandom of="$dir/munge/munge.key" bs=1 count=1024 status=none
    chmod 400 "$dir/munge/munge.key"
    munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" \
        --seed-file="$dir/munge/munged.seed" 2>>"$dir/munged.log" ||
        cannot "munged does not start (see $dir/munged.log)"
    wait_for munged "$dir/munged.log" 10 test -S "$dir/munge/munge.socket"
}

# MariaDB (data under DIR, TCP on 127.0.0.1 only), and slurmdbd on top of it.
start_accounting() {
    if [[ ! -d "$dir/mysql/mysql" ]]; then
        mariadb-install-db --user=root --datadir="$dir/mysql" --skip-test-db \
            --auth-root-authentication-method=normal >"$dir/mariadb-install.log" 2>&1 ||
            cannot "mariadb-install-db failed (see $dir/mariadb-install.log)"
    fi
    mariadbd --user=root --datadir="$dir/mysql" --socket="$dir/mysql.sock" \
        --bind-address=127.0.0.1 --port="$sql_port" --pid-file="$dir/mariadbd.pid" \
        --log-error="$dir/mariadb.log" >/dev/null 2>&1 &
    wait_for mariadbd "$dir/mariadb.log" 60 mariadb -S "$dir/mysql.sock" -uroot -e "select 1"
    mariadb -S "$dir/mysql.sock" -uroot -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1'
        IDENTIFIED BY 'ser-test'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
    cat >"$dir/slurmdbd.conf" <<EOF
# Written by tests/cluster/slurm.sh: accounting (sacct) for the test cluster.
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
DbdHost=localhost
DbdPort=$dbd_port
SlurmUser=root
PidFile=$dir/slurmdbd.pid
LogFile=$dir/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$sql_port
StorageUser=slurm
StoragePass=ser-test
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$dir/slurmdbd.conf"
    slurmdbd 2>>"$dir/slurmdbd.log" || cannot "slurmdbd does not start (see $dir/slurmdbd.log)"
    wait_for slurmdbd "$dir/slurmdbd.log" 60 timeout 5 sacctmgr -n list cluster
    if ! sacctmgr -n -P list cluster format=cluster | grep -qx ser-test; then
        sacctmgr -i add cluster ser-test >/dev/null
    fi
}

write_slurm_conf() {
    local node cpus memory
    node=$(hostname -s)
    # slurmd -C prints e.g. "NodeName=vm CPUs=2 Boards=1 ... RealMemory=24105"
    cpus=$(slurmd -C | sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' | head -1)
    memory=$(slurmd -C | sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' | head -1)
    cat >"$SLURM_CONF" <<EOF
# Written by tests/cluster/slurm.sh: one node, one partition, no cgroups.
ClusterName=ser-test
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=${SER_SLURMCTLD_PORT:-6817}
SlurmdPort=${SER_SLURMD_PORT:-6818}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$dbd_port
# for slurmdbd, "the password" names the munge socket
AccountingStoragePass=$dir/munge/munge.socket
ReturnToService=2
JobRequeue=1
# react to time limits, signals and finished jobs within seconds, not minutes
KillWait=5
MinJobAge=300
SchedulerParameters=sched_interval=2
NodeName=$node CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
    [[ $(id -u) -eq 0 ]] || cannot "the daemons run as root and this is uid $(id -u)"
    install_packages
    stop # daemons left by an earlier start in the same folder
    mkdir -p "$dir/state" "$dir/spool"
    export SLURM_CONF="$dir/slurm.conf" # slurmdbd reads slurmdbd.conf beside it
    start_munge
    write_slurm_conf
    start_accounting
    slurmctld -i 2>>"$dir/slurmctld.log" || cannot "slurmctld does not start (see $dir/slurmctld.log)"
    wait_for slurmctld "$dir/slurmctld.log" 30 scontrol ping
    slurmd 2>>"$dir/slurmd.log" || cannot "slurmd does not start (see $dir/slurmd.log)"
    wait_for "the node" "$dir/slurmd.log" 60 bash -c "sinfo -h -N -o %t | grep -qx idle"
    echo "export SLURM_CONF=$SLURM_CONF"
}

case "$action" in
start) start ;;
stop) stop ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
