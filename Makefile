# xbond: the two commands of the README.
#   make demo   install what is needed, build, run a demo bond on a netns testbed, tear down
#   make test   run every test (unit, snapshot, CLI, root netns integration, miri)
#   make package   target/debian/xbond_VERSION_ARCH.deb (cargo-deb: cargo install cargo-deb)

.PHONY: setup build demo test lint bench fuzz package

APT_PACKAGES = iproute2 ethtool iputils-ping iperf3 tcpdump openvswitch-switch nftables prometheus

setup:
	@if command -v apt-get >/dev/null; then \
		missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
		if [ -n "$$missing" ]; then apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; fi; \
	fi

build:
	cargo build --release --bins

demo: setup build
	./testbed/demo.sh ./target/release/xbond

test:
	./testbed/test-all.sh

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

bench:
	cargo bench -p xbond-bench --bench datapath
	cargo build --release --bins -p xbond-bench -p xbond-control
	./target/release/xbond-e2e

fuzz:
	cd fuzz && cargo +nightly fuzz run slow_protocols -- -max_total_time=300
	cd fuzz && cargo +nightly fuzz run member_frames -- -max_total_time=300
	cd fuzz && cargo +nightly fuzz run imports -- -max_total_time=300
	cd fuzz && cargo +nightly fuzz run probe_frames -- -max_total_time=300
	cd fuzz && cargo +nightly fuzz run host_checksums -- -max_total_time=300
	cd fuzz && cargo +nightly fuzz run host_coalesce -- -max_total_time=300

# The Debian package: the release binary, the systemd units, the example
# config, man pages (clap_mangen) and bash/zsh/fish completions (clap_complete).
package:
	cargo build --release --bin xbond
	rm -rf target/release/assets
	./target/release/xbond manpages target/release/assets/man
	gzip -9n target/release/assets/man/*.8
	mkdir -p target/release/assets/completions
	./target/release/xbond completions bash > target/release/assets/completions/xbond.bash
	./target/release/xbond completions zsh > target/release/assets/completions/_xbond
	./target/release/xbond completions fish > target/release/assets/completions/xbond.fish
	cargo deb -p xbond-control --no-build
