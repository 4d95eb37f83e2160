#!/bin/bash
# The demo: a two-node hb-monitor cluster on this one machine moving a virtual IP when the
# active node dies. Three network namespaces (a switch and two nodes, each node also with its
# own mount and UTS namespace: its own hostname and /run), addresses from 198.18.0.0/15 only,
# nothing attached to the root namespace. A client pings the VIP every 10 ms; the script kills
# the active node's daemon (kill -9) and cuts its link, and prints what happened and when.
# It becomes the full MySQL-on-DRBD demo as the project grows. Everything it creates is
# removed on exit, also on Ctrl-C.
set -euo pipefail

BIN=$(readlink -f "${1:-target/x86_64-unknown-linux-gnu/release}")
[ -x "$BIN/hb-monitor" ] || { echo "no hb-monitor in $BIN; run 'make build'" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root (network namespaces)" >&2; exit 1; }

PFX=ferroha-demo-$$
SW=$PFX-sw
VIP=198.18.10.100
WORK=$(mktemp -d /tmp/ferroha-demo.XXXXXX)
PIDS=()

cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  for n in n1 n2; do
    ip netns pids "$PFX-$n" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$PFX-$n" 2>/dev/null
  done
  ip netns pids "$SW" 2>/dev/null | xargs -r kill -9 2>/dev/null
  ip netns del "$SW" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

T0=$(date +%s%N)
now() { echo $(( ($(date +%s%N) - T0) / 1000000 )); }
say() { printf '%7s ms  %s\n' "$(now)" "$*"; }

# The agents, installed as `make install` would, into the work directory.
make -s -o build install DESTDIR="$WORK/root" BIN_DIR="$BIN" >/dev/null
OCF="$WORK/root/usr/lib/ocf"

ip netns add $SW
ip -n $SW link add br0 type bridge stp_state 0 forward_delay 0
ip -n $SW link set br0 up
ip -n $SW addr add 198.18.10.254/24 dev br0
for i in 1 2; do
  n=$PFX-n$i
  ip netns add "$n"
  ip -n "$n" link set lo up
  ip -n "$n" link add eth0 type veth peer name port$i netns $SW
  ip -n "$n" addr add 198.18.10.$i/24 dev eth0
  ip -n "$n" link set eth0 up
  ip -n $SW link set port$i master br0 up
  mkdir -p "$WORK/n$i"
  cat > "$WORK/n$i/ha.cf" <<CF
keepalive 20ms
deadtime 100ms
initdead 5
ucast eth0 198.18.10.$((3 - i))
auto_failback off
logfile $WORK/n$i/ha-log
node n1
node n2
CF
  echo "n1 IPaddr2::$VIP/24/eth0" > "$WORK/n$i/haresources"
  printf 'auth 1\n1 sha256 ferroha-demo-secret\n' > "$WORK/n$i/authkeys"
  chmod 600 "$WORK/n$i/authkeys"
done
say "network up: switch 198.18.10.254, n1 198.18.10.1, n2 198.18.10.2; VIP $VIP preferred on n1"

start_node() { # each node: its own hostname and /run, hb-monitor in the foreground
  local i=$1
  ip netns exec "$PFX-n$i" unshare --mount --uts --propagation private sh -c "
    mount -t tmpfs tmpfs /run; hostname n$i
    exec '$BIN/hb-monitor' run -c '$WORK/n$i' --state-dir '$WORK/n$i/state' --ocf-root '$OCF'" \
    2>>"$WORK/n$i/stderr" &
  PIDS+=($!)
  eval "NODE$i=$!"
  disown $!   # killed on purpose later: no job-control noise
}
holds_vip() { ip -n "$PFX-n$1" -o addr show dev eth0 | grep -q " $VIP/"; }

start_node 1
start_node 2
until holds_vip 1; do sleep 0.01; done
say "n1 holds the VIP (hb-monitor ran vip-agent start); n2 is standby"

ip netns exec $SW ping -D -n -i 0.01 $VIP > "$WORK/ping.log" 2>&1 &
PIDS+=($!)
PING=$!
disown $PING
sleep 1

say "FAILURE: n1 dies (kill -9 of its hb-monitor, its link cut)"
CUT=$(now)
kill -9 "$NODE1"
ip -n "$PFX-n1" link set eth0 down
until holds_vip 2; do sleep 0.005; done
say "n2 holds the VIP: takeover $(( $(now) - CUT )) ms after the failure (deadtime 100 ms)"
sleep 1
kill "$PING" 2>/dev/null; sleep 0.1
GAP=$(awk -F'[][]' '/bytes from/ { t = $2 * 1000; if (p && t - p > g) g = t - p; p = t } END { printf "%d", g }' "$WORK/ping.log")
say "client: longest gap between ping replies ${GAP} ms"

say "n1 comes back: link up; its old VIP copy must go before its daemon restarts"
ip -n "$PFX-n1" link set eth0 up
ip netns exec "$PFX-n1" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  "$OCF/resource.d/ferroha/vip" stop --ip $VIP --cidr_netmask 24 --nic eth0 2>/dev/null || true
start_node 1
sleep 1.5
holds_vip 2 && ! holds_vip 1 && say "n1 rejoined as standby (auto_failback off): the VIP stays on n2"
say "n2's log:"; sed 's/^/          /' "$WORK/n2/ha-log" | cut -c1-140
say "done; removing the namespaces"
