#!/usr/bin/env bash
# A real OpenSSH sshd on 127.0.0.1:$SSH_PORT for the SSH tests, with
# everything (host key, client keys, authorized keys, configs, log) under
# $SSH_BASE. Nothing in /etc/ssh or ~/.ssh is read or written; the only
# things outside the base are /run/sshd (sshd's compiled-in
# privilege-separation directory) and the user `ippci`, created when
# missing so that tests also log in as a user that is not root.
#
# Usage: scripts/sshd.sh start|stop|env|status
#   start   starts sshd unless both logins already work; returns at once when they do.
#           Not installed or not root: a warning (an error when CI=true)
#   stop    stops the sshd of this base and the sessions it serves
#   env     prints the export line for the ipp ssh wrapper: eval "$(scripts/sshd.sh env)"
#   status  exits 0 when `ci` and `ci-user` both log in
#
# Hosts in $SSH_BASE/ssh_config (use: ssh -F $SSH_BASE/ssh_config HOST ...):
#   ci              root@127.0.0.1:$SSH_PORT
#   ci-user         ippci@127.0.0.1:$SSH_PORT (its own key)
#   localhost-ci    root@localhost:$SSH_PORT, a second name for the same machine
#   ci-unreachable  127.0.0.1:1, where nothing listens
#   ci-badkey       root@127.0.0.2:$SSH_PORT with a key that no account accepts (127.0.0.2:
#                   ssh multiplexes by user@host:port, and on 127.0.0.1 it would ride
#                   on a master connection that `ci` opened with the right key)
#   login-ns        root@10.231.0.2:22, the sshd of scripts/netns-login.sh
#
# Knobs (defaults are what internal/testutil looks for):
#   SSH_BASE=/tmp/ipp-sshd SSH_PORT=2222
# Packages (scripts/install-deps.sh test installs them): openssh-server openssh-client
#
# Facts worth knowing when writing tests against it:
#   - Remote commands get sshd's environment, not the test's: PATH is the
#     login default (Go is not on it in CI), and only LANG and LC_* are
#     accepted from the client (AcceptEnv), as on a stock Debian server.
#   - `ippci` cannot enter root's 0700 directories, and `go test` builds
#     into /tmp/go-build*/ (0700): copy a binary into a 0755 directory before
#     running it as ippci (testutil.SSHServer.Share does).
#   - MaxSessions is sshd's default, 10: one multiplexed connection carries
#     at most 10 sessions at a time, as on most real servers.
set -euo pipefail

BASE=${SSH_BASE:-/tmp/ipp-sshd}
PORT=${SSH_PORT:-2222}
USER_NAME=ippci
USER_HOME=/home/$USER_NAME
SSHD=/usr/sbin/sshd
# The namespace sshd of scripts/netns-login.sh shares this base's keys.
NS_ADDR=10.231.0.2

say() { echo "sshd: $*" >&2; }
die() { say "$*"; exit 1; }
# cannot WHY: sshd cannot be started here at all (not installed, not root).
# In CI that is an error; elsewhere the SSH tests skip loudly, so say so and
# go on.
cannot() {
  if [ "${CI:-}" = true ]; then die "$1"; fi
  say "$1; the SSH tests will be skipped"
  exit 0
}

# wait_for SECONDS CMD...: runs CMD every 0.1 s until it succeeds or time runs out.
wait_for() {
  local limit=$1; shift
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.1
  done
}

# login HOST: one real command over ssh, bounded (a wedged sshd must not hang us).
login() { timeout 15 ssh -F "$BASE/ssh_config" "$1" true </dev/null; }

up() { [ -f "$BASE/ssh_config" ] && login ci && login ci-user; }

# listening: sshd listens on every address of its configuration.
listening() {
  local a
  for a in 127.0.0.1 127.0.0.2; do
    ss -Hltn "src $a and sport = :$PORT" | grep -q . || return 1
  done
}

