#!/bin/sh
# Runs a whole IPython Parallel cluster inside one Slurm allocation: the
# controller where this script runs, the engines as one srun step (MPI
# ranks of one world), then the client program, then stops everything.
#
#   sbatch examples/slurm-batch/job.sh
#   sbatch --ntasks=16 --partition=short examples/slurm-batch/job.sh
#
# Environment (sbatch passes yours to the job):
#   IPCLUSTER   ipcluster binary            (default: bin/ipcluster if present, else ipcluster on PATH)
#   IPP_CLIENT  the example's client binary (default: bin/slurm-batch-client if present, else slurm-batch-client on PATH)
#   IPYTHONDIR  where the profile lives     (default: ~/.ipython)
# The last line of the output is "slurm-batch job: OK" or
# "slurm-batch job: FAILED (exit N)"; the job's exit code says the same.
#
#SBATCH --job-name=ipp-slurm-batch
#SBATCH --ntasks=4
#SBATCH --time=00:10:00
#SBATCH --output=ipp-slurm-batch-%j.out
set -eu

pick() { # pick VALUE LOCAL-PATH NAME: VALUE if set, else LOCAL-PATH if executable, else NAME
	if [ -n "$1" ]; then echo "$1"; elif [ -x "$2" ]; then echo "$2"; else echo "$3"; fi
}
IPCLUSTER=$(pick "${IPCLUSTER:-}" bin/ipcluster ipcluster)
IPP_CLIENT=$(pick "${IPP_CLIENT:-}" bin/slurm-batch-client slurm-batch-client)
: "${SLURM_JOB_ID:?run this script with sbatch (or inside salloc)}"
N=${SLURM_NTASKS:-1}
CLUSTER_ID=job-$SLURM_JOB_ID

say() { echo "slurm-batch job: $*"; }
run() { say "+ $*"; "$@"; }

finish() {
	status=$?
	trap - EXIT
	# Stop even after a failure, so that the step does not hold the
	# allocation until the time limit.
	say "+ $IPCLUSTER stop --cluster-id $CLUSTER_ID"
	"$IPCLUSTER" stop --cluster-id "$CLUSTER_ID" || [ "$status" -ne 0 ] || status=1
	if [ "$status" -eq 0 ]; then
		say "OK"
	else
		say "FAILED (exit $status)"
	fi
	exit "$status"
}
trap finish EXIT

say "job $SLURM_JOB_ID on $(hostname), $N tasks, cluster id $CLUSTER_ID"
run "$IPCLUSTER" start --launcher srun -n "$N" --cluster-id "$CLUSTER_ID" --daemonize
run "$IPCLUSTER" list
run "$IPP_CLIENT" -cluster-id "$CLUSTER_ID" -n "$N"
