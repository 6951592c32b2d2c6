#!/usr/bin/env bash
# Installs the Debian packages the build, the tests or the benchmarks need.
# Usage: scripts/install-deps.sh [test|bench]   (default: test)
# Idempotent: packages already present are not touched, so a warm machine
# pays only a dpkg query.
set -euo pipefail

want=(
  libzmq3-dev pkg-config gcc          # libzmq transport (cgo)
  python3-ipyparallel python3-zmq python3-numpy   # interop peer (Python ipyparallel 7.1)
  openmpi-bin libopenmpi-dev mpich libmpich-dev    # MPI: the mpi package is tested against both
)
if [ "${1:-test}" = test ] || [ "${1:-test}" = bench ]; then
  # Real schedulers for the batch launchers (scripts/batch-systems.sh starts
  # them). Not slurm-wlm-torque: its qsub/qstat collide with Grid Engine's.
  want+=(slurm-wlm munge gridengine-master gridengine-exec gridengine-client)
  # A real sshd on loopback and a network namespace for the SSH tests
  # (scripts/sshd.sh, scripts/netns-login.sh).
  want+=(openssh-server openssh-client iproute2)
fi
if [ "${1:-test}" = bench ]; then
  want+=(python3-dask python3-distributed)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages: ${missing[*]}" >&2
  echo "run: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "installing: ${missing[*]}"
timeout 600 apt-get update -qq
timeout 1200 apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null
