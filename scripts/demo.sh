#!/usr/bin/env bash
# make demo: start a local cluster of 4 engines, run the examples against it,
# stop it. Uses a private IPYTHONDIR so it never touches ~/.ipython.
set -euo pipefail
cd "$(dirname "$0")/.."
export IPYTHONDIR="${IPYTHONDIR:-$(mktemp -d /tmp/ipp-demo-XXXXXX)}"
export IPP_NONINTERACTIVE="${IPP_NONINTERACTIVE:-}"
bin=bin/ipcluster
go build -o bin/examples/hello ./examples/hello
go build -o bin/examples/pi ./examples/pi

stop() { "$bin" stop >/dev/null 2>&1 || true; }
trap stop EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "ipcluster start -n 4 --daemonize"
"$bin" start -n 4 --daemonize
step "ipcluster list"
"$bin" list
step "ipcluster exec: interpreted Go on every engine, state kept between calls"
"$bin" exec 'x := 6 * 7'
"$bin" exec 'fmt.Println("x =", x, "on", os.Getpid())'
step "examples/hello: Hello, World from every engine"
bin/examples/hello -n 4
step "examples/pi: Monte Carlo pi through the load-balanced scheduler"
bin/examples/pi -batches 48 -per-batch 200000
step "ipcluster stop"
"$bin" stop
trap - EXIT
left=$(pgrep -f "$PWD/$bin (controller|engine)" || true)
if [ -n "$left" ]; then
  echo "processes left running: $left" >&2
  exit 1
fi
echo "demo done: the cluster ran real work and stopped cleanly"
