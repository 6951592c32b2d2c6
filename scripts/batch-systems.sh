#!/usr/bin/env bash
# Real batch schedulers on this one machine, for the launcher tests:
#   - Slurm 22.05 (munged + slurmctld + slurmd), everything under $SLURM_BASE
#   - Son of Grid Engine 8.1.9 (sge_qmaster + sge_execd), everything under $SGE_BASE
# Nothing is written to /etc (except a hosts line when the host name does not
# resolve at all, which Grid Engine cannot live without), no systemd needed.
#
# Usage: scripts/batch-systems.sh start|stop|env|status
#   start   starts whichever system does not answer; returns at once when both do.
#           Not installed or not root: a warning (an error when CI=true)
#   stop    stops the daemons this script started under the two bases
#   env     prints the export lines clients need: eval "$(scripts/batch-systems.sh env)"
#   status  exits 0 when both answer
#
# Knobs (defaults are what internal/testutil looks for when nothing is exported):
#   SLURM_BASE=/tmp/ipp-slurm SLURM_CPUS=64   SGE_BASE=/tmp/ipp-sge SGE_SLOTS=64
#   BATCH_SYSTEMS="slurm sge"  (start/stop only these)
# Packages (scripts/install-deps.sh test installs them):
#   slurm-wlm munge gridengine-master gridengine-exec gridengine-client
set -euo pipefail

SLURM_BASE=${SLURM_BASE:-/tmp/ipp-slurm}
SLURM_CPUS=${SLURM_CPUS:-64}
SGE_BASE=${SGE_BASE:-/tmp/ipp-sge}
SGE_SLOTS=${SGE_SLOTS:-64}
SYSTEMS=${BATCH_SYSTEMS:-slurm sge}

slurm_conf=$SLURM_BASE/etc/slurm.conf
munge_sock=$SLURM_BASE/munge/munge.socket.2
sge_root=$SGE_BASE/root
sge_bin=/usr/lib/gridengine

say() { echo "batch-systems: $*" >&2; }
die() { say "$*"; exit 1; }
want() { case " $SYSTEMS " in *" $1 "*) return 0;; esac; return 1; }
# cannot NAME WHY: a system that cannot be started here at all (not
# installed, not root). In CI that is an error; elsewhere the tests that
# need it skip loudly, so say so and go on.
cannot() {
  if [ "${CI:-}" = true ]; then die "$1: $2"; fi
  say "$1: $2; its tests will be skipped"
}

# wait_for SECONDS CMD...: runs CMD every 0.2 s until it succeeds or time runs out.
wait_for() {
  local limit=$1; shift
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.2
  done
}

# stop_pidfile FILE: TERM the process named in FILE and wait (up to 30 s) until it is gone.
# A pid file can outlive its daemon (a machine restored from a snapshot, a
# session whose processes were killed), and its number may since belong to
# another process: only a process whose command is a scheduler daemon is
# signalled.
stop_pidfile() {
  local f=$1 pid comm
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  case "$pid" in ''|*[!0-9]*) rm -f "$f"; return 0;; esac
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || { rm -f "$f"; return 0; }
  case "$comm" in munged|slurmctld|slurmd|sge_qmaster|sge_execd) ;;
  *) say "$f names pid $pid, now $comm: not ours, left alone"; rm -f "$f"; return 0;; esac
  kill "$pid" 2>/dev/null || { rm -f "$f"; return 0; }
  wait_for 30 sh -c "! kill -0 $pid" || say "process $pid (from $f) still alive after 30 s"
  rm -f "$f"
}

# ---------------------------------------------------------------- Slurm

slurm_up() {
  # The node must be usable, not only the controller reachable.
  local st
  st=$(SLURM_CONF=$slurm_conf timeout 5 sinfo -h -N -o '%T' 2>/dev/null | head -n1) || return 1
  case "$st" in idle*|mixed*|allocated*|completing*) return 0;; esac
  return 1
}

