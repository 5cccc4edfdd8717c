# xbond: the two commands of the README.
#   make demo   install what is needed, build, run a demo bond on a netns testbed, tear down
#   make test   run every test (unit, snapshot, CLI, root netns integration, miri)

.PHONY: setup build demo test lint bench

APT_PACKAGES = iproute2 ethtool iputils-ping iperf3 tcpdump

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
	cargo build --workspace --bins
	cargo test --workspace
	@if cargo +nightly miri --version >/dev/null 2>&1; then \
		MIRIFLAGS=-Zmiri-many-seeds=0..4 cargo +nightly miri test -p xbond-dataplane -- sys:: worker::; \
	else \
		echo "!!! miri is not installed: the ring/frame-area tests did not run under miri (rustup +nightly component add miri)"; \
	fi

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

bench:
	cargo bench -p xbond-bench --bench datapath
	cargo build --release --bins -p xbond-bench -p xbond-control
	./target/release/xbond-e2e
