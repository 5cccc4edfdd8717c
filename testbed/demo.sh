#!/usr/bin/env bash
# The demo of the README: a netns testbed, an active-backup bond, a ping
# through bond0, `xbond status`, a failover, and a full teardown.
set -euo pipefail
XBOND=${1:-./target/release/xbond}
HERE=$(cd "$(dirname "$0")" && pwd)
P=xbdemo
RUN=$(mktemp -d /tmp/xbond-demo.XXXXXX)
PID=""

cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID"; wait "$PID" || true
    fi
    "$HERE/topo.sh" down "$P"
    rm -rf "$RUN"
    echo "== torn down: namespaces, links and XDP programs removed"
}
trap cleanup EXIT

echo "== testbed: $P-h (xbond, members m0 m1) -- $P-s (bridge) -- $P-p (peer 198.18.0.2)"
"$HERE/topo.sh" up "$P" 2
cat > "$RUN/xbond.toml" <<TOML
[daemon]
run_dir = "$RUN"

[bond.bond0]
members = ["m0", "m1"]
options = "mode=active-backup miimon=100 primary=m0 updelay=200 num_grat_arp=2"
addresses = ["198.18.0.1/24"]
TOML
echo "== xbond run"
ip netns exec "$P-h" "$XBOND" run "$RUN/xbond.toml" 2> "$RUN/xbond.log" &
PID=$!
for _ in $(seq 100); do "$XBOND" --run-dir "$RUN" status >/dev/null 2>&1 && break; sleep 0.1; done
sed 's/^/   log: /' "$RUN/xbond.log"
echo "== ping the peer through bond0"
ip netns exec "$P-h" ping -c 3 -i 0.2 198.18.0.2
echo "== xbond status"
"$XBOND" --run-dir "$RUN" status
echo "== take m0's switch port down (carrier loss)"
ip -n "$P-s" link set s0 down
sleep 0.2
ip netns exec "$P-h" ping -c 3 -i 0.2 198.18.0.2
"$XBOND" --run-dir "$RUN" status | sed -n '4,5p'
echo "== bring it back: the primary returns after updelay"
ip -n "$P-s" link set s0 up
sleep 0.5
"$XBOND" --run-dir "$RUN" status | sed -n '4,5p'
echo "== xbond stats"
"$XBOND" --run-dir "$RUN" stats
