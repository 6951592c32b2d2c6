#!/usr/bin/env bash
# A "login node" with a network of its own, for the tunnel tests: a network
# namespace ipp-login joined to this machine by one veth pair
#   host side       ipp-login-h 10.231.0.1/24
#   namespace side  ipp-login-n 10.231.0.2/24   (and its own loopback, up)
# and a second sshd INSIDE the namespace on 10.231.0.2:22, with the keys of
# scripts/sshd.sh (host `login-ns` in $SSH_BASE/ssh_config, root).
# A program started in the namespace on its 127.0.0.1 (ssh login-ns CMD, or
# ip netns exec ipp-login CMD) cannot be reached from this machine except
# through an ssh port forward: that is what the tunnel tests need. No
# forwarding or NAT is set up: traffic stays on the veth pair.
#
# Usage: scripts/netns-login.sh start|stop|status
#   start   creates the namespace and starts its sshd unless `ssh login-ns` works
#           already. Not root or no `ip`: a warning (an error when CI=true)
#   stop    ends every process left in the namespace, then deletes it (and the veth pair)
#   status  exits 0 when `ssh login-ns` logs in
#
# Knobs: SSH_BASE=/tmp/ipp-sshd (shared with scripts/sshd.sh, which start runs first)
# Packages (scripts/install-deps.sh test): iproute2 openssh-server openssh-client
set -euo pipefail

BASE=${SSH_BASE:-/tmp/ipp-sshd}
NS=ipp-login
HOST_IF=ipp-login-h
NS_IF=ipp-login-n
HOST_ADDR=10.231.0.1
NS_ADDR=10.231.0.2
DIR=$BASE/login-ns
SSHD=/usr/sbin/sshd

say() { echo "netns-login: $*" >&2; }
die() { say "$*"; exit 1; }
cannot() {
  if [ "${CI:-}" = true ]; then die "$1"; fi
  say "$1; the tests that need it will be skipped"
  exit 0
}

wait_for() {
  local limit=$1; shift
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.1
  done
}

ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$NS"; }

# Only asked once the namespace exists: without it 10.231.0.2 would be
# routed out of this machine, and tests must keep their traffic local.
up() { ns_exists && timeout 15 ssh -F "$BASE/ssh_config" login-ns true </dev/null; }

# ours PID: an sshd started with the namespace's config (see scripts/sshd.sh).
ours() {
  local comm
  comm=$(cat "/proc/$1/comm" 2>/dev/null) || return 1
  [ "$comm" = sshd ] || return 1
  tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -qF -- "-f $DIR/sshd_config"
}

stop() {
  local pid p pids
  if [ -s "$DIR/sshd.pid" ]; then
    pid=$(cat "$DIR/sshd.pid")
    case "$pid" in
    ''|*[!0-9]*) ;;
    *) if ours "$pid"; then kill "$pid" 2>/dev/null || true
       elif [ -d "/proc/$pid" ]; then say "$DIR/sshd.pid names pid $pid, not our sshd: left alone"; fi;;
    esac
    rm -f "$DIR/sshd.pid"
  fi
  if ns_exists; then
    # Whatever tests left running in the namespace (controllers, engines,
    # sshd sessions) is ours to end: the namespace goes away with it.
    pids=$(ip netns pids "$NS" 2>/dev/null || true)
    if [ -n "$pids" ]; then
      # shellcheck disable=SC2086
      kill $pids 2>/dev/null || true
      for p in $pids; do
        if ! wait_for 10 sh -c "! kill -0 $p"; then kill -KILL "$p" 2>/dev/null || true; fi
      done
    fi
    ip netns del "$NS" || die "ip netns del $NS failed"
  fi
  # Deleting the namespace deletes the pair; a half-made start may have left the host end.
  if ip link show "$HOST_IF" >/dev/null 2>&1; then ip link del "$HOST_IF"; fi
  return 0
}

start() {
  command -v ip >/dev/null || cannot "ip not installed (apt-get install iproute2)"
  [ "$(id -u)" = 0 ] || cannot "network namespaces need root"
  # Keys, user and client config come from the loopback sshd's base.
  "$(dirname "$0")/sshd.sh" start
  [ -s "$BASE/ssh_config" ] || cannot "no $BASE/ssh_config (scripts/sshd.sh start did not run)"
  mkdir -p "$DIR"
  exec 9> "$BASE/.netns.lock"
  flock -w 60 9 || die "another scripts/netns-login.sh holds $BASE/.netns.lock for 60 s"
  if up 2>/dev/null; then say "already up: ssh -F $BASE/ssh_config login-ns"; return 0; fi
  stop
  # After stop none of ours is left: an address in the subnet is someone else's.
  if ip -o addr show | grep -q ' 10\.231\.0\.'; then
    die "10.231.0.0/24 is already used on this machine: $(ip -o addr show | grep ' 10\.231\.0\.' | head -n1)"
  fi
  ip netns add "$NS" || cannot "ip netns add $NS failed (no network namespaces here?)"
  ip link add "$HOST_IF" type veth peer name "$NS_IF" netns "$NS" ||
    { stop; cannot "cannot create a veth pair (no veth support?)"; }
  ip addr add "$HOST_ADDR/24" dev "$HOST_IF"
  ip link set "$HOST_IF" up
  ip -n "$NS" link set lo up
  ip -n "$NS" addr add "$NS_ADDR/24" dev "$NS_IF"
  ip -n "$NS" link set "$NS_IF" up
  # The same host key as the loopback sshd: known_hosts already lists 10.231.0.2.
  cat > "$DIR/sshd_config" <<EOF
# Written by scripts/netns-login.sh: the login node's sshd, inside namespace $NS.
ListenAddress $NS_ADDR:22
HostKey $BASE/host_ed25519
PidFile $DIR/sshd.pid
AuthorizedKeysFile $BASE/authorized_keys/%u
AllowUsers root ippci
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
GatewayPorts no
X11Forwarding no
PrintMotd no
PrintLastLog no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel INFO
EOF
  mkdir -p /run/sshd; chmod 755 /run/sshd
  "$SSHD" -t -f "$DIR/sshd_config" || die "sshd rejects $DIR/sshd_config"
  : > "$DIR/sshd.log"
  ip netns exec "$NS" "$SSHD" -f "$DIR/sshd_config" -E "$DIR/sshd.log" 9>&- ||
    { tail -n 20 "$DIR/sshd.log" >&2 || true; stop; die "sshd in $NS did not start; see $DIR/sshd.log"; }
  if ! wait_for 20 up; then
    tail -n 20 "$DIR/sshd.log" >&2 || true
    die "sshd in $NS started but ssh login-ns fails (see $DIR/sshd.log)"
  fi
  say "up: namespace $NS ($NS_ADDR), ssh -F $BASE/ssh_config login-ns; ip netns exec $NS CMD"
}

case "${1:-}" in
start) start;;
stop) stop;;
status) if up; then say "up"; else say "down"; exit 1; fi;;
*) echo "usage: $0 start|stop|status" >&2; exit 2;;
esac
