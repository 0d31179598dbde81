#!/bin/sh
# The Debian packages as a packager and a user meet them: built with
# dpkg-buildpackage from a clean copy of the tree, checked by lintian (no
# error, no warning), installed, and used from their installed files only:
# a C program built with `pkg-config --cflags --libs usmc`, and a real
# program (python3's http.server and a python3 client) under usmc-run,
# through shared memory.  The packages are removed again at the end.
#
# usage: deb_check.sh SOURCE_DIR   (as root: it installs packages)
set -eu
src=$(cd "$1" && pwd)
work=$(mktemp -d)
reg=$(mktemp -d)
server=
cleanup() {
	[ -n "$server" ] && kill "$server" 2>/dev/null
	dpkg -r usmc-tools libusmc-dev libusmc0 >/dev/null 2>&1 || true
	rm -rf "$work" "$reg"
}
trap cleanup EXIT

(cd "$src" && git ls-files -co --exclude-standard) | grep -v '^build' |
	(cd "$src" && tar -cf - -T -) | (mkdir "$work/usmc" && tar -xf - -C "$work/usmc")
(cd "$work/usmc" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" \
	dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1) || {
	tail -n 40 "$work/build.log"; echo "deb_check: dpkg-buildpackage failed"; exit 1; }
lintian --fail-on error,warning "$work"/usmc_*.changes 2>&1 | grep -v '^running with root' || true
lintian --fail-on error,warning "$work"/usmc_*.changes >/dev/null 2>&1 || {
	echo "deb_check: lintian reports errors or warnings"; exit 1; }
echo "deb_check: built $(cd "$work" && ls ./*.deb | grep -vc dbgsym) packages, lintian clean"

dpkg -i "$work"/libusmc0_*.deb "$work"/libusmc-dev_*.deb "$work"/usmc-tools_*.deb >/dev/null

# A C program against the installed library, found by pkg-config alone.
cp "$src/tests/install_hello.c" "$work/hello.c"
# shellcheck disable=SC2046
cc -Wall -Werror -o "$work/hello" "$work/hello.c" $(pkg-config --cflags --libs usmc)
USMC_REGISTRY_DIR=$reg "$work/hello"
echo "deb_check: pkg-config build against the installed libusmc: shared memory"

# A real program, both ends under the installed usmc-run.
head -c 3000000 /dev/urandom >"$work/blob"
export USMC_REGISTRY_DIR="$reg"
usmc-run python3 -m http.server --bind 127.0.0.1 --directory "$work" 0 >"$work/http.log" 2>&1 &
server=$!
port=
for _ in $(seq 100); do
	port=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$work/http.log" | head -1)
	[ -n "$port" ] && break
	sleep 0.1
done
[ -n "$port" ] || { cat "$work/http.log"; echo "deb_check: http.server did not start"; exit 1; }
usmc-run python3 -c "
import sys, urllib.request
sys.stdout.buffer.write(urllib.request.urlopen('http://127.0.0.1:$port/blob').read())" >"$work/got"
cmp "$work/blob" "$work/got"
shm=$(usmc-stat -s --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"]["bytes_received"])')
[ "$shm" -ge 3000000 ] || { echo "deb_check: only $shm bytes through shared memory"; exit 1; }
echo "deb_check: http.server under the installed usmc-run: 3,000,000 bytes checked, $shm through shared memory"
echo "deb_check: ok"