slurm_write_conf() {
  local host=$1
  mkdir -p "$SLURM_BASE"/{etc,run,log,spool/ctld,spool/d,munge,munge-key}
  # munged refuses a socket whose directories are not searchable by everyone.
  chmod 755 "$SLURM_BASE" "$SLURM_BASE/munge"
  chmod 700 "$SLURM_BASE/munge-key"
  if [ ! -s "$SLURM_BASE/munge-key/munge.key" ]; then
    # Our own key: the package's /etc/munge/munge.key belongs to the munge user,
    # and munged running as root rejects a key it does not own.
    head -c 128 /dev/urandom > "$SLURM_BASE/munge-key/munge.key"
    chmod 400 "$SLURM_BASE/munge-key/munge.key"
  fi
  # Notes on the choices below:
  #  - linuxproc/none plugins: no cgroup tree is delegated to us in CI containers.
  #  - no slurmdbd, so sacct cannot work: jobs stay visible to scontrol/squeue for
  #    MinJobAge seconds after they end, and a text completion log is kept.
  #  - batch_sched_delay=0: otherwise each sbatch waits about 3 s before it starts.
  #  - config_overrides: trust CPUs=$SLURM_CPUS although the machine has fewer cores.
  cat > "$slurm_conf" <<EOF
ClusterName=ipp
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$munge_sock
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$SLURM_BASE/spool/ctld
SlurmdSpoolDir=$SLURM_BASE/spool/d
SlurmctldPidFile=$SLURM_BASE/run/slurmctld.pid
SlurmdPidFile=$SLURM_BASE/run/slurmd.pid
SlurmctldLogFile=$SLURM_BASE/log/slurmctld.log
SlurmdLogFile=$SLURM_BASE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$SLURM_BASE/log/jobcomp.log
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=$SLURM_CPUS Sockets=1 CoresPerSocket=$SLURM_CPUS ThreadsPerCore=1 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
}

slurm_start() {
  if slurm_up; then say "slurm: already up (SLURM_CONF=$slurm_conf)"; return 0; fi
  command -v slurmctld >/dev/null && command -v munged >/dev/null ||
    { cannot slurm "slurmctld/munged not installed (scripts/install-deps.sh test)"; return 0; }
  [ "$(id -u)" = 0 ] || { cannot slurm "starting it needs root"; return 0; }
  local host
  host=$(hostname -s)
  # Leftovers of an earlier start in this base would hold the ports.
  stop_pidfile "$SLURM_BASE/run/slurmd.pid"
  stop_pidfile "$SLURM_BASE/run/slurmctld.pid"
  # slurmctld -i forgets jobs but not the cluster name it saved: a state
  # directory left by another configuration makes it exit at once
  # ("CLUSTER NAME MISMATCH"). Every start is a fresh cluster, so start empty.
  rm -rf "$SLURM_BASE/spool"
  slurm_write_conf "$host"
  if ! munge -S "$munge_sock" -n >/dev/null 2>&1; then
    stop_pidfile "$SLURM_BASE/run/munged.pid"
    munged -S "$munge_sock" --key-file="$SLURM_BASE/munge-key/munge.key" \
      --pid-file="$SLURM_BASE/run/munged.pid" --log-file="$SLURM_BASE/log/munged.log" \
      --seed-file="$SLURM_BASE/munge/munged.seed"
    wait_for 10 munge -S "$munge_sock" -n || die "slurm: munged did not answer; see $SLURM_BASE/log/munged.log"
  fi
  # -i: forget any saved state, every start is a fresh cluster. Both daemonize.
  SLURM_CONF=$slurm_conf slurmctld -f "$slurm_conf" -i ||
    { tail -n 20 "$SLURM_BASE/log/slurmctld.log" >&2 || true; die "slurm: slurmctld did not start; see $SLURM_BASE/log/slurmctld.log"; }
  SLURM_CONF=$slurm_conf slurmd -f "$slurm_conf" -N "$host" ||
    { tail -n 20 "$SLURM_BASE/log/slurmd.log" >&2 || true; die "slurm: slurmd did not start; see $SLURM_BASE/log/slurmd.log"; }
  if ! wait_for 30 slurm_up; then
    tail -n 20 "$SLURM_BASE/log/slurmctld.log" "$SLURM_BASE/log/slurmd.log" >&2 || true
    die "slurm: node not idle after 30 s"
  fi
  say "slurm: up, $SLURM_CPUS CPUs (SLURM_CONF=$slurm_conf)"
}

slurm_stop() {
  stop_pidfile "$SLURM_BASE/run/slurmd.pid"
  stop_pidfile "$SLURM_BASE/run/slurmctld.pid"
  stop_pidfile "$SLURM_BASE/run/munged.pid"
}

# ---------------------------------------------------------------- Grid Engine

sge_env() { env SGE_ROOT="$sge_root" SGE_CELL=default PATH="$sge_bin:$PATH" "$@"; }

