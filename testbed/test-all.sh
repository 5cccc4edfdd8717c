#!/usr/bin/env bash
# Every test of the workspace (the README's test command, via `make test`):
# unit, snapshot and CLI tests, the root netns integration tests, and miri on
# the AF_XDP ring and frame-area code. Ends with one total line.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0

step() {
    echo "== $*"
    "$@" 2>&1 | tee -a "$log"
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] || status=$rc
}

step cargo build --workspace --bins
# Every test binary runs even after one fails, so one flaky test does not hide
# the rest; the failures are listed again at the end.
step cargo test --workspace --no-fail-fast
if cargo +nightly miri --version >/dev/null 2>&1; then
    # Several seeds explore different thread interleavings of the ring tests.
    for seed in 0 1 2; do
        MIRIFLAGS="-Zmiri-seed=$seed" step cargo +nightly miri test -p xbond-dataplane --lib -- sys:: worker::
    done
else
    echo "!!! miri is not installed: the ring/frame-area tests did not run under miri (rustup +nightly component add miri)"
    # CI must run them, never skip them.
    [ "${CI:-}" = "true" ] && status=1
fi

if cargo +nightly fuzz --version >/dev/null 2>&1; then
    # A short run of each fuzz target over the wire parsers and importers (`make fuzz` runs longer).
    for target in slow_protocols member_frames imports probe_frames host_checksums; do
        step cargo +nightly fuzz run --fuzz-dir fuzz "$target" -- -max_total_time=20
    done
else
    echo "!!! cargo-fuzz is not installed: the fuzz targets did not run (cargo install cargo-fuzz; make fuzz)"
    [ "${CI:-}" = "true" ] && status=1
fi

passed=$(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -oE '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
[ "$failed" -eq 0 ] || status=1
if [ "$failed" -ne 0 ]; then
    echo "== failures"
    # Short enough to survive in the tail of a CI log: which tests, and why.
    grep -E "^---- .* stdout ----$" "$log" | head -8
    grep -A1 -E "panicked at" "$log" | grep -vE "panicked at|^--$" | cut -c1-300 | head -8
fi
echo "$passed passed, $failed failed"
exit $status
