#!/usr/bin/env bash
# Build or remove the xbond netns testbed (DESIGN.md section 4).
#
#   topo.sh up PREFIX [MEMBERS] [SWITCH] [VLANPEER] [PEERS]
#                                 namespaces PREFIX-h (xbond host), PREFIX-s (switch),
#                                 PREFIX-p (peer); MEMBERS veth pairs mN <-> sN (default 2);
#                                 SWITCH is `bridge` (default: a Linux bridge joins sN and sp)
#                                 or `none` (the caller puts a switch there: Open vSwitch,
#                                 or a second xbond); VLANPEER `vlan` adds PREFIX-q, a peer
#                                 for a VLAN (q0 <-> sq, left for the switch to tag);
#                                 PEERS (default 1) peers on the bridge: PREFIX-p, then
#                                 PREFIX-p1.. (p0 = 198.18.0.(2+i)/24, MAC 02:00:00:00:02:0i)
#   topo.sh down PREFIX           remove them (safe to run twice)
#
# host  PREFIX-h: m0..mN-1 (one queue each, MAC 02:00:00:00:01:0N), no addresses;
#                 xbond puts bond0 here.
# switch PREFIX-s: s0..sN-1 and sp enslaved to Linux bridge br0.
# peer  PREFIX-p: p0 = 198.18.0.2/24, MAC 02:00:00:00:02:00, TX checksum offload off.
# Addresses come from 198.18.0.0/15; nothing touches the root namespace.
set -euo pipefail

cmd=${1:?usage: topo.sh up|down PREFIX [MEMBERS]}
P=${2:?usage: topo.sh up|down PREFIX [MEMBERS]}
N=${3:-2}
SWITCH=${4:-bridge}
VLANPEER=${5:-}
PEERS=${6:-1}
H="$P-h" S="$P-s" R="$P-p" Q="$P-q"

down() {
    for ns in "$H" "$S" "$R" "$Q" "$R"1 "$R"2 "$R"3 "$R"4 "$R"5 "$R"6 "$R"7; do
        ip netns del "$ns" 2>/dev/null || true
    done
}

up() {
    down
    ip netns add "$H"
    ip netns add "$S"
    ip netns add "$R"
    for ns in "$H" "$S" "$R"; do
        ip -n "$ns" link set lo up
        # The namespaces' own stacks must not answer ARP for addresses on other
        # interfaces (AFXDP.md gotcha 13).
        ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1
    done
    if [ "$SWITCH" = bridge ]; then
        ip -n "$S" link add br0 type bridge
        ip -n "$S" link set br0 type bridge stp_state 0 forward_delay 0 ageing_time 30000
        ip -n "$S" link set br0 up
    fi
    for i in $(seq 0 $((N - 1))); do
        ip -n "$H" link add "m$i" numtxqueues 1 numrxqueues 1 address "02:00:00:00:01:0$i" \
            type veth peer name "s$i" numtxqueues 1 numrxqueues 1 address "02:00:00:00:03:0$i" netns "$S"
        [ "$SWITCH" = bridge ] && ip -n "$S" link set "s$i" master br0
        ip -n "$S" link set "s$i" up
        ip -n "$H" link set "m$i" up
    done
    ip -n "$R" link add p0 numtxqueues 1 numrxqueues 1 address 02:00:00:00:02:00 \
        type veth peer name sp numtxqueues 1 numrxqueues 1 netns "$S"
    [ "$SWITCH" = bridge ] && ip -n "$S" link set sp master br0
    ip -n "$S" link set sp up
    # Frames a user-space switch forwards leave with full checksums.
    ip netns exec "$S" ethtool -K sp tx off >/dev/null
    ip -n "$R" addr add 198.18.0.2/24 dev p0
    ip -n "$R" link set p0 up
    # Frames from the peer enter an XSK on the host side: send them with full
    # checksums (AFXDP.md gotcha 14).
    ip netns exec "$R" ethtool -K p0 tx off >/dev/null
    for i in $(seq 1 $((PEERS - 1))); do
        # More peers on the bridge, for the load-balancing modes.
        ip netns add "$R$i"
        ip -n "$R$i" link set lo up
        ip netns exec "$R$i" sysctl -qw net.ipv4.conf.all.arp_ignore=1
        ip -n "$R$i" link add p0 numtxqueues 1 numrxqueues 1 address "02:00:00:00:02:0$i" \
            type veth peer name "sp$i" numtxqueues 1 numrxqueues 1 netns "$S"
        [ "$SWITCH" = bridge ] && ip -n "$S" link set "sp$i" master br0
        ip -n "$S" link set "sp$i" up
        ip netns exec "$S" ethtool -K "sp$i" tx off >/dev/null
        ip -n "$R$i" addr add "198.18.0.$((2 + i))/24" dev p0
        ip -n "$R$i" link set p0 up
        ip netns exec "$R$i" ethtool -K p0 tx off >/dev/null
    done
    if [ "$VLANPEER" = vlan ]; then
        # q0 = 198.18.87.2/24, MAC 02:00:00:00:02:87: untagged here; the
        # switch puts sq in the VLAN.
        ip netns add "$Q"
        ip -n "$Q" link set lo up
        ip netns exec "$Q" sysctl -qw net.ipv4.conf.all.arp_ignore=1
        ip -n "$Q" link add q0 numtxqueues 1 numrxqueues 1 address 02:00:00:00:02:87 \
            type veth peer name sq numtxqueues 1 numrxqueues 1 netns "$S"
        ip -n "$S" link set sq up
        ip netns exec "$S" ethtool -K sq tx off >/dev/null
        ip -n "$Q" addr add 198.18.87.2/24 dev q0
        ip -n "$Q" link set q0 up
        ip netns exec "$Q" ethtool -K q0 tx off >/dev/null
    fi
}

case "$cmd" in
up) up ;;
down) down ;;
*) echo "usage: topo.sh up|down PREFIX [MEMBERS]" >&2; exit 2 ;;
esac
