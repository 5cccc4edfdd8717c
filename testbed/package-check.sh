#!/usr/bin/env bash
# The Debian package as a user gets it: build it (`make package`), install
# it with dpkg, then check the installed binary, man page, completions and
# units (systemd-analyze verify, man pages included). Removes the package
# again unless it was installed before. Needs root and cargo-deb.
set -euo pipefail
cd "$(dirname "$0")/.."
make package
deb=$(ls -t target/debian/xbond_*.deb | head -1)
was_installed=no
dpkg -s xbond >/dev/null 2>&1 && was_installed=yes
cleanup() { [ "$was_installed" = yes ] || dpkg --purge xbond >/dev/null 2>&1 || true; }
trap cleanup EXIT
# Container images often exclude /usr/share/man from dpkg; ask for ours.
dpkg --path-include='/usr/share/man/man8/xbond*' -i "$deb"
/usr/bin/xbond --version
man -w xbond
man -w xbond-run
test -s /usr/share/bash-completion/completions/xbond
test -s /usr/share/zsh/vendor-completions/_xbond
test -s /usr/share/fish/vendor_completions.d/xbond.fish
test -f /etc/xbond/bond0.toml.example
# The installed units, as systemd would load them, man pages looked up.
out=$(systemd-analyze verify /usr/lib/systemd/system/xbond.service /usr/lib/systemd/system/xbond@bond0.service 2>&1) || { echo "$out"; exit 1; }
if [ -n "$out" ]; then echo "systemd-analyze verify warned: $out"; exit 1; fi
echo "package OK: $deb"
