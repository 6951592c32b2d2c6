#!/bin/sh
# Run from a login node: submits the engines as a Slurm job
# (ipcluster start --launcher slurm), runs the client program against them
# from here, stops the cluster, and checks that no job of it is left in
# squeue.
#
#   examples/slurm-batch/login.sh
#   ENGINES=32 IPCLUSTER_ARGS="--partition=short --walltime=00:30:00 --ip=*" examples/slurm-batch/login.sh
#
# Environment:
#   IPCLUSTER       ipcluster binary            (default: bin/ipcluster if present, else ipcluster on PATH)
#   IPP_CLIENT      the example's client binary (default: bin/slurm-batch-client if present, else slurm-batch-client on PATH)
#   ENGINES         engines to start            (default: 4)
#   CLUSTER_ID      cluster id                  (default: login-<this shell's pid>)
#   IPCLUSTER_ARGS  more 'ipcluster start' flags, split on blanks (--partition, --account,
#                   --walltime, --ip='*' when compute nodes are other hosts; see docs/launchers.md)
# The last line of the output is "slurm-batch login: OK" or
# "slurm-batch login: FAILED (exit N)", and the exit status says the same.
set -eu

pick() { # pick VALUE LOCAL-PATH NAME: VALUE if set, else LOCAL-PATH if executable, else NAME
	if [ -n "$1" ]; then echo "$1"; elif [ -x "$2" ]; then echo "$2"; else echo "$3"; fi
}
IPCLUSTER=$(pick "${IPCLUSTER:-}" bin/ipcluster ipcluster)
IPP_CLIENT=$(pick "${IPP_CLIENT:-}" bin/slurm-batch-client slurm-batch-client)
N=${ENGINES:-4}
CLUSTER_ID=${CLUSTER_ID:-login-$$}
JOB_NAME=ipengine-$CLUSTER_ID # the slurm launcher's default job name

say() { echo "slurm-batch login: $*"; }
run() { say "+ $*"; "$@"; }

started=no
finish() {
	status=$?
	trap - EXIT
	if [ "$started" = yes ]; then
		# A failure above must not leave engines holding nodes.
		say "+ $IPCLUSTER stop --cluster-id $CLUSTER_ID"
		"$IPCLUSTER" stop --cluster-id "$CLUSTER_ID" || [ "$status" -ne 0 ] || status=1
		say "+ squeue --noheader --user=$(id -un) --name=$JOB_NAME"
		left=$(squeue --noheader --user="$(id -un)" --name="$JOB_NAME" --format='%i %T' 2>&1) || left="squeue failed: $left"
		if [ -n "$left" ]; then
			say "left in the queue: $left"
			[ "$status" -ne 0 ] || status=1
		else
			say "squeue: no job of cluster $CLUSTER_ID left"
		fi
	fi
	if [ "$status" -eq 0 ]; then
		say "OK"
	else
		say "FAILED (exit $status)"
	fi
	exit "$status"
}
trap finish EXIT

say "submitting $N engines from $(hostname), cluster id $CLUSTER_ID"
started=yes
# shellcheck disable=SC2086 # IPCLUSTER_ARGS is a list of flags
run "$IPCLUSTER" start --launcher slurm -n "$N" --cluster-id "$CLUSTER_ID" --daemonize ${IPCLUSTER_ARGS:-}
run "$IPCLUSTER" list
run "$IPP_CLIENT" -cluster-id "$CLUSTER_ID" -n "$N"