# ours PID: whether PID is an sshd started with this base's config. A pid
# file can outlive its daemon (a restored snapshot, killed sessions) and its
# number may since belong to another process, even to another sshd.
ours() {
  local pid=$1 comm
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  [ "$comm" = sshd ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-f $BASE/sshd_config"
}

# stop_pidfile FILE: TERM the listening sshd named in FILE and the
# per-connection sshd processes it forked (they outlive the listener
# otherwise), then wait up to 10 s for them to go.
stop_pidfile() {
  local f=$1 pid kids
  [ -s "$f" ] || { rm -f "$f"; return 0; }
  pid=$(cat "$f")
  case "$pid" in ''|*[!0-9]*) rm -f "$f"; return 0;; esac
  if ! ours "$pid"; then
    [ -d "/proc/$pid" ] && say "$f names pid $pid, not our sshd: left alone"
    rm -f "$f"; return 0
  fi
  kids=$(pgrep -P "$pid" -x sshd || true)
  # shellcheck disable=SC2086
  kill "$pid" $kids 2>/dev/null || true
  for p in $pid $kids; do
    wait_for 10 sh -c "! kill -0 $p" || say "sshd pid $p still alive after 10 s"
  done
  rm -f "$f"
}

ensure_user() {
  if ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd --create-home --home-dir "$USER_HOME" --shell /bin/bash --user-group "$USER_NAME" ||
      die "useradd $USER_NAME failed"
    say "created user $USER_NAME"
  fi
  if [ ! -d "$USER_HOME" ]; then
    mkdir -p "$USER_HOME"; chown "$USER_NAME:" "$USER_HOME"; chmod 755 "$USER_HOME"
  fi
  # useradd leaves the password "!" (locked), and without PAM sshd refuses
  # every login, keys included, to a locked account. "*" means: no password
  # can match, but the account is not locked.
  case "$(getent shadow "$USER_NAME" | cut -d: -f2)" in
  '!'*) usermod -p '*' "$USER_NAME";;
  esac
}

keys() {
  mkdir -p "$BASE/authorized_keys"
  # sshd reads an account's authorized keys as that account: ippci must be
  # able to walk here. Private keys stay 0600.
  chmod 755 "$BASE" "$BASE/authorized_keys"
  local k
  for k in host_ed25519 id_root id_$USER_NAME id_refused; do
    [ -s "$BASE/$k" ] && [ -s "$BASE/$k.pub" ] || { rm -f "$BASE/$k" "$BASE/$k.pub"; ssh-keygen -q -t ed25519 -N '' -C "ipp-ci-$k" -f "$BASE/$k"; }
  done
  cp "$BASE/id_root.pub" "$BASE/authorized_keys/root"
  cp "$BASE/id_$USER_NAME.pub" "$BASE/authorized_keys/$USER_NAME"
  chmod 644 "$BASE/authorized_keys/root" "$BASE/authorized_keys/$USER_NAME"
}

# write FILE: stdin to FILE atomically, so that a test reading the client
# config while another process restarts sshd never sees half a file.
write() { cat > "$1.tmp.$$"; mv -f "$1.tmp.$$" "$1"; }

write_configs() {
  write "$BASE/sshd_config" <<EOF
# Written by scripts/sshd.sh: the test sshd, on loopback only.
ListenAddress 127.0.0.1:$PORT
ListenAddress 127.0.0.2:$PORT
HostKey $BASE/host_ed25519
PidFile $BASE/sshd.pid
AuthorizedKeysFile $BASE/authorized_keys/%u
AllowUsers root $USER_NAME
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The base is under /tmp, world-writable: the ownership walk would refuse it.
StrictModes no
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
GatewayPorts no
X11Forwarding no
PrintMotd no
PrintLastLog no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
# INFO logs one "Accepted publickey" line per connection: tests count them.
LogLevel INFO
EOF
  local hostkey
  hostkey=$(cut -d' ' -f1,2 "$BASE/host_ed25519.pub")
  # Known in advance, so StrictHostKeyChecking can be yes: accept-new would
  # have concurrent first connections race to append the same lines.
  write "$BASE/known_hosts" <<EOF
[127.0.0.1]:$PORT $hostkey
[localhost]:$PORT $hostkey
[127.0.0.2]:$PORT $hostkey
$NS_ADDR $hostkey
EOF
  chmod 644 "$BASE/known_hosts"
  write "$BASE/ssh_config" <<EOF
# Written by scripts/sshd.sh: ssh -F $BASE/ssh_config HOST
Host ci
  HostName 127.0.0.1
  Port $PORT
  User root
  IdentityFile $BASE/id_root
Host ci-user
  HostName 127.0.0.1
  Port $PORT
  User $USER_NAME
  IdentityFile $BASE/id_$USER_NAME
Host localhost-ci
  HostName localhost
  Port $PORT
  User root
  IdentityFile $BASE/id_root
Host ci-unreachable
  HostName 127.0.0.1
  Port 1
  User root
  IdentityFile $BASE/id_root
Host ci-badkey
  HostName 127.0.0.2
  Port $PORT
  User root
  IdentityFile $BASE/id_refused
Host login-ns
  HostName $NS_ADDR
  Port 22
  User root
  IdentityFile $BASE/id_root
Host *
  BatchMode yes
  IdentitiesOnly yes
  AddressFamily inet
  UserKnownHostsFile $BASE/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  ConnectTimeout 5
  LogLevel ERROR
EOF
  chmod 644 "$BASE/ssh_config"
}