sge_up() {
  # Up means a queue instance with no state flags (not "u"nknown, "d"isabled...).
  local out
  out=$(sge_env timeout 5 qstat -f -q all.q 2>/dev/null) || return 1
  echo "$out" | awk '/^all\.q@/ && NF == 5 {ok=1} END {exit !ok}'
}

sge_pids() { ls "$SGE_BASE"/spool/execd/*/execd.pid "$SGE_BASE/spool/qmaster/qmaster.pid" 2>/dev/null || true; }

sge_start() {
  if sge_up; then say "sge: already up (SGE_ROOT=$sge_root)"; return 0; fi
  [ -x /usr/sbin/sge_qmaster ] && [ -x "$sge_bin/qconf" ] ||
    { cannot sge "not installed (scripts/install-deps.sh test)"; return 0; }
  [ "$(id -u)" = 0 ] || { cannot sge "starting it needs root"; return 0; }
  local host f
  host=$(hostname)
  # commlib looks the host name up; a fresh container may not list it anywhere.
  if ! getent hosts "$host" >/dev/null; then
    say "sge: $host does not resolve; adding it to /etc/hosts as 127.0.0.1"
    echo "127.0.0.1 $host" >> /etc/hosts
  fi
  for f in $(sge_pids); do stop_pidfile "$f"; done
  rm -rf "$SGE_BASE"
  mkdir -p "$sge_root/default/common" "$SGE_BASE/spool/qmaster" "$SGE_BASE/spool/db" "$SGE_BASE/spool/execd/$host"
  chmod 755 "$SGE_BASE" "$SGE_BASE/spool"
  # Jobs' scratch directories (named after job ids) under the base, so two
  # installations on one machine never share one.
  mkdir -p "$SGE_BASE/tmp"; chmod 1777 "$SGE_BASE/tmp"
  # A private SGE_ROOT: the binaries of the package, a cell of our own.
  for f in bin lib utilbin util; do ln -s "/var/lib/gridengine/$f" "$sge_root/$f"; done
  local common=$sge_root/default/common
  cat > "$common/bootstrap" <<EOF
admin_user              sgeadmin
default_domain          none
ignore_fqdn             true
spooling_method         berkeleydb
spooling_lib            libspoolb
spooling_params         $SGE_BASE/spool/db
binary_path             /usr/sbin
qmaster_spool_dir       $SGE_BASE/spool/qmaster
security_mode           none
listener_threads        2
worker_threads          2
scheduler_threads       1
EOF
  echo "$host" > "$common/act_qmaster"
  # Connections from 127.0.0.1 resolve to "localhost" while the host calls itself
  # $host; without an alias commlib refuses every client.
  echo "$host localhost" > "$common/host_aliases"
  # Global configuration: root may run jobs (min_uid 0), no mail, no login shell
  # for jobs (root's .bashrc must not run inside them), quick load reports.
  awk -v spool="$SGE_BASE/spool/execd" '
    $1 == "execd_spool_dir"  { print "execd_spool_dir " spool; next }
    $1 == "min_uid"          { print "min_uid 0"; next }
    $1 == "min_gid"          { print "min_gid 0"; next }
    $1 == "mailer"           { print "mailer /bin/true"; next }
    $1 == "login_shells"     { print "login_shells NONE"; next }
    $1 == "load_report_time" { print "load_report_time 00:00:05"; next }
    { print }' /usr/share/gridengine/default-configuration > "$SGE_BASE/global.conf"

  "$sge_bin/spoolinit" berkeleydb libspoolb "$SGE_BASE/spool/db" init >/dev/null
  sge_env "$sge_bin/spooldefaults" configuration "$SGE_BASE/global.conf"
  sge_env "$sge_bin/spooldefaults" complexes /usr/share/gridengine/util/resources/centry
  sge_env "$sge_bin/spooldefaults" usersets /usr/share/gridengine/util/resources/usersets
  sge_env "$sge_bin/spooldefaults" managers sgeadmin root
  sge_env "$sge_bin/spooldefaults" adminhosts "$host"
  # The daemons drop to the admin user and must own their spool.
  chown -R sgeadmin:sgeadmin "$sge_root/default" "$SGE_BASE/spool"

  sge_env /usr/sbin/sge_qmaster
  wait_for 30 sge_env qstat -f || die "sge: qmaster did not answer; see $SGE_BASE/spool/qmaster/messages"
  # Submit host by qconf: the spooled default is not taken into account.
  sge_env qconf -as "$host" >/dev/null
  # Schedule every second so a job starts about a second after qsub.
  sge_env qconf -ssconf | awk '
    $1 == "schedule_interval" { print "schedule_interval 0:0:1"; next }
    $1 == "flush_submit_sec"  { print "flush_submit_sec 1"; next }
    $1 == "flush_finish_sec"  { print "flush_finish_sec 1"; next }
    { print }' > "$SGE_BASE/sched.conf"
  sge_env qconf -Msconf "$SGE_BASE/sched.conf" >/dev/null
  printf '%s\n' "hostname $host" "load_scaling NONE" "complex_values NONE" "user_lists NONE" \
    "xuser_lists NONE" "projects NONE" "xprojects NONE" "usage_scaling NONE" "report_variables NONE" \
    > "$SGE_BASE/exechost.conf"
  sge_env qconf -Ae "$SGE_BASE/exechost.conf" >/dev/null
  printf '%s\n' "group_name @allhosts" "hostlist $host" > "$SGE_BASE/hostgroup.conf"
  sge_env qconf -Ahgrp "$SGE_BASE/hostgroup.conf" >/dev/null
  # PE "smp": all slots of a job on one host; qsort_args must be present or qconf refuses.
  printf '%s\n' "pe_name smp" "slots 9999" "user_lists NONE" "xuser_lists NONE" \
    "start_proc_args /bin/true" "stop_proc_args /bin/true" 'allocation_rule $pe_slots' \
    "control_slaves TRUE" "job_is_first_task FALSE" "urgency_slots min" \
    "accounting_summary FALSE" "qsort_args NONE" > "$SGE_BASE/pe.conf"
  sge_env qconf -Ap "$SGE_BASE/pe.conf" >/dev/null
  {
    printf '%s\n' "qname all.q" "hostlist @allhosts" "seq_no 0" "load_thresholds NONE" \
      "suspend_thresholds NONE" "nsuspend 1" "suspend_interval 00:05:00" "priority 0" \
      "min_cpu_interval 00:05:00" "processors UNDEFINED" "qtype BATCH INTERACTIVE" \
      "ckpt_list NONE" "pe_list smp" "rerun FALSE" "slots $SGE_SLOTS" "tmpdir $SGE_BASE/tmp" \
      "shell /bin/bash" "prolog NONE" "epilog NONE" "shell_start_mode unix_behavior" \
      "starter_method NONE" "suspend_method NONE" "resume_method NONE" "terminate_method NONE" \
      "notify 00:00:60" "owner_list NONE" "user_lists NONE" "xuser_lists NONE" \
      "subordinate_list NONE" "complex_values NONE" "projects NONE" "xprojects NONE" \
      "calendar NONE" "initial_state default"
    for lim in rt cpu fsize data stack core rss vmem; do
      printf '%s\n' "s_$lim INFINITY" "h_$lim INFINITY"
    done
  } > "$SGE_BASE/queue.conf"
  sge_env qconf -Aq "$SGE_BASE/queue.conf" >/dev/null

  sge_env /usr/sbin/sge_execd
  if ! wait_for 30 sge_up; then
    sge_env qstat -f >&2 || true
    die "sge: all.q not ready after 30 s; see $SGE_BASE/spool/execd/*/messages"
  fi
  say "sge: up, $SGE_SLOTS slots in all.q, PE smp (SGE_ROOT=$sge_root)"
}

sge_stop() {
  local f
  if [ -d "$sge_root" ]; then
    sge_env timeout 10 qconf -ke all >/dev/null 2>&1 || true
    sge_env timeout 10 qconf -km >/dev/null 2>&1 || true
  fi
  # qmaster takes 10-15 s to go after -km; stop_pidfile waits for each.
  for f in $(sge_pids); do stop_pidfile "$f"; done
}

# ---------------------------------------------------------------- main

case "${1:-}" in
start)
  if want slurm; then slurm_start; fi
  if want sge; then sge_start; fi;;
stop)
  if want slurm; then slurm_stop; fi
  if want sge; then sge_stop; fi;;
env)
  echo "export SLURM_CONF=$slurm_conf"
  echo "export SGE_ROOT=$sge_root SGE_CELL=default"
  echo "export PATH=$sge_bin:\$PATH";;
status)
  rc=0
  if want slurm; then if slurm_up; then say "slurm: up"; else say "slurm: down"; rc=1; fi; fi
  if want sge; then if sge_up; then say "sge: up"; else say "sge: down"; rc=1; fi; fi
  exit $rc;;
*)
  echo "usage: $0 start|stop|env|status" >&2; exit 2;;
esac
