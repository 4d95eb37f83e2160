#!/bin/bash
# The demo until the full cluster exists: vip-agent moves a virtual IP from node n1 to node n2
# on one machine. Three network namespaces: a switch (bridge) and two nodes, addresses from
# 198.18.0.0/15 only, nothing attached to the root namespace. A client in the switch
# namespace pings the VIP every 20 ms; the script prints what happened and when.
# Everything it creates is removed on exit, also on Ctrl-C.
set -euo pipefail

AGENT=$(readlink -f "${1:-target/x86_64-unknown-linux-gnu/release/vip-agent}")
[ -x "$AGENT" ] || { echo "no vip-agent at $AGENT; run 'make build'" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root (network namespaces)" >&2; exit 1; }

PFX=ferroha-demo-$$
SW=$PFX-sw N1=$PFX-n1 N2=$PFX-n2
VIP=198.18.10.100
WORK=$(mktemp -d /tmp/ferroha-demo.XXXXXX)
PING_PID=

cleanup() {
  set +e
  [ -n "$PING_PID" ] && kill "$PING_PID" 2>/dev/null && wait "$PING_PID" 2>/dev/null
  # Stop background announcers by pid (recorded by the agent), then the namespaces.
  for n in $N1 $N2; do
    for f in "$WORK/$n"/ferroha-vip/*.pid; do
      [ -f "$f" ] && kill "$(cut -d' ' -f1 "$f")" 2>/dev/null
    done
    ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$n" 2>/dev/null
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
agent() { # agent NODE ACTION [flags]: run vip-agent on a node, print its exit code
  local node=$1; shift
  local rc=0
  ip netns exec "$node" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HA_RSCTMP="$WORK/$node" \
    "$AGENT" "$@" --ip $VIP --cidr_netmask 24 --nic eth0 2>>"$WORK/agent.log" || rc=$?
  echo $rc
}

ip netns add $SW; ip netns add $N1; ip netns add $N2
ip -n $SW link add br0 type bridge stp_state 0 forward_delay 0
ip -n $SW link set br0 up
ip -n $SW addr add 198.18.10.254/24 dev br0
i=1
for n in $N1 $N2; do
  ip -n "$n" link set lo up
  ip -n "$n" link add eth0 type veth peer name port$i netns $SW
  ip -n "$n" addr add 198.18.10.$i/24 dev eth0
  ip -n "$n" link set eth0 up
  ip -n $SW link set port$i master br0 up
  mkdir -p "$WORK/$n"
  i=$((i + 1))
done
mac() { ip -n "$1" -br link show eth0 | awk '{print $3}'; }
MAC1=$(mac $N1) MAC2=$(mac $N2)
say "network up: switch 198.18.10.254, n1 198.18.10.1 ($MAC1), n2 198.18.10.2 ($MAC2)"

rc=$(agent $N1 start); say "n1: vip-agent start -> rc $rc"
rc=$(agent $N1 monitor); say "n1: vip-agent monitor -> rc $rc (0 = running)"
ip netns exec $SW ping -c1 -W1 $VIP >/dev/null && say "client: $VIP answers; switch's ARP entry: $(ip -n $SW neigh show $VIP | awk '{print $5}') (n1)"

ip netns exec $SW ping -D -n -i 0.02 $VIP > "$WORK/ping.log" 2>&1 &
PING_PID=$!
sleep 1

say "FAILURE: n1's link is cut (its VIP is still configured but unreachable)"
ip -n $N1 link set eth0 down
CUT=$(now)
rc=$(agent $N1 monitor); say "n1: vip-agent monitor -> rc $rc (1 = NIC down: the agent notices)"
sleep 0.5
say "takeover: n2 runs vip-agent start"
rc=$(agent $N2 start); STARTED=$(now); say "n2: vip-agent start -> rc $rc"
until [ "$(ip -n $SW neigh show $VIP | awk '{print $5}')" = "$MAC2" ]; do sleep 0.005; done
say "switch's ARP entry for $VIP now points at n2 ($MAC2): gratuitous ARP arrived"
sleep 1
kill $PING_PID; wait $PING_PID 2>/dev/null || true; PING_PID=
GAP=$(awk -F'[][]' '/bytes from/ { t = $2 * 1000; if (p && t - p > g) g = t - p; p = t } END { printf "%d", g }' "$WORK/ping.log")
say "client: longest gap between ping replies ${GAP} ms (of which ~500 ms is the pause before takeover)"

say "n1 comes back: link up; the old copy must go (reverse order: VIP down first)"
ip -n $N1 link set eth0 up
rc=$(agent $N1 stop); say "n1: vip-agent stop -> rc $rc"
rc=$(agent $N1 monitor); say "n1: vip-agent monitor -> rc $rc (7 = not running)"
rc=$(agent $N2 monitor --check-level 10); say "n2: vip-agent monitor depth 10 -> rc $rc (0: no other host answers for the VIP)"
rc=$(agent $N2 stop); say "n2: vip-agent stop -> rc $rc"
say "agent log:"; sed 's/^/          /' "$WORK/agent.log"
say "done; removing the namespaces"
