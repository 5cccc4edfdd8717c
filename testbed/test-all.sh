#!/usr/bin/env bash
# Every test of the workspace (the README's test command, via `make test`):
# unit, snapshot and CLI tests, the root netns integration tests, miri on the
# AF_XDP ring and frame-area code, and a short run of each fuzz target.
# Ends with one line per step (ok, FAILED or SKIPPED) and one total line; any
# failed step fails the run, and under CI=true so does a skipped one.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
results=()

# step NAME CMD...: runs CMD, keeps its output for the counts, records the result.
step() {
    local name=$1
    shift
    echo "== $name: $*"
    local started=$SECONDS
    "$@" 2>&1 | tee -a "$log"
    local rc=${PIPESTATUS[0]}
    local took=$((SECONDS - started))
    if [ "$rc" -eq 0 ]; then
        results+=("ok       $name (${took} s)")
    else
        results+=("FAILED   $name (exit $rc, ${took} s)")
        status=1
    fi
}

# skipped NAME WHY: a step that could not run. Loud always; a failure in CI.
skipped() {
    echo "!!! $1 did not run: $2"
    results+=("SKIPPED  $1: $2")
    [ "${CI:-}" = "true" ] && status=1
    return 0
}

step build cargo build --workspace --bins
# Every test binary runs even after one fails, so one flaky test does not hide
# the rest; the failures are listed again at the end.
step "cargo test" cargo test --workspace --no-fail-fast
if cargo +nightly miri --version >/dev/null 2>&1; then
    # Several seeds explore different thread interleavings of the ring tests.
    for seed in 0 1 2; do
        MIRIFLAGS="-Zmiri-seed=$seed" step "miri seed $seed" cargo +nightly miri test -p xbond-dataplane --lib -- sys:: worker::
    done
else
    skipped miri "miri is not installed (rustup toolchain install nightly --component miri --component rust-src)"
fi

if cargo +nightly fuzz --version >/dev/null 2>&1; then
    # A short run of each fuzz target over the wire parsers and importers (`make fuzz` runs longer).
    for target in slow_protocols member_frames imports probe_frames host_checksums host_coalesce; do
        step "fuzz $target" cargo +nightly fuzz run --fuzz-dir fuzz "$target" -- -max_total_time=20
    done
else
    skipped fuzz "cargo-fuzz is not installed (cargo install cargo-fuzz --locked; make fuzz)"
fi

# The Debian package, installed with dpkg and checked as installed (root only:
# it installs into the system and removes itself again).
if [ "$(id -u)" -ne 0 ]; then
    skipped package "needs root (dpkg -i)"
elif ! cargo deb --version >/dev/null 2>&1; then
    skipped package "cargo-deb is not installed (cargo install cargo-deb --locked)"
else
    step package ./testbed/package-check.sh
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
echo "== steps"
printf '%s\n' "${results[@]}"
ok=$(printf '%s\n' "${results[@]}" | grep -c '^ok ')
echo "$passed passed, $failed failed; $ok of ${#results[@]} steps ok; $SECONDS s"
exit $status