start() {
  [ -x "$SSHD" ] && command -v ssh >/dev/null && command -v ssh-keygen >/dev/null ||
    cannot "openssh-server/openssh-client not installed (scripts/install-deps.sh test)"
  [ "$(id -u)" = 0 ] || cannot "starting it needs root (it logs in as root and as $USER_NAME)"
  mkdir -p "$BASE"
  # One start at a time: test processes of several packages may call us at once.
  exec 9> "$BASE/.lock"
  flock -w 60 9 || die "another scripts/sshd.sh holds $BASE/.lock for 60 s"
  ensure_user
  keys
  write_configs
  local pid
  pid=$(cat "$BASE/sshd.pid" 2>/dev/null || true)
  if up 2>/dev/null; then
    if cmp -s "$BASE/sshd_config" "$BASE/sshd_config.running" || ! ours "$pid"; then
      say "already up on 127.0.0.1:$PORT (pid ${pid:-?})"; return 0
    fi
    # Started from an older version of this script: SIGHUP makes sshd
    # re-execute itself with the new configuration and keeps open sessions
    # (other test processes may be using them).
    "$SSHD" -t -f "$BASE/sshd_config" || die "sshd rejects $BASE/sshd_config"
    kill -HUP "$pid"
    wait_for 20 listening || die "sshd (pid $pid) did not take up its new configuration; see $BASE/sshd.log"
    cp "$BASE/sshd_config" "$BASE/sshd_config.running"
    wait_for 20 up || die "sshd reloaded but a login failed; see $BASE/sshd.log"
    say "reloaded with a new configuration on 127.0.0.1:$PORT (pid $pid)"; return 0
  fi
  stop_pidfile "$BASE/sshd.pid"
  if ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q .; then
    die "port $PORT is taken by another program ($(ss -Hltnp "sport = :$PORT" | head -n1)); set SSH_PORT"
  fi
  # sshd refuses to start without it.
  mkdir -p /run/sshd; chmod 755 /run/sshd
  "$SSHD" -t -f "$BASE/sshd_config" || die "sshd rejects $BASE/sshd_config"
  : > "$BASE/sshd.log"
  # An absolute path: sshd re-executes itself for every connection. It daemonizes.
  # 9>&-: the daemon must not inherit (and hold forever) the start lock.
  "$SSHD" -f "$BASE/sshd_config" -E "$BASE/sshd.log" 9>&- ||
    { tail -n 20 "$BASE/sshd.log" >&2 || true; die "sshd did not start; see $BASE/sshd.log"; }
  cp "$BASE/sshd_config" "$BASE/sshd_config.running"
  if ! wait_for 20 up; then
    tail -n 20 "$BASE/sshd.log" >&2 || true
    login ci || true; login ci-user || true
    die "sshd started but a login failed (see $BASE/sshd.log; a login shell that hangs in ~/.bashrc also does this)"
  fi
  say "up on 127.0.0.1:$PORT (pid $(cat "$BASE/sshd.pid")): ssh -F $BASE/ssh_config ci|ci-user|localhost-ci"
}

case "${1:-}" in
start) start;;
stop)
  stop_pidfile "$BASE/sshd.pid";;
env)
  echo "export IPP_SSH_ARGS='-F $BASE/ssh_config'";;
status)
  if up 2>/dev/null; then say "up on 127.0.0.1:$PORT"; else say "down"; exit 1; fi;;
*)
  echo "usage: $0 start|stop|env|status" >&2; exit 2;;
esac
